"""The dashboard's results side, driven by a Pilot against real runs: sort and filter the runs table, remove a
finished run, start a run again, compare two runs' maps, write the results table, the run detail's facts."""

from __future__ import annotations

import getpass
import shutil

import pytest
from conftest import run_dir_of, with_demo
from runs_helpers import launch_fake
from tui_helpers import frozen_run, kept_view, no_gpu, wait_until

from mihd.rundir import read_plan, read_result
from mihd.runs.kill import kill_run
from mihd.runs.status import list_runs
from mihd_tui.app import MihdApp
from mihd_tui.screens.compare import CompareScreen
from mihd_tui.screens.remove import RemoveDialog
from mihd_tui.widgets.grid_table import GridTable
from mihd_tui.widgets.runs_table import RunsFilter, RunsTable

pytestmark = pytest.mark.timeout(300)


def app_for(root):
    kept_view(root)
    return MihdApp(root, interval=0.2, setup_demo=False, kill_grace=2.0, gpu=no_gpu())


def runs_table(app) -> RunsTable:
    return app.screen_stack[1].query_one(RunsTable)


def row_ids(app) -> list[str]:
    table = runs_table(app)
    return [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]


async def focus_run(pilot, run_id: str) -> None:
    table = runs_table(pilot.app)
    table.focus()
    table.move_cursor(row=table.get_row_index(run_id))
    await pilot.pause()


def shown(app, selector: str) -> str:
    """What a widget of the current screen renders ("" while the screen is still being put together)."""
    found = app.screen.query(selector)
    return str(found.first().render()) if found else ""


def notified(app, text: str) -> bool:
    return any(text in n.message for n in app._notifications)


def cleanup(root) -> None:
    for v in list_runs(root):
        if v.active:
            kill_run(root, v.id, "KILL", grace=1)


@pytest.fixture
def three_runs(workspace):
    """Three finished runs: alpha (ARI 0.3), beta (ARI 0.8), gamma (failed), launched in that order."""
    ids = [launch_fake(workspace, "--seconds", 0.2, "--ari", 0.3, name="alpha"),
           launch_fake(workspace, "--seconds", 0.2, "--ari", 0.8, name="beta"),
           launch_fake(workspace, "--seconds", 0.2, "--exit", 3, name="gamma")]
    return workspace, ids


async def test_sort_by_any_column_and_filter_the_runs_table(three_runs):
    root, (alpha, beta, gamma) = three_runs
    app = app_for(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: {app.find_view(i).status if app.find_view(i) else None
                                         for i in (alpha, beta, gamma)} == {"done", "failed"}, timeout=60)
        await wait_until(pilot, lambda: len(row_ids(app)) == 3)
        assert row_ids(app) == [alpha, beta, gamma]  # oldest first
        table = runs_table(app)
        table.focus()
        await pilot.press("S", "S")  # ID -> CELL -> STATUS: the done ones best first, then the failed one
        await wait_until(pilot, lambda: row_ids(app) == [beta, alpha, gamma])
        assert str(table.columns["status"].label) == "STATUS ▲"
        await pilot.press("minus")
        await wait_until(pilot, lambda: row_ids(app) == [gamma, alpha, beta])
        assert str(table.columns["status"].label) == "STATUS ▼"
        await pilot.click(RunsTable, offset=(3, 0))  # the ID title: back to oldest first
        await wait_until(pilot, lambda: row_ids(app) == [alpha, beta, gamma])
        assert str(table.columns["status"].label) == "STATUS"

        await pilot.press("slash")
        bar = await wait_until(pilot, lambda: app.screen.query(RunsFilter).first() if app.screen.query(RunsFilter)
                               else None)
        await pilot.press(*"done")
        await wait_until(pilot, lambda: row_ids(app) == [alpha, beta])
        await pilot.press(*" bet")  # every word must match: status and name
        await wait_until(pilot, lambda: row_ids(app) == [beta])
        assert str(bar.query_one("Label").render()) == "1 of 3 runs"
        await pilot.press("enter")  # keeps the filter, back in the table
        assert app.focused is table and row_ids(app) == [beta]
        await pilot.pause(0.6)  # refreshes keep the filter
        assert row_ids(app) == [beta]
        await pilot.press("slash", "ctrl+u", *"failed")
        await wait_until(pilot, lambda: row_ids(app) == [gamma])
        await pilot.press("escape")  # clears the filter and closes its line
        await wait_until(pilot, lambda: row_ids(app) == [alpha, beta, gamma] and not app.screen.query(RunsFilter))
        assert app.focused is table


