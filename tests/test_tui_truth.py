"""Numbers that mean what they say, on real fanned-out grids at 80x24: a score made with random-init weights
carries its mark wherever it is shown (grid, cell line, history, a cell's runs, compare titles); the launch
dialog counts a cell's runs inside grids, and the time it shows is the one the run is judged by."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from mihd.runs.durations import parse_duration
from mihd_tui.screens.cell_runs import CellRunsDialog
from mihd_tui.screens.launch import LaunchDialog
from mihd_tui.screens.compare import cell_title
from mihd_tui.widgets.grid_table import GridTable
from mihd_tui.widgets.runs_table import RunsTable

from conftest import run_mihd
from tui_helpers import app_for, cleanup, move_to, wait_until

pytestmark = pytest.mark.timeout(400)


def random_init_texture(root) -> None:
    """Mark the cached texture embedding as made with random weights (as `--random-init` would)."""
    meta = root / "embeddings" / "entries" / "demo" / "vision~texture~standard.json"
    data = json.loads(meta.read_text())
    meta.write_text(json.dumps({**data, "random_init": True}))


def launch_grid(root, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "mihd", "launch", "--root", str(root), *args, "--", "grid", "demo",
                          "--gene", "pca", "--vision", "texture", "--fusion", "concat,mean"],
                         capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def random_grids(tmp_path_factory, cached_template):
    """Two finished fanned-out grids (2 workers) whose texture input had random weights."""
    root = tmp_path_factory.mktemp("provenance") / "ws"
    shutil.copytree(cached_template, root)
    random_init_texture(root)
    ids = [launch_grid(root, "--parallel", "2") for _ in range(2)]
    from mihd.runs.status import list_runs
    from runs_helpers import wait_for

    wait_for(lambda: all(v.status == "done" for v in list_runs(root, all=True) if v.id in ids) and
             len([v for v in list_runs(root, all=True) if v.id in ids]) == 2, timeout=300, every=0.5)
    return root, ids


async def test_a_fanned_out_random_init_grid_marks_its_scores_everywhere(random_grids):
    root, ids = random_grids
    app = app_for(root)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await wait_until(pilot, lambda: app.screen.query(GridTable) and app.screen.query_one(GridTable).grid
                                 and len(app.screen.query_one(GridTable).grid[("concat", "texture")].history) == 2
                                 and app.screen.query_one(GridTable))
        cs = table.grid[("concat", "texture")]
        assert cs.random_init and str(table.get_cell("concat", "texture")).endswith("*")
        await move_to(pilot, "concat", "texture")
        line = str(app.screen.query_one("#cell-info").render())
        assert "random-init weights" in line and "* random init" in line  # the score and its history
        await pilot.press("o")
        dialog = await wait_until(pilot, lambda: isinstance(app.screen, CellRunsDialog) and app.screen)
        assert all(f"ARI {s.ari:.3f}*" in dialog._line(s.run_id) for s in cs.history)
        await pilot.press("escape")
        runs = app.screen.query_one(RunsTable)
        shown = [str(runs.get_cell(i, "status")) for i in ids]  # the runs table's score too, its * not cut off
        assert all(s.startswith("done ") and s.endswith("*") and len(s) <= runs.columns["status"].width for s in shown)
    listed = run_mihd("runs", "ls", root=root).stdout
    assert all(ln.rstrip().endswith("*") for ln in listed.splitlines() if ln.split()[:1] in ([i] for i in ids))
    assert "* made with random-init weights" in listed
    shown = run_mihd("runs", "show", ids[0], root=root).stdout
    assert sum(" done  ARI " in ln and "* " in ln for ln in shown.splitlines()) == 2, shown  # each cell's score
    result = json.loads((root / "runs" / ids[0] / "result.json").read_text())
    index = next(i for i, c in enumerate(result["cells"]) if c["fusion"] == "concat")
    assert cell_title(ids[0], result, index).startswith(f"[b]ARI {result['cells'][index]['ari']:.3f}* random init")


@pytest.fixture
def grids_copy(tmp_path, random_grids):
    root, ids = random_grids
    copy = tmp_path / "ws"
    shutil.copytree(root, copy)
    yield copy, ids
    cleanup(copy)


async def test_the_launch_dialog_counts_runs_inside_grids_and_launches_the_time_it_shows(grids_copy):
    root, ids = grids_copy
    app = app_for(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.query(GridTable) and app.screen.query_one(GridTable).grid)
        await move_to(pilot, "concat", "texture")
        await pilot.press("enter")
        dialog = await wait_until(pilot, lambda: isinstance(app.screen, LaunchDialog) and app.screen)
        hint = str(dialog.query_one("#launch-hint").render())
        assert "scored 2x inside grids" in hint and "no history yet" not in hint
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, LaunchDialog))
        # the grid that ran twice: prefilled with when it counts as overrunning (3x the median of 2 runs)
        app.open_launch(["concat", "mean"], ["texture"], "two cells")
        dialog = await wait_until(pilot, lambda: isinstance(app.screen, LaunchDialog) and app.screen.query("#expect")
                                  and app.screen)
        shown = dialog.query_one("#expect").value
        assert shown and "2 runs" in str(dialog.query_one("#launch-hint").render())
        assert dialog._request()[0].expect == parse_duration(shown, "x")  # what it shows is what runs
        dialog.query_one("#expect").value = "2m"  # and what the user types
        assert dialog._request()[0].expect == 120.0


def test_a_fanned_out_grid_is_judged_by_the_expected_time_given_at_launch(grids_copy):
    """Its cells' own history (well under a second each) would never flag it; `--expect 1s` does."""
    root, _ = grids_copy
    run_id = launch_grid(root, "--parallel", "2", "--expect", "1s")
    from mihd.runs.status import list_runs
    from runs_helpers import wait_for

    view = wait_for(lambda: next((v for v in list_runs(root, all=True) if v.id == run_id and not v.active), None),
                    timeout=300, every=0.5)
    assert view.overrun and (view.expected_s, view.expected_source) == (1.0, "given")
