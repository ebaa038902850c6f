"""Shared helpers for the run-control tests: launch the protocol-following fake run, wait for states."""

import json
import os
import sys
import time
import types
from pathlib import Path

import psutil

from mihd.plan import Cell, RunSpec
from mihd.runs.launch import launch
from mihd.runs.status import list_runs

FAKE = str(Path(__file__).parent / "fixtures" / "fake_run.py")
CELL = Cell("demo", "pca", "texture", "concat", "gmm", "standard")


def fake_plan(cells=(CELL,), **kw) -> RunSpec:
    """What a fake run says it computes (its inputs count as cached)."""
    return RunSpec(tuple(cells), kind="grid" if len(cells) > 1 else "run", **kw)


def launch_fake(root, *args, expect=None, name=None, cells=(CELL,), **kw):
    return launch(root, fake_plan(cells, expect=expect, name=name, **kw),
                  raw_argv=[sys.executable, FAKE, "{run_dir}", *map(str, args)], cached=[True] * len(cells))


def kill_all(root, run_ids) -> None:
    """KILL each run (a benchmark's or test's live runs, at its end); one already gone is no matter."""
    from mihd.runs.kill import kill_run

    for run_id in run_ids:
        try:
            kill_run(root, run_id, "KILL", grace=1)
        except Exception:
            pass


def drop_index(root) -> None:
    """Delete this host's registry index of workspace `root` (a new host, a wiped temp folder)."""
    from mihd.runs.registry import INDEX_FILE
    from mihd.workspace import host_index_dir

    for suffix in ("", "-wal", "-shm"):
        (host_index_dir(Path(root)) / f"{INDEX_FILE}{suffix}").unlink(missing_ok=True)


def view(root, run_id, **kw):
    return next(v for v in list_runs(root, all=True, **kw) if v.id == run_id)


def wait_for(fn, timeout=20.0, every=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = fn()
        if out:
            return out
        time.sleep(every)
    raise AssertionError("timed out waiting")


def session_pids(run_dir: Path) -> set[int]:
    """Every live process of a run: the members of its supervisor's session."""
    if not (Path(run_dir) / "proc.json").exists():
        return set()  # not started yet
    sup = json.loads((Path(run_dir) / "proc.json").read_text())["pid"]
    pids = set()
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == sup and p.status() != psutil.STATUS_ZOMBIE:
                pids.add(p.pid)
        except (OSError, psutil.NoSuchProcess):
            pass
    return pids


def alive(pids) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def fake_nvml(devices: int = 1, pids_mem: dict[int, int] | None = None, fail_init: bool = False):
    """An NVML stand-in: `devices` GPUs (0: NVML works but finds none), compute processes using `pids_mem`
    bytes by pid, or an nvmlInit that fails as on a machine without the library."""
    def init():
        if fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    dev = object()
    procs = [types.SimpleNamespace(pid=p, usedGpuMemory=m) for p, m in (pids_mem or {}).items()]
    return types.SimpleNamespace(
        nvmlInit=init, nvmlShutdown=lambda: None, nvmlDeviceGetCount=lambda: devices,
        nvmlDeviceGetHandleByIndex=lambda i: dev, nvmlDeviceGetName=lambda h: b"Fake H100",
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=3 << 30, total=80 << 30),
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=57, memory=20),
        nvmlDeviceGetComputeRunningProcesses=lambda h: procs, nvmlDeviceGetGraphicsRunningProcesses=lambda h: [])
