"""Keys that launch or change state never fire from a typing habit, at 80x24: the tab strip never takes focus,
`/` reaches the runs filter from anywhere, Esc clears it from the table too, and the launch dialog starts on
its first field, where typing picks a choice instead of being dropped."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from mihd_tui.screens.launch import LaunchDialog
from mihd_tui.widgets.grid_table import GridTable
from mihd_tui.widgets.runs_table import RunsFilter, RunsTable
from tui_helpers import app_for, frozen_run, move_to, wait_until

pytestmark = pytest.mark.timeout(120)


async def ready(pilot):
    app = pilot.app
    await wait_until(pilot, lambda: app.screen.query(GridTable) and app.screen.query_one(GridTable).grid
                     and app.screen.query_one(RunsTable).row_count)


async def test_focus_never_lands_on_the_tab_strip_and_slash_filters_from_anywhere(workspace):
    frozen_run(workspace)
    app = app_for(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        seen = []
        for key in ["tab"] * 4 + ["shift+tab"] * 4:
            await pilot.press(key)
            seen.append(type(app.focused).__name__)
        assert "Tabs" not in seen and set(seen) <= {"GridTable", "RunsTable"}, seen
        table = app.screen.query_one(GridTable)
        table.focus()
        await pilot.press("slash")  # from the grid: the runs filter box takes the keys
        box = await wait_until(pilot, lambda: app.screen.query("#runs-filter") and app.screen.query_one("#runs-filter"))
        assert app.focused is box and app.screen.query_one("#tabs").active == "runs-tab"
        await pilot.press("z", "z", "z", "enter")  # kept; back on the table with no run shown
        runs = app.screen.query_one(RunsTable)
        assert app.focused is runs and runs.row_count == 0
        await pilot.press("escape")  # from the table: the filter goes, every run is back
        await wait_until(pilot, lambda: runs.row_count == 1 and not app.screen.query(RunsFilter))


async def test_the_launch_dialog_starts_on_its_first_field_and_typing_picks_a_choice(cached_root):
    app = app_for(cached_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.query(GridTable) and app.screen.query_one(GridTable).grid)
        await move_to(pilot, "concat", "texture")
        await pilot.press("enter")
        dialog = await wait_until(pilot, lambda: isinstance(app.screen, LaunchDialog) and app.screen.query("#cluster")
                                  and app.screen)
        await pilot.pause()
        assert app.focused is dialog.query_one("#cluster")
        await pilot.press("k")  # typed into the clusterer: kmeans, not a dropped key
        assert str(dialog.query_one("#cluster").value) == "kmeans"
        assert "--cluster kmeans" in str(dialog.query_one("#launch-cmd").render())
        for _ in range(6):  # n clusters, seeds, variant, backend, options, overrun after: in form order
            await pilot.press("tab")
        assert app.focused is dialog.query_one("#expect", Input)
