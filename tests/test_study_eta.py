"""A fanned-out grid's ETA counts each queued task's start-up (interpreter, imports, slice load), measured
from its finished tasks: a cell's history is its own seconds only, and a study with most of its tasks still
to come was predicted to end in half the time it took."""

from __future__ import annotations

import json
import time

from mihd.runs.fanout_status import grid_progress
from mihd.runs.registry import Registry
from mihd.runs.stages import task_startup
from mihd.runs.status import list_runs

from conftest import run_mihd, with_demo


def test_startup_is_the_median_of_wall_less_own_seconds_of_finished_tasks():
    assert task_startup([(6.0, 1.0), (7.0, 2.0), (20.0, 1.0), (None, 1.0), (5.0, None)]) == 5.0
    assert task_startup([]) == 0.0


def test_queued_cells_of_a_study_are_expected_with_their_start_up(tmp_path, demo_h5ad):
    from mihd.data.registry import register

    root = with_demo(tmp_path / "ws", demo_h5ad)
    register(root, "demo2", root / "demo" / "demo.h5ad")
    proc = run_mihd("grid", "demo,demo2", "--gene", "pca", "--vision", "texture", "--fusion", "concat,gene_only",
                    "--cluster", "kmeans", root=root)
    assert proc.returncode == 0, proc.stderr
    list_runs(root, all=True)  # indexes it: the history of its cells
    grid = next((root / "runs").iterdir())
    cells = sorted((grid / "cells").iterdir(), key=lambda d: int(d.name))
    last = cells[-1]
    own = json.loads((last / "result.json").read_text())["cells"][0]["seconds"]["total"]
    for name in ("proc.json", "exit.json", "result.json", "events.jsonl", "usage.json"):
        (last / name).unlink(missing_ok=True)  # the last cell is still to come
    spec = json.loads((last / "spec.json").read_text())
    (last / "spec.json").write_text(json.dumps({**spec, "cached": [True]}))  # as launched with its inputs cached
    reg = Registry(root)
    try:
        history = reg.durations()
        row = {**reg.row(grid.name), "backend": "local", "status": "running"}  # as a launched study's row
    finally:
        reg.close()
    walls = [json.loads((c / "exit.json").read_text())["ended"] - json.loads((c / "proc.json").read_text())["started"]
             for c in cells[:-1]]
    got = grid_progress(row, {}, history, 1.5, time.time())
    assert got.cells[-1].status == "queued" and got.cells[-1].expected_s == own, history  # timed by its history
    assert got.eta_s is not None
    assert got.eta_s > own + 0.5 * min(walls)  # without its start-up it was about `own`: a fraction of a second
