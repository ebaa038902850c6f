"""A run's resource use measured from inside it, kept in the run dir as `usage.json`.

The supervisor samples its command's process group and every descendant (a grid's workers) from /proc every
few seconds and rewrites the file (atomically): CPU % (of one core), memory (PSS, else RSS) and process count now, GPU memory where NVML answers, and the
peaks so far. Why a file: the watcher of a Slurm run sits on the login node and cannot see processes
on the compute node, but it can read the run dir; and a finished run keeps its peaks, which tell a
researcher how much memory to ask Slurm for next time. Standard library only (the supervisor stays
light); NVML is imported only through `Gpu`, and only when the supervisor asks for GPU memory.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..jsonio import write_json_atomic
from ..rundir import USAGE, RunFileError, load_file

EVERY = 5.0        # seconds between samples written by the supervisor
FRESH = 3 * EVERY  # a running run's file older than this says nothing about now

TICKS = os.sysconf("SC_CLK_TCK")  # /proc/PID/stat times are in these
PAGE = os.sysconf("SC_PAGE_SIZE")   # and its RSS in pages


def live_processes():
    """(pid, fields) of every live (not zombie) process; fields are /proc/PID/stat after "pid (comm)":
    state(0) ppid(1) pgrp(2) session(3) ... utime(11) stime(12) ... starttime(19) vsize(20) rss(21)."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != b"Z":
            yield int(name), fields


def cpu_seconds(fields: list[bytes]) -> float:
    """A live_processes() entry's CPU time, its own (user + system; not its reaped children's)."""
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_bytes(fields: list[bytes]) -> int:
    return int(fields[21]) * PAGE


def pss_bytes(pid: int) -> int | None:
    """The process's proportional set size (a page shared by n processes counts 1/n to each), or None where
    /proc/PID/smaps_rollup cannot be read (an older kernel, another user's process)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(b"Pss:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def _group_stats(pgid: int) -> dict[tuple[int, int], tuple[float, int]]:
    """{(pid, start ticks): (cpu seconds, memory bytes)} of the live processes in process group `pgid` and every
    descendant of them, in whatever group or session (a grid's workers each run in a session of their own). Memory
    is PSS where it can be read, so forked workers sharing their parent's pages count them once (what a Slurm
    `--mem` limit counts), else RSS."""
    procs = dict(live_processes())
    children: dict[int, list[int]] = {}
    for pid, f in procs.items():
        children.setdefault(int(f[1]), []).append(pid)
    tree = [pid for pid, f in procs.items() if int(f[2]) == pgid]
    for pid in tree:  # grows as it goes: children, then theirs
        tree.extend(c for c in children.get(pid, ()) if int(procs[c][2]) != pgid)
    stats = {}
    for pid in tree:
        f = procs[pid]
        pss = pss_bytes(pid)
        stats[(pid, int(f[19]))] = (cpu_seconds(f), rss_bytes(f) if pss is None else pss)
    return stats


def boot_time() -> float:
    """When this machine booted (epoch seconds): a process started at boot_time() + starttime / TICKS."""
    with open("/proc/stat", "rb") as fh:
        return next(float(line.split()[1]) for line in fh if line.startswith(b"btime"))


class GroupUsage:
    """Samples one process group; `gpu` (a `mihd.runs.gpu.Gpu`, or None for no GPU figures) adds memory."""

    def __init__(self, pgid: int, gpu=None):
        self.pgid, self.gpu = pgid, gpu
        self._boot = boot_time()
        self._last: dict[tuple[int, int], float] = {}
        self._last_t: float | None = None
        self._first_t: float | None = None  # the first sample: what the end's average CPU is taken over
        self.peak = {"cpu_percent": 0.0, "rss": 0, "gpu_mem": None}

    def sample(self) -> dict:
        now = time.time()
        stats = _group_stats(self.pgid)
        used = 0.0
        for key, (cpu, _rss) in stats.items():
            if key in self._last:
                used += cpu - self._last[key]
            elif self._last_t is None or self._boot + key[1] / TICKS >= self._last_t:
                used += cpu  # started since the last sample (or this is the first one): all of it is new
        cpu_percent = 100.0 * used / (now - self._last_t) if self._last_t and now > self._last_t else None
        self._first_t = self._first_t or now
        self._last, self._last_t = {k: v[0] for k, v in stats.items()}, now
        rss = sum(r for _, r in stats.values())
        gpu_mem = self._gpu_mem([pid for pid, _ in stats])
        peak = self.peak
        peak["rss"] = max(peak["rss"], rss)
        if cpu_percent is not None:
            peak["cpu_percent"] = round(max(peak["cpu_percent"], cpu_percent), 1)
        if gpu_mem is not None:
            peak["gpu_mem"] = max(peak["gpu_mem"] or 0, gpu_mem)
        return {"t": round(now, 3), "cpu_percent": None if cpu_percent is None else round(cpu_percent, 1),
                "rss": rss, "nprocs": len(stats), "gpu_mem": gpu_mem, "peak": dict(peak)}

    def _gpu_mem(self, pids: list[int]) -> int | None:
        if self.gpu is None or not self.gpu.probe():
            return None
        per_pid = self.gpu.process_memory()
        return sum(per_pid.get(pid, 0) for pid in pids)

    def write(self, run_dir: Path, *, ended: bool = False) -> dict:
        """Sample and rewrite usage.json. Once the command has ended (`ended`, after the wait), the
        kernel's high-water RSS of the largest waited-for child also counts, and the CPU it used on average since
        the first sample (its processes are gone from /proc by then): a peak for a run shorter than one sampling
        interval, which read 0 % before."""
        first = self._first_t
        sample = self.sample()
        if ended:
            import resource

            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            self.peak["rss"] = max(self.peak["rss"], children.ru_maxrss * 1024)
            if first is not None and sample["t"] > first:
                average = 100.0 * (children.ru_utime + children.ru_stime) / (sample["t"] - first)
                self.peak["cpu_percent"] = round(max(self.peak["cpu_percent"], average), 1)
            sample["peak"] = dict(self.peak)
        write_json_atomic(Path(run_dir) / USAGE, sample)
        return sample


def read_usage(run_dir: Path) -> dict | None:
    """The run's last usage sample, or None when there is none or it is not of its shape (the run's
    status says `corrupt` then; figures are only shown)."""
    try:
        return load_file(Path(run_dir), USAGE)
    except RunFileError:
        return None


def fresh(usage: dict | None, now: float) -> bool:
    """Whether a running run's sample still describes now."""
    return usage is not None and now - usage["t"] <= FRESH