async def test_remove_asks_first_and_never_removes_a_running_run(workspace):
    done = launch_fake(workspace, "--seconds", 0.2, name="finished")
    live = launch_fake(workspace, "--seconds", 60, name="live")
    app = app_for(workspace)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: app.find_view(done) and app.find_view(done).status == "done"
                             and app.find_view(live) and app.find_view(live).status == "running", timeout=60)
            await focus_run(pilot, live)
            await pilot.press("D")
            await wait_until(pilot, lambda: notified(app, f"run {live} is running: stop it first"))
            assert not isinstance(app.screen, RemoveDialog)

            await focus_run(pilot, done)
            await pilot.press("D")
            dialog = await wait_until(pilot, lambda: isinstance(app.screen, RemoveDialog) and app.screen)
            assert dialog.view.id == done and app.poller.paused.is_set()
            await pilot.press("enter")  # the focused button is Cancel
            await wait_until(pilot, lambda: not isinstance(app.screen, RemoveDialog))
            assert (workspace / "runs" / done).is_dir()
            await pilot.press("D")
            await wait_until(pilot, lambda: isinstance(app.screen, RemoveDialog))
            await pilot.press("y")
            await wait_until(pilot, lambda: done not in row_ids(app) and notified(app, f"removed run {done}"))
            assert not (workspace / "runs" / done).exists() and (workspace / "runs" / live).is_dir()
            assert [v.id for v in list_runs(workspace, all=True)] == [live]
    finally:
        cleanup(workspace)


@pytest.fixture(scope="module")
def scored_template(tmp_path_factory, demo_h5ad):
    """A workspace with one real finished run: pca gene_only kmeans, seeds 0 and 1."""
    root = with_demo(tmp_path_factory.mktemp("tui-results") / "ws", demo_h5ad)
    run_dir = run_dir_of("run", "demo", "--gene", "pca", "--fusion", "gene_only", "--cluster", "kmeans", "--seeds", "2",
                         root=root)
    return root, run_dir.name


@pytest.fixture
def scored(workspace, scored_template):
    template, run_id = scored_template
    shutil.rmtree(workspace)
    shutil.copytree(template, workspace)
    from mihd.data.registry import register

    register(workspace, "demo", workspace / "demo" / "demo.h5ad")  # the copy's own slice, not the template's
    return workspace, run_id


async def test_rerun_starts_a_new_run_of_the_same_spec(scored):
    root, first = scored
    app = app_for(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: first in row_ids(app), timeout=60)
        await focus_run(pilot, first)
        await pilot.press("R")
        second = await wait_until(pilot, lambda: next((i for i in row_ids(app) if i != first), None), timeout=60)
        assert await wait_until(pilot, lambda: notified(app, f"launched {second}: mihd run demo --gene pca --fusion "
                                                      "gene_only --cluster kmeans --seeds 0,1"))
        await wait_until(pilot, lambda: app.find_view(second).status == "done", timeout=240)
    assert read_plan(root / "runs" / second) == read_plan(root / "runs" / first)
    again, before = read_result(root / "runs" / second), read_result(root / "runs" / first)
    assert [s["ari"] for s in again["cells"][0]["seeds"]] == [s["ari"] for s in before["cells"][0]["seeds"]]


