"""The dashboard driven by a Pilot against real runs: launch, watch, kill, overrun, reattach, GPU panel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import psutil
import pytest

from mihd.plan import Cell
from mihd.runs.gpu import Gpu
from mihd_tui.app import MihdApp
from mihd_tui.messages import Notice
from mihd_tui.screens.kill import KillDialog
from mihd_tui.screens.launch import LaunchDialog
from mihd_tui.widgets.gpu_panel import GpuPanel
from mihd_tui.widgets.grid_table import GridTable
from mihd_tui.widgets.overrun_banner import OverrunBanner
from mihd_tui.widgets.runs_table import RunsTable
from mihd_tui.wording import cell_text
from runs_helpers import launch_fake
from tui_helpers import app_for, cleanup, fake_nvml, frozen_run, move_to, no_gpu, wait_until

pytestmark = pytest.mark.timeout(300)


def cell_state(app, fusion="concat", column="texture"):
    grid = app.screen_stack[1].query_one(GridTable).grid if len(app.screen_stack) > 1 else None
    return grid[(fusion, column)] if grid else None


OOM = "killed by KILL (not by mihd: out of memory?)"


def run_row_text(app, run_id, col):
    return str(app.screen_stack[1].query_one(RunsTable).get_cell(run_id, col))


async def test_launch_a_cell_see_it_running_then_done_with_its_ari(cached_root):
    app = app_for(cached_root)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: cell_state(app) is not None)
        assert cell_state(app).state == "ready"
        await move_to(pilot, "concat", "texture")
        await pilot.press("enter")
        dialog = await wait_until(pilot, lambda: isinstance(app.screen, LaunchDialog) and app.screen)
        assert "mihd run demo --gene pca --vision texture" in str(dialog.query_one("#launch-cmd").render())
        await pilot.press("ctrl+l")
        seen = set()

        def finished():
            cs = cell_state(app)
            seen.add(cs.state)
            return cs.state == "done"

        await wait_until(pilot, finished, timeout=240)
        assert seen & {"queued", "running"}, seen  # it was shown on its way
        cs = cell_state(app)
        assert cs.ari is not None and 0.2 < cs.ari <= 1.0
        table = app.screen.query_one(GridTable)
        assert str(table.get_cell("concat", "texture")) == f"{cs.ari:.3f}"
        # the grid shows the score as soon as the cell is scored; the run is done a moment later
        await wait_until(pilot, lambda: run_row_text(app, cs.run_id, "status").startswith("done"))
        await pilot.press("o")  # the run detail shows the result and both maps
        await wait_until(pilot, lambda: "ARI" in str(app.screen.query_one("#pred-title").render()))
        rss = app.screen.query_one("#spark-rss")  # and the most memory the run used
        peak = str(rss.query_one(".spark-value").render())
        assert peak.startswith("max ") and peak.endswith("M"), peak


async def test_kill_from_the_runs_table_asks_then_kills_the_tree(workspace):
    run_id = launch_fake(workspace, "--seconds", "120", "--children", "1")
    app = app_for(workspace)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: app.find_view(run_id) and app.find_view(run_id).status == "running"
                             and app.find_view(run_id).pid)
            pid = app.find_view(run_id).pid
            app.screen.query_one(RunsTable).focus()
            await pilot.press("k")
            dialog = await wait_until(pilot, lambda: isinstance(app.screen, KillDialog) and app.screen)
            assert dialog.view.id == run_id and app.poller.paused.is_set()  # refresh paused while asking
            await pilot.press("y")
            await wait_until(pilot, lambda: app.find_view(run_id).status == "killed", timeout=30)
            assert not app.poller.paused.is_set()
            assert run_row_text(app, run_id, "status") == "killed"
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    finally:
        cleanup(workspace)


async def test_a_run_the_oom_killer_ended_says_so_on_screen(workspace):
    """The kernel's OOM killer sends SIGKILL to the command: the runs line and the run detail name the signal and
    the likely cause, at 80x24, not a bare `failed`."""
    run_id = launch_fake(workspace, "--seconds", "120")
    app = app_for(workspace)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: app.find_view(run_id) and app.find_view(run_id).status == "running")
            proc = json.loads((workspace / "runs" / run_id / "proc.json").read_text())
            os.kill(proc["child_pid"], signal.SIGKILL)
            await wait_until(pilot, lambda: app.find_view(run_id).status == "failed", timeout=30)
            app.screen.query_one(RunsTable).focus()
            await pilot.pause(0.3)
            line = str(app.screen.query_one("#cell-info").render())
            assert line.startswith(f"failed: {OOM}"), line  # first: whole even at 80 columns
            await pilot.press("enter")
            title = await wait_until(pilot, lambda: app.screen.query("#detail-title")
                                     and str(app.screen.query_one("#detail-title").render()))
            assert "failed" in title and "killed by KILL" in title and "out of memory?" in title, title
    finally:
        cleanup(workspace)


async def test_a_runs_own_words_with_brackets_show_as_written(workspace):
    """An error is the run's (or Python's) own text: `[/]` in it crashed the dashboard with a MarkupError and
    `[slurm]` vanished as a style. It shows as written on the grid's line, the runs line and the run detail, and
    a value typed into the launch dialog or a run's name is shown the same way."""
    run_dir = frozen_run(workspace)
    said = "shape [/] and [slurm] here"
    result = json.loads((run_dir / "result.json").read_text())
    result.update(status="failed", error=said, cells=[])
    (run_dir / "result.json").write_text(json.dumps(result))
    (run_dir / "exit.json").write_text(json.dumps({"code": 1, "signal": None, "ended": 2.0, "forwarded": []}))
    events = [json.loads(ln) for ln in (run_dir / "events.jsonl").read_text().splitlines()]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(ev) + "\n" for ev in events if ev["kind"] == "start"))
    named = launch_fake(workspace, "--seconds", 0.2, name="[x] first try",  # a name is the user's words too
                        cells=(Cell("demo", "pca", "texture", "mean", "gmm", "standard"),))
    app = app_for(workspace)

    def line() -> str:
        return str(app.screen.query_one("#cell-info").render())

    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: app.find_view(run_dir.name) is not None)
        await move_to(pilot, "concat", "texture")
        await wait_until(pilot, lambda: said in line())
        table = app.screen.query_one(RunsTable)
        await wait_until(pilot, lambda: app.find_view(named) and  # as drawn: a DataTable reads a str as markup
                         any("[x] first try" in table.render_line(y).text for y in range(table.size.height)))
        table.focus()
        table.move_cursor(row=table.get_row_index(run_dir.name))
        await wait_until(pilot, lambda: line().startswith(f"failed: {said}"))
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen.query("#detail-title")
                         and said in str(app.screen.query_one("#detail-title").render()))
        await pilot.press("escape")
        await move_to(pilot, "concat", "texture")
        await pilot.press("enter")
        dialog = await wait_until(pilot, lambda: isinstance(app.screen, LaunchDialog) and app.screen)
        dialog.query_one("#seeds").value = "[/]"
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: "seeds [/]: " in str(dialog.query_one("#launch-error").render()))
        app.post_message(Notice(f"sbatch: {said}", "error"))  # a notice quotes errors too: shown as plain text
        await wait_until(pilot, lambda: [(n.message, n.markup) for n in app._notifications][-1:] ==
                         [(f"sbatch: {said}", False)])


