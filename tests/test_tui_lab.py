"""The dashboard's small lies, driven by a Pilot against real runs: `R` on a running run asks first, `k Kill`
stays in an 80-column footer, a restarted dashboard comes back to its slice, a grid cell's own log opens, the kill dialog's signal and the
grid's cursor read without colour."""

from __future__ import annotations

import json

import pytest

from conftest import run_mihd
from mihd_tui.screens.kill import KillDialog, SignalButton
from mihd_tui.screens.modal import ConfirmDialog
from mihd_tui.widgets.grid_table import GridTable
from mihd_tui.widgets.runs_table import RunsTable
from runs_helpers import launch_fake
from tui_helpers import app_for, cleanup, move_to, wait_until

pytestmark = pytest.mark.timeout(300)


def footer(screen) -> list[str]:
    return [w.description for w in screen.query("FooterKey")]


async def test_rerun_of_a_running_run_asks_first_and_kill_stays_in_a_narrow_footer(workspace):
    run_id = launch_fake(workspace, "--seconds", "120")
    app = app_for(workspace)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: app.find_view(run_id) and app.find_view(run_id).status == "running")
            app.screen.query_one(RunsTable).focus()
            await pilot.pause(0.5)
            keys = footer(app.screen)
            assert "Kill" in keys and keys[:2] == ["Quit", "Help"], keys
            await pilot.press("R")
            dialog = await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog) and app.screen)
            assert "running" in dialog.title_text and "another" in dialog.text
            await pilot.press("escape")
            await pilot.pause(1.5)  # several refreshes: no second copy was started
            assert [v.id for v in app.snapshot.views] == [run_id]
    finally:
        cleanup(workspace)


async def test_a_dashboard_started_again_comes_back_to_the_slice_it_showed(workspace, tmp_path):
    (tmp_path / "s2.h5ad").write_bytes(b"")
    (workspace / "slices.json").write_text(json.dumps({"s2": {"path": str(tmp_path / "s2.h5ad")}}))
    app = app_for(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.snapshot and "s2" in app.snapshot.slices)
        app.screen.query_one(GridTable).focus()
        await pilot.press("s")
        await wait_until(pilot, lambda: app.snapshot.spec.slice == "s2")
        await pilot.press("q")
    again = app_for(workspace)  # the SSH link dropped; a new dashboard reattaches
    async with again.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: again.snapshot and again.snapshot.spec.slice == "s2")
    (workspace / "slices.json").write_text("{}")  # the slice is gone: back to the first choice, not an empty grid
    gone = app_for(workspace)
    async with gone.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: gone.snapshot and gone.snapshot.spec.slice == "demo")


async def test_a_fanned_out_grid_cells_own_log_opens_from_its_detail(cached_root):
    launched = run_mihd("launch", "--parallel", "2", "--", "grid", "demo", "--gene", "pca", "--fusion",
                        "gene_only,gene_smooth", "--cluster", "kmeans", root=cached_root)
    grid_id = launched.stdout.strip()
    assert launched.returncode == 0 and grid_id, launched.stderr
    own = lambda i: (cached_root / "runs" / grid_id / "cells" / str(i) / "run.log").read_text()  # noqa: E731
    app = app_for(cached_root)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.find_view(grid_id) and app.find_view(grid_id).status == "done", 240)
        app.open_run(grid_id)
        cells = await wait_until(pilot, lambda: getattr(app.screen, "run_id", None) == grid_id and next(
            (t for t in app.screen.query("#cells") if t.row_count == 2), None))
        cells.focus()
        cells.move_cursor(row=1)
        await pilot.press("enter")
        log = app.screen.query_one("#log")
        last = own(1).strip().splitlines()[-1]
        # the cell's log, not the grid runner's (both may end on the same supervisor line)
        await wait_until(pilot, lambda: log.lines and log.lines[-1] == last
                         and "[mihd grid]" not in "\n".join(log.lines))
        assert "cell 1's own run.log" in str(app.screen.query_one("#log-status").render())


def drawn(widget) -> str:
    return "\n".join(widget.render_line(y).text for y in range(widget.size.height))


async def test_the_grid_cursor_and_the_chosen_signal_read_without_colour(workspace):
    run_id = launch_fake(workspace, "--seconds", "120")
    app = app_for(workspace)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: app.find_view(run_id) and app.find_view(run_id).status == "running")
            grid = app.screen.query_one(GridTable)
            await move_to(pilot, "concat", "texture")
            lines = drawn(grid).splitlines()
            assert any("▾texture" in line for line in lines) and sum("▾" in line for line in lines) == 1
            assert [line.split()[1] for line in lines if "▸" in line] == ["concat"]
            await pilot.press("k")
            dialog = await wait_until(pilot, lambda: isinstance(app.screen, KillDialog) and app.screen)
            chosen = lambda: [b.render().plain[1] for b in dialog.query(SignalButton)]  # noqa: E731
            assert chosen() == ["●", "○", "○"]  # TERM, INT, KILL
            await pilot.press("down", "enter")
            assert chosen() == ["○", "●", "○"]
            await pilot.press("escape")
    finally:
        cleanup(workspace)
