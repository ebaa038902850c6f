"""What this process may compute with: how many CPU cores, which device, and torch set up to match.

Training (staig_fusion, attention, SCAN, the mlp gene encoder) and vision extraction all go through here.

- Cores: the ones this process may use, not the machine's: CPU affinity (taskset, Slurm's cgroup cpuset),
  the cgroup CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), `SLURM_CPUS_PER_TASK`; the smallest wins.
  `MIHD_THREADS` sets the count for a worker given a share (never above its affinity).
- Waiting: OpenMP (torch, MKL, scikit-learn) and OpenBLAS worker threads spin at every barrier by
  default. On cores another process also uses, a spinning thread burns the time slice its partner needs
  to reach the barrier, so a small training runs 5-15x slower beside busy neighbours instead of about 2x.
  `quiet_waiting()` makes them sleep instead; the runtimes read it when they load, so the CLI calls it
  before anything imports numpy or torch.
- Reproducibility: the thread count depends on the allocation only, never on the momentary load, and
  the CPU kernels run in torch's deterministic mode (its parallel scatter-add otherwise adds in a racy
  order), so the same seed on the same allocation gives the same bits.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from pathlib import Path

from .errors import MihdError

DEVICES = ("auto", "cpu", "cuda")  # where training (staig_fusion, attention, SCAN) runs; auto = CUDA when torch sees one
THREADS_ENV = "MIHD_THREADS"
# read by the OpenMP and OpenBLAS runtimes when they load: sleep at barriers instead of spinning
QUIET_WAITING = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}
# thread counts of the native runtimes, read when they load (torch, MKL, OpenBLAS of numpy/scipy, sklearn's OpenMP)
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
CGROUP_FS = Path("/sys/fs/cgroup")


def _whole(value: str, what: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise MihdError(f"{what}: {value!r} is not a whole number >= 1")
    return n


def cgroup_cpu_limit(proc_cgroup: str, fs: Path = CGROUP_FS) -> float | None:
    """CPUs the cgroup quota allows (e.g. 1.5), or None without a quota. `proc_cgroup` is the text of
    /proc/self/cgroup. Every ancestor's quota applies too, so the tightest along the path wins; a
    container sees its own cgroup at the hierarchy's root, where the listed path does not exist."""
    limits = []
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # v2 unified hierarchy
            root, files = fs, ("cpu.max",)
        elif "cpu" in controllers.split(","):  # v1, mounted as cpu,cpuacct (with a cpu link) or cpu
            root = fs / controllers if (fs / controllers).is_dir() else fs / "cpu"
            files = ("cpu.cfs_quota_us", "cpu.cfs_period_us")
        else:
            continue
        here = root / path.strip().lstrip("/")
        if not here.is_dir():
            here = root
        for folder in (here, *here.parents):
            limit = _quota(folder, *files)
            if limit is not None:
                limits.append(limit)
            if folder == root:
                break
    return min(limits, default=None)


def _quota(folder: Path, quota_file: str, period_file: str | None = None) -> float | None:
    """v2 `cpu.max` ("max 100000" or "150000 100000") or v1 quota + period files (-1 = none)."""
    try:
        if period_file is None:
            quota, period = (folder / quota_file).read_text().split()[:2]
        else:
            quota, period = (folder / quota_file).read_text().strip(), (folder / period_file).read_text().strip()
        quota_us, period_us = int(quota), int(period)
    except (OSError, ValueError):  # no such file, or "max" (no quota)
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def allowed_cores() -> tuple[int, str]:
    """(cores this process may use, what decided it): MIHD_THREADS if set (capped by the affinity),
    else the smallest of the affinity, the cgroup quota (rounded up) and SLURM_CPUS_PER_TASK."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    given = os.environ.get(THREADS_ENV, "").strip()
    if given:
        return min(_whole(given, THREADS_ENV), affinity), THREADS_ENV
    found = [(affinity, "affinity")]
    try:
        proc = Path("/proc/self/cgroup").read_text()
    except OSError:
        proc = ""
    quota = cgroup_cpu_limit(proc)
    if quota is not None:
        found.append((max(1, math.ceil(quota)), "cgroup quota"))
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "").strip()
    if slurm:
        found.append((_whole(slurm, "SLURM_CPUS_PER_TASK"), "SLURM_CPUS_PER_TASK"))
    return min(found)


def cpu_threads() -> int:
    return allowed_cores()[0]


def quiet_waiting(environ=os.environ) -> None:
    """Before numpy/torch load: idle runtime threads sleep (unless the environment says otherwise), and
    the runtimes start with as many threads as this process may use. The counts are always replaced: one
    inherited from a launcher (a login node's, say) describes another allocation; MIHD_THREADS sets ours."""
    for key, value in QUIET_WAITING.items():
        environ.setdefault(key, value)
    try:
        threads = str(cpu_threads())
    except MihdError:  # a bad MIHD_THREADS: the command reports it, as one line, when it configures torch
        return
    for key in THREAD_VARS:
        environ[key] = threads


def resolve_device(asked: str = "auto") -> str:
    """"cpu" or "cuda": auto = CUDA when torch sees a GPU; cuda without one is a one-line error."""
    if asked not in DEVICES:
        raise MihdError(f"--device {asked!r}: not one of {', '.join(DEVICES)}")
    if asked == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if asked == "cuda":
        raise MihdError("--device cuda: no CUDA GPU is visible to this process (use --device cpu or auto)")
    return "cpu"


def check_device(asked: str) -> str:
    """Fail early on a bad --device, without importing torch for auto (resolved when training starts)."""
    if asked != "auto":
        resolve_device(asked)
    return asked


def configure_torch() -> int:
    """Set torch's intra-op threads (inter-op too, while torch still allows it: once per process) and the
    BLAS/OpenMP pools loaded so far to the cores this process may use. Returns the thread count."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = cpu_threads()
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set, or the inter-op pool has started: it keeps its size
        pass
    threadpool_limits(threads)
    return threads


@contextmanager
def torch_device(asked: str = "auto"):
    """For one training: torch configured, the device resolved, and on the CPU torch's deterministic
    kernels (restored afterwards). Yields the torch.device."""
    import torch

    device = resolve_device(asked)
    configure_torch()
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(device == "cpu" or previous)
    try:
        yield torch.device(device)
    finally:
        torch.use_deterministic_algorithms(previous)