def footer(screen) -> str:
    return " ".join(w.description for w in screen.query("FooterKey"))


def banner(app) -> OverrunBanner:
    return app.screen_stack[1].query_one(OverrunBanner)


async def test_overrun_flags_the_run_notifies_once_and_offers_to_kill(workspace):
    run_id = launch_fake(workspace, "--seconds", "120", expect=3)
    app = app_for(workspace)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: app.find_view(run_id) and app.find_view(run_id).status == "running")
            await wait_until(pilot, lambda: banner(app).run_id == run_id, timeout=30)
            # notify() posts a message: the toast may land a moment after the banner
            await wait_until(pilot, lambda: any("past its expected time" in n.message for n in app._notifications))
            assert sum("past its expected time" in n.message for n in app._notifications) == 1
            await pilot.press("w")  # keep watching: silenced for this run
            await pilot.pause(1.5)
            assert banner(app).run_id is None and not banner(app).display
            assert cell_state(app).state == "overrun" and "!" in cell_text(cell_state(app))
            assert run_row_text(app, run_id, "status") == "running !"
            await move_to(pilot, "concat", "texture")
            await pilot.press("k")  # the grid cell's run
            await wait_until(pilot, lambda: isinstance(app.screen, KillDialog))
            await pilot.press("y")
            await wait_until(pilot, lambda: app.find_view(run_id).status == "killed", timeout=30)
            assert sum("past its expected time" in n.message for n in app._notifications) == 1
    finally:
        cleanup(workspace)


