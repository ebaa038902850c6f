"""A grid cell's history on the dashboard keeps scores of labelled spots only (`--drop-unlabelled`) apart from
scores of every spot, and says which is which: real runs on the demo slice, the app driven headless."""

from __future__ import annotations

import shutil

import pytest
from conftest import run_dir_of, with_demo

from mihd.data.registry import register
from mihd.grid import ALL_SLICES

from mihd_tui.screens.cell_runs import CellRunsDialog
from tui_helpers import app_for, move_to, wait_until

pytestmark = pytest.mark.timeout(300)

CELL = ("run", "demo", "--gene", "pca", "--fusion", "gene_only")


@pytest.fixture(scope="module")
def two_measures(tmp_path_factory, demo_h5ad):
    """gene_only x none scored twice on every spot, then twice on labelled spots only."""
    root = with_demo(tmp_path_factory.mktemp("labelled") / "ws", demo_h5ad)
    every = [run_dir_of(*CELL, "--seed", str(s), root=root).name for s in (0, 1)]
    labelled = [run_dir_of(*CELL, "--seed", str(s), "--drop-unlabelled", root=root).name for s in (0, 1)]
    return root, every, labelled


def info(app) -> str:
    return str(app.screen.query_one("#cell-info").render())


async def test_a_cells_history_never_pools_labelled_spots_with_every_spot(two_measures):
    root, every, labelled = two_measures
    app = app_for(root)
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_until(pilot, lambda: app.snapshot and len(app.snapshot.grid[("gene_only", "none")].history) == 4)
        await move_to(pilot, "gene_only", "none")
        line = await wait_until(pilot, lambda: "ARI over" in info(app) and info(app))
        assert "ARI over 4 runs" not in line, line
        assert "ARI over 2 runs on every spot" in line and "ARI over 2 runs on labelled spots only" in line, line
        assert "(labelled spots only)" in line.split("ARI over")[0], line  # the latest score is of labelled spots
        await pilot.press("o")
        dialog = await wait_until(pilot, lambda: isinstance(app.screen, CellRunsDialog) and app.screen)
        options = dialog.query_one("#cell-runs")
        lines = {options.get_option_at_index(i).id: str(options.get_option_at_index(i).prompt)
                 for i in range(options.option_count)}
        assert all("labelled spots only" in lines[r] for r in labelled), lines
        assert not any("labelled spots only" in lines[r] for r in every), lines
        history = str(dialog.query_one("#cell-runs-info").render()).splitlines()
        measures = [h for h in history if h.startswith("ARI over")]  # one line each, never one pooled line
        assert len(measures) == 2 and "every spot" in measures[0] and "labelled spots only" in measures[1], history


async def test_all_slices_never_averages_labelled_spots_with_every_spot(tmp_path, demo_h5ad):
    """demo scored on every spot, then demo2 on labelled spots only: the study's mean takes one measure."""
    root = with_demo(tmp_path / "ws", demo_h5ad)
    copy = root / "copies" / "demo2.h5ad"
    copy.parent.mkdir()
    shutil.copy(demo_h5ad, copy)
    register(root, "demo2", copy)
    run_dir_of("run", "demo", "--gene", "pca", "--fusion", "gene_only", root=root)
    labelled = run_dir_of("run", "demo2", "--gene", "pca", "--fusion", "gene_only", "--drop-unlabelled", root=root)
    app = app_for(root)
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_until(pilot, lambda: app.snapshot and app.snapshot.slices[-1] == ALL_SLICES)
        app.set_slice(ALL_SLICES)
        cs = await wait_until(pilot, lambda: app.snapshot.spec.slice == ALL_SLICES
                              and app.snapshot.grid[("gene_only", "none")])
        assert [s for s, _ in cs.slices] == ["demo2"] and cs.scored_by == labelled.name, cs
        await move_to(pilot, "gene_only", "none")
        line = await wait_until(pilot, lambda: "mean ARI" in info(app) and info(app))
        assert "over 1 slice (labelled spots only)" in line, line
