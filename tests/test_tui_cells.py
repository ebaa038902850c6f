"""The dashboard's grid cells, cache tab, log viewer, first start and read-only mode, driven by a Pilot
against real workspaces, run dirs, lock files and processes."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from rich.style import Style

from mihd.cache import CacheKey, EmbeddingCache
from mihd.rundir import EventLog
from mihd.runs.backends.base import Option
from mihd_tui.app import MihdApp
from mihd_tui.screens.cell_runs import CellRunsDialog
from mihd_tui.screens.launch import LaunchDialog
from mihd_tui.screens.modal import ConfirmDialog
from mihd_tui.widgets.grid_table import GridTable
from mihd_tui.widgets.inventory import CacheInventory
from mihd_tui.widgets.log_view import CURRENT_STYLE, LogView
from runs_helpers import launch_fake
from tui_helpers import FIXED_ID, app_for, cleanup, frozen_run, kept_view, move_to, no_gpu, wait_until

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def uni_weights(tmp_path, monkeypatch):
    """Weights for `uni` only (a real file where mihd.encoders looks); no Hugging Face cache."""
    (tmp_path / "weights" / "uni").mkdir(parents=True)
    (tmp_path / "weights" / "uni" / "pytorch_model.bin").write_bytes(b"x")
    monkeypatch.setenv("MIHD_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))


def info(app) -> str:
    return str(app.screen.query_one("#cell-info").render())


async def grid_ready(pilot):
    return await wait_until(pilot, lambda: pilot.app.screen.query(GridTable)
                            and pilot.app.screen.query_one(GridTable).grid is not None
                            and pilot.app.screen.query_one(GridTable).grid)


async def cache_tab(pilot) -> CacheInventory:
    """The grid drawn, then the Cache tab: its table."""
    await grid_ready(pilot)
    await pilot.press("2")
    return pilot.app.screen.query_one("#inventory", CacheInventory)


async def test_cells_without_weights_are_marked_skipped_and_never_start_under_the_cursor(cached_root, uni_weights):
    app = app_for(cached_root)
    async with app.run_test(size=(80, 24)) as pilot:
        grid = await grid_ready(pilot)
        table = app.screen.query_one(GridTable)
        assert table.current == ("gene_only", "texture")  # the cursor starts on a cell that can run
        assert str(table.get_cell("concat", "uni2")) == "⊘" and str(table.get_cell("concat", "uni")) == "·"
        await move_to(pilot, "concat", "uni2")
        assert "no weights for uni2" in info(app)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, LaunchDialog)
        assert any("no weights for uni2" in n.message for n in app._notifications)
        await move_to(pilot, "concat", "texture")
        await pilot.press("a")  # the whole grid: every runnable column, `none` included, the others skipped
        dialog = await wait_until(pilot, lambda: isinstance(app.screen, LaunchDialog) and app.screen)
        assert dialog.groups == [(grid.rows, ["uni", "texture"]),
                                 (["gene_only", "gene_smooth", "staig_fusion", "graphst", "stagate", "spagcn"], ["none"])]
        skipped = str(dialog.query_one("#launch-skipped").render())  # in the dialog: no toast over its buttons
        assert skipped == "skipping uni2, hipt, resnet50: no weights here and nothing cached", skipped
        assert not any("skipping" in n.message for n in app._notifications)


async def test_enter_on_a_running_cell_asks_before_a_second_run_and_o_offers_the_cells_runs(workspace):
    frozen_run(workspace)  # an earlier finished run of concat x texture (ARI 0.62)
    run_id = launch_fake(workspace, "--seconds", "60")
    app = app_for(workspace)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await grid_ready(pilot)
            await wait_until(pilot, lambda: app.snapshot.grid[("concat", "texture")].state == "running")
            await move_to(pilot, "concat", "texture")
            cs = app.snapshot.grid[("concat", "texture")]
            assert cs.ari == 0.62 and cs.runs == (run_id, FIXED_ID)  # the last result stays beside the attempt
            assert str(app.screen.query_one(GridTable).get_cell("concat", "texture")).endswith(" .62")
            await pilot.press("enter")
            ask = await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog) and app.screen)
            assert run_id in str(ask.query_one("#confirm-text").render())
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmDialog))
            await pilot.press("o")
            pick = await wait_until(pilot, lambda: isinstance(app.screen, CellRunsDialog) and app.screen)
            options = pick.query_one("#cell-runs")
            assert [options.get_option_at_index(i).id for i in range(options.option_count)] == [run_id, FIXED_ID]
            await pilot.press("down", "enter")  # the older, finished run
            await wait_until(pilot, lambda: getattr(app.screen, "run_id", None) == FIXED_ID)
            await pilot.press("escape", "1")  # the runs tab: the status line speaks of the selected run
            await wait_until(pilot, lambda: "· run " in info(app) and "Enter: open" in info(app))
    finally:
        cleanup(workspace)


async def test_the_log_wraps_scrolls_marks_matches_and_says_whether_it_follows(workspace):
    run_dir = frozen_run(workspace)
    long = "epoch " + "x" * 300 + " needle here"
    (run_dir / "run.log").write_text("\n".join([f"line {i}" for i in range(200)] + [long, "the end, Needle too"])
                                     + "\n")
    kept_view(workspace)
    app = MihdApp(workspace, interval=3600, gpu=no_gpu(), setup_demo=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await grid_ready(pilot)
        app.open_run(FIXED_ID)
        log = await wait_until(pilot, lambda: app.screen.query(LogView) and app.screen.query_one(LogView).line_count
                               and app.screen.query_one(LogView))
        await pilot.press("l")
        status = app.screen.query_one("#log-status")
        wrapped = log.line_count
        assert wrapped > 202 and max(len(line) for line in log.lines) < 80  # the long line wraps
        await pilot.press("w")
        await pilot.pause(0.2)
        assert log.line_count == 202 and log.max_scroll_x > 0  # one line each, and sideways scrolling
        await pilot.press("right")
        await pilot.pause(0.2)
        assert log.scroll_x > 0
        await wait_until(pilot, lambda: "following the end" in str(status.render()))
        await pilot.press("up", "pageup")
        await pilot.pause(0.7)
        assert log.scroll_y < log.max_scroll_y and "paused: scrolled up" in str(status.render())
        await pilot.press("slash")
        await pilot.press(*"needle", "enter")
        await pilot.pause(0.3)
        assert "'needle': match 1 of 2, log line 201" in str(status.render())  # run.log lines, not screen lines

        def marked(row, colour):
            strip = log._render_line_strip(row, log.rich_style)
            return "".join(seg.text for seg in strip if seg.style and seg.style.bgcolor
                           and seg.style.bgcolor.name == colour)

        current = Style.parse(CURRENT_STYLE).bgcolor.name
        assert marked(200, current) == "needle" and marked(201, "yellow") == "Needle"  # the current one apart
        await pilot.press("n")
        await pilot.pause(0.2)
        assert "match 2 of 2, log line 202" in str(status.render())
        assert marked(200, "yellow") == "needle" and marked(201, current) == "Needle"
        await pilot.press("w")  # wrapped again: the count stays in log lines, the mark follows its line
        await pilot.pause(0.3)
        assert "match 2 of 2, log line 202" in str(status.render())
        assert marked(log.line_count - 1, current) == "Needle"
        await pilot.press("end")
        await pilot.pause(0.7)
        assert "following the end" in str(status.render())


async def test_the_cache_tab_shows_flags_compute_time_full_names_and_computations_in_flight(cached_root):
    from mihd.workspace import run_path

    meta = next((cached_root / "embeddings" / "entries" / "demo").glob("vision~texture~*.json"))
    doc = json.loads(meta.read_text())
    meta.write_text(json.dumps({**doc, "random_init": True, "config": {**doc.get("config", {}), "precision": "bf16"}}))
    run_id = "20250101-000000-000-abcdef"
    events = EventLog(run_path(cached_root, run_id))
    events.stage("extract_vision", 45, 100)
    events.close()
    claim = EmbeddingCache(cached_root).claim(CacheKey("slice_with_a_long_name_151673", "vision", "uni", "standard"),
                                              run=run_id)
    try:
        app = app_for(cached_root)
        async with app.run_test(size=(200, 50)) as pilot:
            inv = await cache_tab(pilot)
            assert app.screen.focused is inv  # the tab's table, with its border, not the side one
            await wait_until(pilot, lambda: inv.row_count == 3)
            rows = {str(inv.get_row_at(i)[2]): [str(c) for c in inv.get_row_at(i)] for i in range(3)}
            assert rows["uni"][0] == "slice_with_a_long_name_151673"  # never cut
            assert rows["uni"][5].startswith(" 45%") and rows["uni"][8] == "now"
            assert rows["texture"][4] == "random bf16" and rows["texture"][7].endswith("s")
            inv.move_cursor(row=[str(inv.get_row_at(i)[2]) for i in range(3)].index("uni"))
            await pilot.pause(0.2)
            assert "45/100 (pid " in info(app) and f"run {run_id}" in info(app)
    finally:
        claim.release()
    app = app_for(cached_root)
    async with app.run_test(size=(200, 50)) as pilot:
        await grid_ready(pilot)
        inv = app.screen.query_one("#inventory", CacheInventory)
        await wait_until(pilot, lambda: inv.row_count == 2)  # released: the row is gone


async def test_a_direct_extract_shows_its_progress_and_random_init_flag_while_it_computes(cached_root):
    """`mihd extract --random-init` typed in a shell (no run dir): the cache tab's computing row says how far it got
    and that its weights are random, long before the entry exists."""
    import signal
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # a slow extraction (ResNet50 on the CPU), one core
    proc = subprocess.Popen([sys.executable, "-m", "mihd", "extract", "demo", "--vision", "resnet50", "--random-init",
                             "--root", str(cached_root)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        app = app_for(cached_root)
        async with app.run_test(size=(80, 24)) as pilot:
            inv = await cache_tab(pilot)

            def computing():
                rows = [[str(c) for c in inv.get_row_at(i)] for i in range(inv.row_count)]
                return next((r for r in rows if r[2] == "resnet50" and "%" in r[5]), None)

            row = await wait_until(pilot, computing, timeout=180, every=0.5)
            assert row[4] == "random" and row[8] == "now" and proc.poll() is None
            inv.move_cursor(row=[str(inv.get_row_at(i)[2]) for i in range(inv.row_count)].index("resnet50"))
            await pilot.pause(0.3)
            line = str(app.screen.query_one("#cell-info").render())
            assert "/3016 (pid " in line and "random init" in line, line
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture
def read_only(cached_root, tmp_path):
    """The cached workspace on a read-only mount (root: a read-only bind mount), or without write permission."""
    if os.geteuid() != 0:
        for path in [cached_root, *cached_root.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
        yield cached_root
        for path in [cached_root, *cached_root.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
        return
    view = tmp_path / "ro"
    view.mkdir()
    made = subprocess.run(["mount", "--bind", str(cached_root), str(view)], capture_output=True).returncode == 0 and \
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], capture_output=True).returncode == 0
    if not made:
        subprocess.run(["umount", str(view)], capture_output=True)
        pytest.skip("root without permission to mount: no read-only workspace can be made here")
    yield view
    subprocess.run(["umount", str(view)], check=True)


async def test_a_read_only_workspace_opens_read_only_and_refuses_launches(read_only):
    app = app_for(read_only)
    async with app.run_test(size=(80, 24)) as pilot:
        await grid_ready(pilot)
        assert "read-only workspace" in str(app.screen.query_one("#header").render())
        assert app.snapshot.grid[("concat", "texture")].state == "ready"  # it reads the cache all the same
        await move_to(pilot, "concat", "texture")
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, LaunchDialog)
        assert any("read-only workspace" in n.message and "cannot launch" in n.message for n in app._notifications)


async def test_q_quits_at_once_while_the_first_start_is_still_making_the_demo(tmp_path):
    app = MihdApp(tmp_path, interval=0.2, gpu=no_gpu())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: "first start" in str(app.screen.query_one("#header").render()))
        assert str(app.screen.query_one("#header").render()).lstrip().startswith("first start")  # never cut
        started = time.monotonic()
        await pilot.press("q")
    assert time.monotonic() - started < 3.0  # the demo takes far longer: it was not waited for


class QueueBackend:
    """A backend known only to this test: one option, `queue`, that must be fast or slow."""

    @staticmethod
    def _queue(value: str) -> str:
        if value not in ("fast", "slow"):
            raise ValueError("expected fast or slow")
        return value

    options = ()


QueueBackend.options = (Option("queue", str, help="which queue", validate=QueueBackend._queue, metavar="fast|slow"),)


@pytest.fixture
def queue_backend():
    from mihd.runs import backends

    backends.register("queuetest", QueueBackend)
    yield "queuetest"
    backends.BACKENDS.pop("queuetest", None)
    backends._classes.pop("queuetest", None)


async def _launch_dialog(pilot, app):
    """The launch dialog of the concat x texture cell."""
    await grid_ready(pilot)
    await move_to(pilot, "concat", "texture")
    await pilot.press("enter")
    return await wait_until(pilot, lambda: isinstance(app.screen, LaunchDialog) and app.screen)


async def test_the_launch_dialog_builds_the_options_field_from_the_backends_declaration(workspace, queue_backend):
    from textual.widgets import Input, Select

    frozen_run(workspace)
    kept_view(workspace)
    app = MihdApp(workspace, interval=3600, gpu=no_gpu(), setup_demo=False)
    async with app.run_test(size=(80, 24)) as pilot:
        dialog = await _launch_dialog(pilot, app)
        options = dialog.query_one("#options", Input)
        assert options.display and options.placeholder == "parallel=N|auto"  # local declares --parallel
        dialog.query_one("#backend", Select).value = queue_backend
        await pilot.pause(0.2)
        assert options.display and options.placeholder == "queue=fast|slow"
        options.value = "queue=medium"
        await pilot.press("ctrl+l")
        await pilot.pause(0.2)
        assert isinstance(app.screen, LaunchDialog)  # refused, in one line in the dialog
        assert str(dialog.query_one("#launch-error").render()) == "--queue 'medium': expected fast or slow"
        options.value = "queue=fast"
        (plan,) = dialog._request()
        assert (plan.backend, plan.backend_options) == (queue_backend, {"queue": "fast"})


async def test_the_launch_dialog_asks_for_seeds_shows_them_in_the_command_and_refuses_bad_ones(workspace):
    from textual.widgets import Input

    frozen_run(workspace)
    kept_view(workspace)
    app = MihdApp(workspace, interval=3600, gpu=no_gpu(), setup_demo=False)
    async with app.run_test(size=(80, 24)) as pilot:
        dialog = await _launch_dialog(pilot, app)
        (plan,) = dialog._request()
        assert plan.seeds == (0,)  # left empty: one run with seed 0
        seeds = dialog.query_one("#seeds", Input)
        seeds.value = "3"
        await pilot.pause(0.2)
        assert "--seeds 0,1,2" in str(dialog.query_one("#launch-cmd").render())
        assert dialog._request()[0].seeds == (0, 1, 2)
        seeds.value = "1,1"
        await pilot.press("ctrl+l")
        await pilot.pause(0.2)
        assert isinstance(app.screen, LaunchDialog)
        assert str(dialog.query_one("#launch-error").render()) == "seeds 1,1: a seed is listed twice"


async def test_a_killed_grid_keeps_each_cells_score_and_error_in_the_grid_and_its_detail(workspace):
    from mihd.jsonio import write_json_atomic
    from mihd.plan import Cell, RunSpec
    from mihd.rundir import write_spec

    run_id = "20250101-100000-000-killed"
    run_dir = workspace / "runs" / run_id
    run_dir.mkdir(parents=True)
    cells = tuple(Cell("demo", "pca", v, "concat", "gmm", "standard") for v in ("texture", "uni2", "uni"))
    write_spec(run_dir, RunSpec(cells, kind="grid"), run_id=run_id, argv=["mihd"], cached=[True] * 3)
    with open(run_dir / "events.jsonl", "w") as fh:
        for ev in ({"t": 1.0, "kind": "start", "cells": 3}, {"t": 2.0, "kind": "metric", "index": 0, "ari": 0.61, "nmi": 0.5},
                   {"t": 3.0, "kind": "metric", "index": 1, "ari": None, "nmi": None, "error": "no weights for uni2"},
                   {"t": 4.0, "kind": "kill", "signal": "TERM", "by": "me", "grace": 1, "escalated": False,
                    "survivors": 0, "left": [], "outside": []}):
            fh.write(json.dumps(ev) + "\n")
    write_json_atomic(run_dir / "proc.json", {"pid": 4242, "create_time": 1.0, "sid": 4242, "host": "node1",
                                              "uid": 0, "started": 1.0})
    write_json_atomic(run_dir / "exit.json", {"code": None, "signal": "TERM", "ended": 4.0, "forwarded": ["TERM"]})
    kept_view(workspace)
    app = MihdApp(workspace, interval=3600, gpu=no_gpu(), setup_demo=False)
    async with app.run_test(size=(120, 40)) as pilot:
        grid = await grid_ready(pilot)
        assert app.find_view(run_id).status == "killed"
        states = {v: (grid[("concat", v)].state, grid[("concat", v)].ari, grid[("concat", v)].reason)
                  for v in ("texture", "uni2", "uni")}
        assert states == {"texture": ("done", 0.61, None), "uni2": ("failed", None, "no weights for uni2"),
                          "uni": ("killed", None, None)}
        await move_to(pilot, "concat", "uni2")
        assert "failed: no weights for uni2" in info(app)
        await pilot.press("o")
        table = await wait_until(pilot, lambda: getattr(app.screen, "run_id", None) == run_id
                                 and app.screen.query_one("#cells").row_count == 2 and app.screen.query_one("#cells"))
        assert [str(c) for c in table.get_row_at(1)][1:] == ["-", "-", "-", "no weights for uni2"]
        assert [str(c) for c in table.get_row_at(0)][1] == "0.610"


async def test_the_cache_tab_shows_the_progress_of_a_fanned_out_grids_extraction(cached_root):
    """A fanned-out grid extracts in a part of its own (`<grid>/extract/<key>/`): the lock names that part,
    so the computing row shows its progress at 80x24."""
    from mihd.extract import lock_run
    from mihd.workspace import run_path

    part = run_path(cached_root, "20250101-000000-000-abcdef") / "extract" / "vision-uni-standard"
    events = EventLog(part)
    events.stage("extract_vision", 30, 100)
    events.close()
    claim = EmbeddingCache(cached_root).claim(CacheKey("demo", "vision", "uni", "standard"),
                                              run=lock_run(cached_root, part))
    try:
        app = app_for(cached_root)
        async with app.run_test(size=(80, 24)) as pilot:
            await grid_ready(pilot)
            await pilot.press("2")
            inv = app.screen.query_one("#inventory", CacheInventory)
            await wait_until(pilot, lambda: inv.row_count == 3)
            row = next([str(c) for c in inv.get_row_at(i)] for i in range(3) if str(inv.get_row_at(i)[2]) == "uni")
            assert row[5].startswith(" 30%"), row
    finally:
        claim.release()


async def test_the_runs_of_a_cell_picker_stays_live(workspace):
    """Opened while the cell's newest run runs, it shows that run done (and scored) once it ends, at 80x24."""
    frozen_run(workspace)
    run_id = launch_fake(workspace, "--seconds", "6")
    app = app_for(workspace)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await grid_ready(pilot)
            await wait_until(pilot, lambda: app.snapshot.grid[("concat", "texture")].state == "running")
            await move_to(pilot, "concat", "texture")
            await pilot.press("o")
            pick = await wait_until(pilot, lambda: isinstance(app.screen, CellRunsDialog) and app.screen)
            options = pick.query_one("#cell-runs")
            first = str(options.get_option_at_index(0).prompt)
            assert run_id in first and "running" in first
            assert not app.poller.paused.is_set()
            await wait_until(pilot, lambda: " done" in str(options.get_option_at_index(0).prompt), timeout=90)
    finally:
        cleanup(workspace)