async def test_the_overrun_banner_leaves_the_grid_and_keys_working_and_goes_when_the_run_ends(workspace):
    """At 80x24 the banner sits under the header: the grid's `!` stays visible, the tab keys work, the footer
    lists the banner's keys, and the banner follows the run and goes when it ends."""
    run_id = launch_fake(workspace, "--seconds", "15", expect=2)
    app = app_for(workspace)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: banner(app).run_id == run_id, timeout=30)
            assert not app.poller.paused.is_set() and app.screen is app.screen_stack[1]  # no dialog on top
            main = app.screen
            assert main.query_one(GridTable).region.y < 12 and "!" in cell_text(cell_state(app))
            await wait_until(pilot, lambda: "TERM overrun" in footer(main) and "Keep watching" in footer(main))
            await pilot.press("2")  # the main screen's keys still work under it
            assert main.query_one("#tabs").active == "cache-tab"

            def facts():
                return str(banner(app).render())

            first = facts()
            keys = first.splitlines()[1]  # whole at 80 columns, before what may be cut (the run's id and process)
            assert keys.index("w keep watching") + len("w keep watching") <= banner(app).content_region.width, keys
            await wait_until(pilot, lambda: facts() != first and "running" in facts(), timeout=10)
            await wait_until(pilot, lambda: banner(app).run_id is None, timeout=30)
            assert app.find_view(run_id).status == "done"  # it went because the run ended, nobody answered
            await wait_until(pilot, lambda: "TERM overrun" not in footer(main) and "Quit" in footer(main))
    finally:
        cleanup(workspace)


async def test_overrun_banner_t_kills_it(workspace):
    run_id = launch_fake(workspace, "--seconds", "120", expect=3)
    app = app_for(workspace)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: banner(app).run_id == run_id, timeout=30)
            await pilot.press("t")
            await wait_until(pilot, lambda: app.find_view(run_id).status == "killed", timeout=30)
    finally:
        cleanup(workspace)


async def test_runs_survive_quitting_and_a_restarted_dashboard_reattaches(workspace):
    run_id = launch_fake(workspace, "--seconds", "30")
    try:
        app = app_for(workspace)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: app.find_view(run_id) and app.find_view(run_id).status == "running")
            pid = app.find_view(run_id).pid
            await pilot.press("q")
        assert psutil.pid_exists(pid)
        app2 = app_for(workspace)
        async with app2.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: app2.find_view(run_id) and (app2.find_view(run_id).progress or 0) > 0.05)
            assert app2.find_view(run_id).status == "running"
            assert "running" in run_row_text(app2, run_id, "status")
            assert cell_state(app2).state == "running"
            app2.open_run(run_id)  # the live log is there too
            await wait_until(pilot, lambda: any("step" in line for log in app2.screen.query("#log") for line in log.lines))
    finally:
        cleanup(workspace)


async def test_a_wide_terminal_shows_the_cache_beside_the_grid(cached_root):
    app = app_for(cached_root)
    async with app.run_test(size=(200, 50)) as pilot:
        side = await wait_until(pilot, lambda: (s := app.screen.query_one("#side-inventory")).row_count == 2 and s)
        assert side.display and side.region.x > 0 and side.region.width > 40  # beside the grid, not below
        assert {str(side.get_row_at(i)[2]) for i in range(2)} == {"pca", "texture"}
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert side.region.width == 0 or not side.display  # at 80 columns the cache is a tab only


