"""MIHD's recommended configuration is what `mihd run SLICE` runs with no method option, and what the
dashboard's launch dialog starts from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_dir_of, run_mihd
from mihd.recommended import RECOMMENDED

pytestmark = pytest.mark.timeout(300)


def test_run_with_no_method_option_runs_the_recommended_configuration(demo_root):
    out = run_mihd("run", "demo", "--json", root=demo_root)
    assert out.returncode == 0, out.stderr
    assert f"recommended configuration ({' '.join(RECOMMENDED.argv)})" in out.stderr
    summary = json.loads(out.stdout)
    (cell,) = summary["cells"]
    asked = (cell["gene"], cell["vision"], cell["fusion"], cell["cluster"], cell["refine"])
    assert asked == (RECOMMENDED.gene, RECOMMENDED.vision, RECOMMENDED.fusion, RECOMMENDED.cluster,
                     RECOMMENDED.refine)
    assert summary["ari"] is not None and 0.2 < summary["ari"] <= 1.0
    # the run dir's spec says it too, so the dashboard and `mihd runs show` tell which configuration ran
    plan = json.loads((Path(summary["run_dir"]) / "spec.json").read_text())["plan"]
    (planned,) = plan["cells"]
    assert (planned["fusion"], planned["cluster"], plan["refine"]) == (
        RECOMMENDED.fusion, RECOMMENDED.cluster, RECOMMENDED.refine)


def test_a_method_option_without_fusion_is_one_line_naming_it(demo_root):
    out = run_mihd("run", "demo", "--cluster", "kmeans", root=demo_root)
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0 and "--fusion" in out.stderr and "Traceback" not in out.stderr


def test_run_help_says_no_method_option_means_the_recommended_configuration():
    out = run_mihd("run", "--help")
    text = " ".join(out.stdout.split())
    assert out.returncode == 0 and "no method option" in text and " ".join(RECOMMENDED.argv) in text


async def test_the_launch_dialog_opens_with_the_whole_recommended_configuration(cached_root):
    """A first look at the grid (no view kept) is on the recommended gene encoder with the cursor on the
    recommended fusion's cell: Enter opens a dialog that launches exactly what `mihd run SLICE` runs."""
    from textual.widgets import Checkbox, Select

    from mihd.grid import NONE
    from mihd_tui.screens.launch import LaunchDialog
    from tui_helpers import app_for, wait_until

    app = app_for(cached_root, gene=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.screen.query("GridTable") and app.screen.query_one("GridTable").grid)
        table = app.screen.query_one("GridTable")
        assert table.current == (RECOMMENDED.fusion, RECOMMENDED.vision or NONE)
        await pilot.press("enter")
        dialog = await wait_until(pilot, lambda: isinstance(app.screen, LaunchDialog) and app.screen)
        assert dialog.query_one("#cluster", Select).value == RECOMMENDED.cluster
        assert dialog.query_one("#refine", Checkbox).value is RECOMMENDED.refine
        (plan,) = dialog._request()
        (cell,) = plan.cells
        assert (cell.gene, cell.vision, cell.fusion, cell.cluster, plan.refine) == (
            RECOMMENDED.gene, RECOMMENDED.vision, RECOMMENDED.fusion, RECOMMENDED.cluster, RECOMMENDED.refine)
        cmd = str(dialog.query_one("#launch-cmd").render())
        assert all(option in cmd for option in RECOMMENDED.argv)


async def test_the_grid_says_when_the_score_it_shows_was_spatially_refined(demo_root):
    """The recommended configuration refines its labels: the grid's line for the cell says so of the score it
    shows, and says nothing of a plain run's score of the same cell."""
    from mihd.grid import NONE
    from mihd_tui.screens.cell_runs import CellRunsDialog
    from tui_helpers import app_for, wait_until

    home = (RECOMMENDED.fusion, RECOMMENDED.vision or NONE)
    plain = run_dir_of("run", "demo", *(a for a in RECOMMENDED.argv if a != "--refine"), root=demo_root).name
    app = app_for(demo_root, gene=None)
    async with app.run_test(size=(120, 40)) as pilot:
        info = lambda: str(app.screen.query_one("#cell-info").render())  # noqa: E731
        await wait_until(pilot, lambda: app.snapshot and app.snapshot.grid[home].scored_by == plain)
        line = await wait_until(pilot, lambda: "ARI" in info() and info())
        assert "refined" not in line, line
        refined = run_dir_of("run", "demo", root=demo_root).name  # no method option: the recommended one, refined
        await wait_until(pilot, lambda: app.snapshot.grid[home].scored_by == refined, timeout=120)
        line = await wait_until(pilot, lambda: "refined" in info() and info())
        assert line.startswith(f"{home[0]} × {home[1]}: ARI") and "(spatially refined)" in line, line
        await pilot.press("o")  # the cell's runs: each score says how it was made
        dialog = await wait_until(pilot, lambda: isinstance(app.screen, CellRunsDialog) and app.screen)
        options = dialog.query_one("#cell-runs")
        lines = {o.id: str(o.prompt) for o in map(options.get_option_at_index, range(options.option_count))}
        assert "(spatially refined)" in lines[refined] and "refined" not in lines[plain], lines
        history = str(dialog.query_one("#cell-runs-info").render()).splitlines()
        measures = [h for h in history if h.startswith("ARI over")]  # a method each, never one pooled line
        assert [m.split(" ▁")[0].split()[:5] for m in measures] == [["ARI", "over", "1", "plain", "run"],
                                                                      ["ARI", "over", "1", "refined", "run"]], history
