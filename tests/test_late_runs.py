"""Late with real supervised processes: a run nobody watches is flagged by its own supervisor, once; a run
that ends in time is not; `mihd runs ls/show` and the dashboard (row, grid cell, header, banner) say so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mihd.plan import Cell
from mihd.runs.status import list_runs
from runs_helpers import launch_fake, wait_for
from tui_helpers import app_for, cleanup, wait_until

pytestmark = pytest.mark.timeout(300)
STAIG = Cell("demo", "pca", "texture", "staig_fusion", "gmm", "standard")


def events(root: Path, run_id: str, kind: str) -> list[dict]:
    path = root / "runs" / run_id / "events.jsonl"
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["kind"] == kind] if path.exists() else []


def slow(root: Path, expect: float = 8) -> str:
    """A training cell of 120 steps over 60 s, expected to take `expect` s: it reports its rate at once."""
    return launch_fake(root, "--seconds", "60", "--stage", "train", "--steps", "120", expect=expect, cells=(STAIG,))


def test_a_run_nobody_watches_is_flagged_late_by_its_own_supervisor_once(workspace):
    run_id = slow(workspace, expect=12)
    try:
        late = wait_for(lambda: events(workspace, run_id, "late"), timeout=60)[0]
        assert late["elapsed"] < 12  # before it overran
        assert late["reason"].startswith("will overrun: projected ") and ", expected 12s (at " in late["reason"]
        assert 40 <= late["projected"] <= 90 and late["source"] == "given"
        assert (workspace / "runs" / run_id / ".event-late").exists()
        view = next(v for v in list_runs(workspace) if v.id == run_id)  # a watcher now: same flag, no 2nd event
        assert view.late and view.late.startswith("will overrun: projected")
        ls = subprocess.run([sys.executable, "-m", "mihd", "runs", "ls", "--root", str(workspace)],
                            capture_output=True, text=True).stdout
        assert "running late" in ls and f"late {run_id}: will overrun: projected" in ls
        show = subprocess.run([sys.executable, "-m", "mihd", "runs", "show", run_id, "--root", str(workspace)],
                              capture_output=True, text=True).stdout
        assert "late  will overrun: projected" in show
        wait_for(lambda: events(workspace, run_id, "overrun"), timeout=60)  # the supervisor overruns it too
        assert len(events(workspace, run_id, "late")) == 1 and len(events(workspace, run_id, "overrun")) == 1
    finally:
        cleanup(workspace)


def test_a_run_that_ends_in_time_is_never_flagged(workspace):
    run_id = launch_fake(workspace, "--seconds", "8", "--stage", "train", "--steps", "40", expect=30, cells=(STAIG,))
    wait_for(lambda: (workspace / "runs" / run_id / "exit.json").exists(), timeout=60)
    assert events(workspace, run_id, "late") == [] and events(workspace, run_id, "overrun") == []
    assert next(v for v in list_runs(workspace) if v.id == run_id).status == "done"


async def test_the_dashboard_shows_late_in_the_row_the_cell_the_header_and_offers_the_kill(workspace):
    from mihd_tui.widgets.overrun_banner import OverrunBanner
    from mihd_tui.widgets.grid_table import GridTable
    from mihd_tui.widgets.runs_table import RunsTable
    from mihd_tui.wording import cell_text

    app = app_for(workspace)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: len(app.screen_stack) > 1 and app.screen_stack[1].query_one(GridTable).grid)
            run_id = slow(workspace, expect=25)
            main = app.screen_stack[1]
            banner = main.query_one(OverrunBanner)
            await wait_until(pilot, lambda: banner.run_id == run_id, timeout=60)
            text = str(banner.render())
            assert "» late:" in text and "will overrun: projected" in text and "t kill (TERM)" in text
            assert str(main.query_one(RunsTable).get_cell(run_id, "status")) == "running »"
            cs = main.query_one(GridTable).grid[("staig_fusion", "texture")]
            assert cs.state == "late" and cell_text(cs).endswith("»")
            assert "1 late" in str(main.query_one("#header").render())
            await pilot.press("t")
            await wait_until(pilot, lambda: app.find_view(run_id).status == "killed", timeout=30)
    finally:
        cleanup(workspace)


def test_a_fanned_out_grid_nobody_watches_is_flagged_late_by_its_runner_from_its_cells_rates(demo_root):
    """The founding case: a grid of training cells expected to take 20 s that needs minutes, never run before
    (no history), is flagged by its own runner early in its cells' training, from their own rates, once; no
    watcher is open. (How many seconds in, on a loaded machine: benchmarks/bench_late.py.)"""
    from conftest import run_mihd

    warm = run_mihd("run", "demo", "--gene", "pca", "--vision", "texture", "--fusion", "gene_only", "--cluster",
                    "kmeans", root=demo_root)  # the embeddings cached, as in a lab's second grid
    assert warm.returncode == 0, warm.stderr
    launched = run_mihd("launch", "--parallel", "2", "--expect", "20s", "--", "grid", "demo", "--gene", "pca",
                        "--vision", "texture", "--fusion", "staig_fusion", "--cluster", "kmeans,gmm", "--seeds", "3",
                        root=demo_root)
    grid_id = launched.stdout.strip()
    assert launched.returncode == 0 and grid_id, launched.stderr
    try:
        late = wait_for(lambda: events(demo_root, grid_id, "late"), timeout=120, every=0.5)[0]
        assert late["reason"].startswith("will overrun: projected ") and ", expected 20s (at " in late["reason"]
        assert late["at"] < 0.2 and late["projected"] > 60 and late["source"] == "given", late
    finally:
        run_mihd("runs", "kill", grid_id, root=demo_root)
    assert len(events(demo_root, grid_id, "late")) == 1