async def test_two_runs_maps_side_by_side_with_legends(workspace):
    worse = frozen_run(workspace, "20250101-093012-345-a1b2c3", ari=0.41)
    better = frozen_run(workspace, "20250101-093013-345-d4e5f6", ari=0.62)
    app = app_for(workspace)
    async with app.run_test(size=(140, 44)) as pilot:
        await wait_until(pilot, lambda: len(row_ids(app)) == 2, timeout=60)
        await focus_run(pilot, worse.name)
        await pilot.press("m")
        await wait_until(pilot, lambda: notified(app, f"run {worse.name} picked"))
        await focus_run(pilot, better.name)
        await pilot.press("m")
        screen = await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen)
        await wait_until(pilot, lambda: "ARI" in str(screen.query_one("#second-title").render()))
        assert "ARI 0.410" in str(screen.query_one("#first-title").render()) and worse.name in \
            str(screen.query_one("#first-title").render())
        assert "ARI 0.620" in str(screen.query_one("#second-title").render())
        first_map = str(screen.query_one("#first-map").render())
        assert all(f"■ L{i}" in first_map for i in range(1, 7)) and "▀" in first_map
        assert "▀" in str(screen.query_one("#truth-map").render())
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, CompareScreen))
        assert runs_table(app).marked is None


async def test_e_on_the_grid_writes_the_results_table_and_the_cell_line_shows_the_sd(scored):
    root, run_id = scored
    cell = read_result(root / "runs" / run_id)["cells"][0]
    app = app_for(root)
    async with app.run_test(size=(120, 40)) as pilot:
        app.set_spec(cluster="kmeans")
        grid = await wait_until(pilot, lambda: (g := app.screen_stack[1].query_one(GridTable)).grid is not None
                                and g.grid.spec.cluster == "kmeans" and g.grid[("gene_only", "none")].state == "done"
                                and g, timeout=60)
        grid.focus()
        grid.move_cursor(row=grid.grid.rows.index("gene_only"), column=grid.grid.columns.index("none"))
        await pilot.pause()
        assert f"ARI {cell['ari']:.3f} ± {cell['ari_sd']:.3f}" in str(app.screen.query_one("#cell-info").render())
        await pilot.press("e")
        await wait_until(pilot, lambda: notified(app, "results of demo written to"), timeout=60)
    written = sorted((root / "results").iterdir())
    assert [p.suffix for p in written] == [".csv", ".md"] and written[0].stem == written[1].stem
    assert any(n.message == f"results of demo written to {written[1]} (and {written[0].name} beside it)"
               for n in app._notifications)
    table = written[1].read_text()
    assert f"| {cell['ari']:.3f} ± {cell['ari_sd']:.3f} |" in table and f"| {run_id} |" in table


async def test_run_detail_shows_command_backend_handle_exit_and_who_killed_it(workspace):
    live = launch_fake(workspace, "--seconds", 60)
    done = frozen_run(workspace)
    app = app_for(workspace)
    try:
        async with app.run_test(size=(140, 44)) as pilot:
            await wait_until(pilot, lambda: app.find_view(live) and app.find_view(live).status == "running"
                             and app.find_view(live).pid, timeout=60)
            pid = app.find_view(live).pid
            kill_run(workspace, live, "TERM", grace=2.0)
            await wait_until(pilot, lambda: app.find_view(live).status == "killed", timeout=30)
            app.open_run(live)
            facts = await wait_until(pilot, lambda: "killed" in shown(app, "RunFacts") and shown(app, "RunFacts"))
            assert "fake_run.py" in facts and f"local, pid {pid}" in facts
            assert f"with TERM by {getpass.getuser()}@" in facts and "ended by signal TERM" in facts
            await pilot.press("escape")
            app.open_run(done.name)
            await wait_until(pilot, lambda: "■ L1" in shown(app, "#pred-map"))
            facts = shown(app, "RunFacts")
            assert "exit code 0" in facts and "pid 4242 on node1" in facts
    finally:
        cleanup(workspace)
