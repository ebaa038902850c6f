"""Helpers for the dashboard tests: fake NVML modules, a frozen finished run, waiting in a Pilot."""

from __future__ import annotations

import json
import time
from pathlib import Path

from mihd.jsonio import write_json_atomic
from mihd.plan import Cell, RunSpec
from mihd.runs.gpu import Gpu
from runs_helpers import fake_nvml

FIXED_ID = "20250101-093012-345-a1b2c3"
FIXED_T = 1735720212.0  # 2025-01-01 09:30:12 local-time independent: only differences are shown


def no_gpu() -> Gpu:
    return Gpu(nvml=fake_nvml(0))


async def wait_until(pilot, predicate, timeout: float = 60.0, every: float = 0.1):
    """Let the app run until `predicate()` is true (real processes take real time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        await pilot.pause(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {getattr(predicate, '__name__', predicate)}")


def frozen_run(root: Path, run_id: str = FIXED_ID, ari: float = 0.62) -> Path:
    """A finished one-cell run dir with fixed times, log and a small labelled slice (for snapshots)."""
    run_dir = root / "runs" / run_id
    run_dir.mkdir(parents=True)
    cell = {"slice": "demo", "gene": "pca", "vision": "texture", "variant": "standard", "fusion": "concat",
            "cluster": "gmm"}
    plan = RunSpec((Cell.from_dict(cell),))
    write_json_atomic(run_dir / "spec.json", {"plan": plan.to_dict(), "id": run_id, "argv": ["mihd", "exec-plan"],
                                              "cached": [True], "created": FIXED_T, "by": "test@host"})
    xs, ys, truth, labels = [], [], [], []
    for r in range(24):
        for c in range(30):
            xs.append(float(c * 10 + (r % 2) * 5))
            ys.append(float(r * 9))
            layer = min(r // 4, 5)
            truth.append(f"L{layer + 1}")
            labels.append(layer if c < 25 else (layer + 1) % 6)
    write_json_atomic(run_dir / "result.json", {
        "slice": "demo", "status": "ok", "error": None,
        "spots": {"barcodes": [f"s{i}" for i in range(len(xs))], "x": xs, "y": ys, "truth": truth},
        "cells": [{"signature": {**cell, "cached": True}, **cell, "n_clusters": 6, "refine": False, "ari": ari,
                   "nmi": 0.77, "seconds": {"load": 0.1, "fuse": 0.5, "cluster": 0.8, "total": 1.4},
                   "cache": {"gene": "hit", "vision": "hit"}, "random_init": False, "labels": labels}]})
    with open(run_dir / "events.jsonl", "w") as fh:
        for ev in ({"t": FIXED_T + 0.5, "kind": "start", "argv": [], "cells": 1},
                   {"t": FIXED_T + 1.5, "kind": "metric", "index": 0, "ari": ari, "nmi": 0.77},
                   {"t": FIXED_T + 2.0, "kind": "end", "status": "ok"}):
            fh.write(json.dumps(ev) + "\n")
    (run_dir / "run.log").write_text("slice demo: 1 cell in 1.4 s\nARI 0.620  NMI 0.770\n")
    write_json_atomic(run_dir / "proc.json", {"pid": 4242, "create_time": FIXED_T, "sid": 4242, "host": "node1",
                                              "uid": 1000, "started": FIXED_T + 0.5})
    write_json_atomic(run_dir / "exit.json", {"code": 0, "signal": None, "ended": FIXED_T + 2.0, "forwarded": []})
    return run_dir


def app_for(root, gene: str | None = "pca", **kw):
    """The dashboard on `root` with a fast refresh, no demo setup and no GPU, on the `gene` grid (see kept_view;
    None: the grid a researcher with no kept view sees, the recommended gene encoder's)."""
    from mihd_tui.app import MihdApp

    if gene:
        kept_view(root, gene)
    kw.setdefault("gpu", no_gpu())
    return MihdApp(root, interval=0.2, setup_demo=False, kill_grace=2.0, **kw)


def kept_view(root, gene: str = "pca") -> None:
    """Keep the demo's `gene` grid as the view of `root`, unless a view is kept already: the tests' runs are on
    pca, and a dashboard with no kept view opens on the recommended gene encoder (mihd.recommended)."""
    from mihd.grid import GridSpec
    from mihd_tui import view_state

    if not (view_state.host_index_dir(Path(root)) / view_state.FILE).exists():
        view_state.save(Path(root), GridSpec("demo", gene))


def cleanup(root):
    """Kill whatever a test left running in `root`."""
    from mihd.runs.kill import kill_run
    from mihd.runs.status import list_runs

    for v in list_runs(root):
        if v.active:
            try:
                kill_run(root, v.id, "KILL", grace=1)
            except Exception:
                pass


async def move_to(pilot, fusion, column):
    """Put the grid's cursor on (fusion, column)."""
    from mihd_tui.widgets.grid_table import GridTable

    table = pilot.app.screen_stack[1].query_one(GridTable)
    table.focus()
    table.move_cursor(row=table.grid.rows.index(fusion), column=table.grid.columns.index(column))
    await pilot.pause()
