"""GPUs through NVML (nvidia-ml-py), probed once; "no GPU" is a normal state with a reason, not an error.

The NVML module is a seam: `Gpu(nvml=fake)` lets tests stand in for `pynvml`. Per-process memory is
keyed by pid as NVML reports it (in a container with its own pid namespace those may be host pids).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GpuDevice:
    index: int
    name: str
    util: float | None      # % of time a kernel ran
    mem_util: float | None  # % of time memory was read or written
    mem_used: int
    mem_total: int


class Gpu:
    def __init__(self, nvml=None):
        self._nvml = nvml
        self._handles: list = []
        self.available: bool | None = None  # None until probed
        self.reason = ""

    def probe(self) -> bool:
        """Initialise NVML once; afterwards just answers."""
        if self.available is not None:
            return self.available
        try:
            if self._nvml is None:
                import pynvml
                self._nvml = pynvml
            self._nvml.nvmlInit()
            count = self._nvml.nvmlDeviceGetCount()
            self._handles = [self._nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self.available = count > 0
            self.reason = "" if count else "no GPU (NVML found no device)"
        except Exception as exc:  # no driver, no library, no device: all mean "no GPU here"
            self.available, self.reason = False, f"no GPU ({type(exc).__name__}: {exc})".strip()
        return self.available

    def devices(self) -> list[GpuDevice]:
        if not self.probe():
            return []
        out = []
        for i, h in enumerate(self._handles):
            nv = self._nvml
            try:
                name = nv.nvmlDeviceGetName(h)
                name = name.decode() if isinstance(name, bytes) else str(name)
                mem = nv.nvmlDeviceGetMemoryInfo(h)
            except Exception:
                continue
            try:
                rates = nv.nvmlDeviceGetUtilizationRates(h)
                util, mem_util = float(rates.gpu), float(rates.memory)
            except Exception:
                util = mem_util = None
            out.append(GpuDevice(i, name, util, mem_util, int(mem.used), int(mem.total)))
        return out

    def process_memory(self) -> dict[int, int]:
        """GPU memory in bytes per pid, summed over devices (compute and graphics contexts)."""
        if not self.probe():
            return {}
        usage: dict[int, int] = {}
        for h in self._handles:
            for fn in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
                try:
                    procs = getattr(self._nvml, fn)(h)
                except Exception:
                    continue
                for p in procs:
                    used = getattr(p, "usedGpuMemory", None)
                    if used is not None:
                        usage[p.pid] = usage.get(p.pid, 0) + int(used)
        return usage

    def close(self) -> None:
        if self.available:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
        self.available = None


_default: Gpu | None = None


def default_gpu() -> Gpu:
    """The process-wide Gpu (NVML is initialised once per process)."""
    global _default
    if _default is None:
        _default = Gpu()
    return _default
