"""The dashboard's `all slices`: switched to with `s`, each combination's mean over the slices, and a study
launched from it, run for real on two slices and shown back with its per-slice scores."""

from __future__ import annotations

import shutil

import pytest

from mihd.grid import ALL_SLICES
from mihd_tui.screens.launch import LaunchDialog
from mihd_tui.widgets.grid_table import GridTable
from tui_helpers import app_for, cleanup, move_to, wait_until

pytestmark = pytest.mark.timeout(300)


async def test_all_slices_launches_a_study_and_shows_its_mean_over_the_slices(cached_root, demo_h5ad):
    from mihd.data.registry import register

    root = cached_root
    copy = root / "copies" / "demo2.h5ad"
    copy.parent.mkdir()
    shutil.copy(demo_h5ad, copy)
    register(root, "demo2", copy)
    app = app_for(root)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: app.snapshot and app.snapshot.slices[-1] == ALL_SLICES)
            while app.spec.slice != ALL_SLICES:
                await pilot.press("s")
            assert app.spec.slices == ("demo", "demo2")
            await wait_until(pilot, lambda: app.snapshot.spec.slice == ALL_SLICES)
            await move_to(pilot, "concat", "texture")
            await pilot.press("a")
            dialog = await wait_until(pilot, lambda: isinstance(app.screen, LaunchDialog) and app.screen)
            assert "mihd grid demo,demo2 --gene pca --vision" in str(dialog.query_one("#launch-cmd").render())
            await pilot.press("escape")
            await pilot.press("enter")
            dialog = await wait_until(pilot, lambda: isinstance(app.screen, LaunchDialog) and app.screen)
            assert "mihd grid demo,demo2 --gene pca --vision texture" in str(dialog.query_one("#launch-cmd").render())
            await pilot.press("ctrl+l")
            cs = await wait_until(pilot, lambda: (c := app.snapshot.grid[("concat", "texture")]).state == "done"
                                  and len(c.slices) == 2 and c, timeout=240)
            assert [s for s, _ in cs.slices] == ["demo", "demo2"]
            assert cs.ari == pytest.approx(sum(a for _, a in cs.slices) / 2)
            await wait_until(pilot, lambda: str(app.screen.query_one(GridTable).get_cell("concat", "texture"))
                             == f"{cs.ari:.2f} n2")
            await move_to(pilot, "concat", "texture")
            assert "per slice: demo " in str(app.screen.query_one("#cell-info").render())
            # its detail: each cell says its slice, and its map is drawn from that slice's own spots
            study = next(v for v in app.snapshot.views if v.n_cells == 2 and v.status == "done")
            app.open_run(study.id)
            table = await wait_until(pilot, lambda: app.screen.query("#cells")
                                     and (t := app.screen.query_one("#cells")).row_count == 2 and t)
            assert [str(table.get_row_at(i)[0]).split()[0] for i in range(2)] == ["demo", "demo2"]
            title = app.screen.query_one("#pred-title")
            for row in (1, 0):
                table.move_cursor(row=row)
                await wait_until(pilot, lambda: str(title.render()) == f"predicted · ARI {cs.slices[row][1]:.3f} "
                                                                      "(concat, gmm)")
    finally:
        cleanup(root)