async def test_the_runs_table_gives_a_wide_terminal_to_the_cell_labels(workspace):
    run_id = launch_fake(workspace, "--seconds", 0.2, name="a-rather-long-run-name-for-the-cell-column")
    app = app_for(workspace)
    async with app.run_test(size=(200, 50)) as pilot:
        table = app.screen_stack[1].query_one(RunsTable)
        await wait_until(pilot, lambda: table.row_count == 1)
        table.move_cursor(row=0)
        wide = table.columns["cell"].width
        assert wide >= 40  # the whole label, not the first 22 characters
        await pilot.resize_terminal(80, 24)
        await wait_until(pilot, lambda: table.columns["cell"].width < wide)
        assert table.row_count == 1 and table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value == run_id


async def test_at_80_columns_a_long_cell_label_keeps_its_fusion_and_vision(workspace):
    """`pca+resnet50 staig_fusion gmm` was cut to `pca+resnet50 staig_fu…`: the header's gene and clusterer go
    first, then the encoders are cut; a wide terminal shows the whole label again."""
    cells = {launch_fake(workspace, "--seconds", 0.2, cells=(cell,)): cell for cell in (
        Cell("demo", "pca", "resnet50", "staig_fusion", "gmm", "standard"),
        Cell("demo", "pca", "texture", "staig_fusion", "gmm", "staig_strict"))}
    app = app_for(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen_stack[1].query_one(RunsTable)
        await wait_until(pilot, lambda: table.row_count == 2)
        shown = {run_id: run_row_text(app, run_id, "cell") for run_id in cells}
        assert sorted(shown.values()) == ["resnet50 staig_fusion", "texture/… staig_fusion"], shown
        await pilot.resize_terminal(200, 50)
        await wait_until(pilot, lambda: "gmm" in run_row_text(app, next(iter(cells)), "cell"))
        shown = {run_id: run_row_text(app, run_id, "cell") for run_id in cells}
        assert sorted(shown.values()) == ["pca+resnet50 staig_fusion gmm", "pca+texture/staig_strict staig_fusion gmm"]


async def test_gpu_panel_says_no_gpu_when_nvml_finds_none(workspace):
    app = app_for(workspace, gpu=no_gpu())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.snapshot is not None)
        await pilot.press("3")
        label = app.screen.query_one("#gpu-none")
        assert label.display and "no GPU" in str(label.render())
        assert "GPU none" in str(app.screen.query_one("#header").render())


async def test_gpu_panel_shows_each_device(workspace):
    app = app_for(workspace, gpu=Gpu(nvml=fake_nvml(1)))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.snapshot is not None and app.snapshot.gpu)
        await pilot.press("3")
        await pilot.pause(0.5)
        panel = app.screen.query_one(GpuPanel)
        assert not panel.query_one("#gpu-none").display
        assert "Fake H100" in str(panel.query_one(".gpu-name").render())
        assert "57%" in str(panel.query_one(".gpu-util .spark-value").render())


async def test_first_start_in_an_empty_workspace_sets_up_the_demo(tmp_path):
    root = tmp_path / "fresh"
    listing = subprocess.run([sys.executable, "-m", "mihd", "cache", "ls", "--root", str(root)], capture_output=True)
    assert listing.returncode == 0  # a look at the empty cache first (it makes the folder) changes nothing
    app = MihdApp(root, interval=0.3, gpu=no_gpu())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert app.screen_stack[1].query_one(GridTable) is not None  # the screen is there at once
        await wait_until(pilot, lambda: cell_state(app) and cell_state(app).state == "ready", timeout=240)
        assert (root / "slices.json").exists()


def test_bad_workspace_path_is_one_clear_line(tmp_path):
    bad = tmp_path / "a-file"
    bad.write_text("x")
    proc = subprocess.run([sys.executable, "-m", "mihd_tui.app", "--root", str(bad)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"mihd-tui: error: --root {bad}: exists and is not a folder"
    proc = subprocess.run([sys.executable, "-m", "mihd_tui.app", "--root", str(tmp_path), "--interval", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--interval" in proc.stderr


def test_the_dashboard_imports_no_heavy_library():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import mihd_tui.app"], capture_output=True,
                          text=True, timeout=60, env={**os.environ})
    heavy = [line for line in proc.stderr.splitlines()
             if any(m in line for m in ("torch", "timm", "scanpy", "sklearn"))]
    assert proc.returncode == 0 and heavy == []
