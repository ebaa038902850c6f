"""The main screen at 80x24 and 200x50: footer keys whole, the help's legend and keys, Ctrl+C's hint, the line
under the grid using the width, the runs table's CELL column showing the fusion and its sort arrow."""

from __future__ import annotations

import pytest
from rich.cells import cell_len

from mihd_tui.screens.help import HelpScreen
from mihd_tui.widgets.grid_table import GridTable
from mihd_tui.widgets.runs_table import RunsTable
from tui_helpers import app_for, frozen_run, wait_until

pytestmark = pytest.mark.timeout(120)


async def ready(pilot):
    app = pilot.app
    return await wait_until(pilot, lambda: app.screen.query(GridTable) and app.screen.query_one(GridTable).grid
                            and app.screen.query_one(RunsTable).row_count and app.screen)


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
async def test_footer_keys_are_whole_and_the_runs_table_shows_the_fusion_and_its_sort_arrow(workspace, size):
    frozen_run(workspace)
    app = app_for(workspace)
    async with app.run_test(size=size) as pilot:
        main = await ready(pilot)
        keys = list(main.query("FooterKey"))
        assert keys and all(k.region.right <= size[0] for k in keys)
        shown = [k.description for k in keys]
        assert shown[:2] == ["Quit", "Help"] and "Gene" in shown and "palette" not in shown
        runs = main.query_one(RunsTable)
        label = str(runs.get_row_at(0)[1])
        assert "concat" in label and "gmm" in label, label  # the slice is in the header, the fusion here
        runs.focus()
        for _ in range(5):  # to ELAPSED, the widest title
            await pilot.press("S")
        column = runs.columns["elapsed"]
        assert str(column.label).endswith("▲") and column.width >= cell_len(str(column.label))
        info = main.query_one("#cell-info")
        assert info.region.width >= size[0] - 2  # the line under the grid takes the whole width


async def test_help_lists_q_and_ctrl_c_points_to_q(workspace):
    app = app_for(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.query(GridTable))
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: app._notifications)
        assert any("Press [b]q[/b]" in n.message for n in app._notifications)
        await pilot.press("question_mark")
        help_screen = await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen)
        keys = str(help_screen.query_one("#help-keys").render())
        assert "       q  " in keys and "^q" not in keys


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
async def test_the_whole_grid_dialog_fits_the_terminal_with_its_buttons_in_view(cached_root, size):
    """Its command lines, form and hint once overflowed a 24-row terminal and cut off Launch and Cancel: the body
    scrolls now, the buttons close the dialog, and Tab from the last field still reaches Launch."""
    from mihd_tui.screens.launch import LaunchDialog

    app = app_for(cached_root)
    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: app.screen.query(GridTable) and app.screen.query_one(GridTable).grid)
        await pilot.press("a")
        dialog = await wait_until(pilot, lambda: isinstance(app.screen, LaunchDialog) and app.screen)
        dialog.query_one("#seeds").value = "one, two and three seeds, none of them a number"
        await pilot.press("ctrl+l")  # refused: the error says why, under the form
        await pilot.pause(0.5)
        box, body = dialog.query_one("#dialog").region, dialog.query_one("#launch-body").region
        assert box.y >= 0 and box.bottom <= size[1]
        error = dialog.query_one("#launch-error")
        assert "seeds" in str(error.render()) and body.contains_region(error.region), (error.region, body)
        for button in ("#go", "#cancel"):
            region = dialog.query_one(button).region
            # on the row above the bottom border: no blank rows under them (there were 2 at 80x24)
            assert region.height == 1 and region.y == box.bottom - 2, (button, region, box)
        dialog.query_one("#refine").focus()
        await pilot.press("tab")
        assert app.focused is dialog.query_one("#go")
