"""Shared helpers for the run-control tests: launch the protocol-following fake run, wait for states."""

import sys
import time
from pathlib import Path

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
