"""CPU % and RSS of whole process trees, sampled cheaply and often.

One pass over /proc per sample (one small read of each process's stat file, as the supervisor's own
usage sampling does) builds the parent->children map for every tree at once. The last CPU times are
kept between samples, so CPU % is the share of one core used since the previous sample (a process seen
for the first time reports its lifetime average, so a one-shot `mihd runs ls` needs no sleep), summed
over the tree and never above CPU_CAP (every core busy). Each process counts its own time only: a
reaped child's time lands in its parent's children_* times all at once, which counted it twice and read
860 % on two cores. RSS is summed over the tree (shared pages count twice).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from .gpu import Gpu
from .usage import TICKS, boot_time, cpu_seconds, live_processes, rss_bytes


CPU_CAP = 100.0 * (os.cpu_count() or 1)  # % of one core when every core of the machine is busy


@dataclass
class TreeSample:
    cpu_percent: float = 0.0
    rss: int = 0
    nprocs: int = 0
    gpu_mem: int | None = None
    pids: list[int] = field(default_factory=list)


class Monitor:
    def __init__(self, gpu: Gpu | None = None):
        self.gpu = gpu
        self._last: dict[tuple[int, float], tuple[float, float]] = {}  # (pid, ctime) -> (cpu s, wall)
        self._boot = boot_time()

    def sample(self, roots: dict[str, tuple[int, float | None]]) -> dict[str, TreeSample]:
        """{run id: (root pid, create time)} -> {run id: TreeSample} for the trees alive now."""
        stats: dict[int, list[bytes]] = {}
        children: dict[int, list[int]] = {}
        for pid, fields in live_processes():
            stats[pid] = fields
            children.setdefault(int(fields[1]), []).append(pid)
        gpu_mem = self.gpu.process_memory() if self.gpu is not None and self.gpu.probe() else None
        now, seen, out = time.time(), set(), {}
        for run_id, (pid, ctime) in roots.items():
            if pid not in stats or (ctime is not None and abs(self._started(stats[pid]) - ctime) > 0.1):
                continue
            s = TreeSample(gpu_mem=0 if gpu_mem is not None else None)
            stack = [pid]
            while stack:
                p = stack.pop()
                stack.extend(children.get(p, ()))
                f = stats[p]
                cpu, key = cpu_seconds(f), (p, self._started(f))
                prev = self._last.get(key)
                if prev and now > prev[1]:
                    s.cpu_percent += 100.0 * max(cpu - prev[0], 0.0) / (now - prev[1])
                elif now > key[1]:
                    s.cpu_percent += 100.0 * cpu / (now - key[1])
                self._last[key] = (cpu, now)
                seen.add(key)
                s.rss += rss_bytes(f)
                s.nprocs += 1
                s.pids.append(p)
                if gpu_mem:
                    s.gpu_mem += gpu_mem.get(p, 0)
            s.cpu_percent = min(s.cpu_percent, CPU_CAP)
            out[run_id] = s
        self._last = {k: v for k, v in self._last.items() if k in seen}
        return out

    def _started(self, fields: list[bytes]) -> float:
        """A process's start (epoch seconds), as psutil's create_time() gives it: boot time + starttime."""
        return self._boot + int(fields[19]) / TICKS
