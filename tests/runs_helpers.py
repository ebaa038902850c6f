"""Shared helpers for the run-control tests: launch the protocol-following fake run, wait for states."""

import json
import os
import sys
import time
from pathlib import Path

import psutil

from mihd.runs.launch import launch
from mihd.runs.status import list_runs

FAKE = str(Path(__file__).parent / "fixtures" / "fake_run.py")
CELL = {"slice": "demo", "gene": "pca", "vision": "texture", "variant": "standard", "fusion": "concat",
        "cluster": "gmm", "cached": True}


def launch_fake(root, *args, expect=None, name=None, cells=None):
    return launch(root, [sys.executable, FAKE, "{run_dir}", *map(str, args)], raw=True, expect=expect,
                  name=name, cells=[dict(CELL)] if cells is None else cells)


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
