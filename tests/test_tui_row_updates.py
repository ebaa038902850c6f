"""The runs table redraws only the rows whose run changed: a refresh where one of 12 runs moved on renders that
run's row alone (it used to render every row, the dashboard's idle CPU), and shows what changed."""

from contextlib import asynccontextmanager
from dataclasses import MISSING, fields, replace

from textual.app import App, ComposeResult

from mihd.runs.status import RunView
from mihd_tui.widgets.runs_table import RunsTable


def run_view(i: int, **kw) -> RunView:
    needed = {f.name: None for f in fields(RunView) if f.default is MISSING and f.default_factory is MISSING}
    return RunView(**{**needed, "id": f"20261206-1200{i:02d}-000-abc{i:03d}", "label": f"demo pca+texture concat {i}",
                      "status": "running", "backend": "local", "run_dir": f"/runs/{i}", "signature": "", "n_cells": 1,
                      "eta_confidence": "low", "overrun": False, "progress": 0.5, "elapsed": 60.0, "eta_s": 60.0,
                      "cpu_percent": 90.0, **kw})


def rows_drawn(table: RunsTable) -> list[str]:
    """The ids of the rows the table draws from now on, in the order drawn."""
    drawn: list[str] = []
    render_row = table._render_line_in_row

    def spy(row_key, *args, **kw):
        drawn.append(row_key.value)
        return render_row(row_key, *args, **kw)

    table._render_line_in_row = spy
    return drawn


class TableApp(App):
    def compose(self) -> ComposeResult:
        yield RunsTable()


@asynccontextmanager
async def showing(views: list[RunView]):
    """(pilot, the runs table showing `views`, the ids of the rows it draws from then on)."""
    app = TableApp()
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.query_one(RunsTable)
        table.show(views)
        await pilot.pause()
        yield pilot, table, rows_drawn(table)


async def test_a_refresh_redraws_only_the_row_of_the_run_that_changed():
    views = [run_view(i) for i in range(12)]
    async with showing(views) as (pilot, table, drawn):
        table.show(list(views))  # nothing changed: nothing drawn
        await pilot.pause()
        assert drawn == []
        moved = replace(views[4], elapsed=75.0, cpu_percent=12.0, progress=0.75)
        table.show(views[:4] + [moved] + views[5:])
        await pilot.pause()
        assert set(drawn) == {moved.id}
        assert str(table.get_cell(moved.id, "cpu")) == "12%" and str(table.get_cell(views[5].id, "cpu")) == "90%"
        assert "75%" in str(table.get_cell(moved.id, "progress")) and str(table.get_cell(moved.id, "elapsed")) == "1m"


async def test_a_live_run_past_its_first_minute_is_drawn_again_once_a_minute_not_at_each_refresh():
    views = [run_view(i, elapsed=125.0, eta_s=290.0, cpu_percent=0.0) for i in range(12)]
    async with showing(views) as (pilot, table, drawn):
        for step in (3, 6, 9):  # three refreshes: each run 3 s older, 3 s nearer its end
            table.show([replace(v, elapsed=v.elapsed + step, eta_s=v.eta_s - step) for v in views])
            await pilot.pause()
        assert drawn == []
        assert (str(table.get_cell(views[0].id, "elapsed")), str(table.get_cell(views[0].id, "eta"))) == ("2m", "4m?")
        table.show([replace(v, elapsed=180.0) for v in views])  # the minute turned: every row shows it
        await pilot.pause()
        assert set(drawn) == {v.id for v in views} and str(table.get_cell(views[0].id, "elapsed")) == "3m"


async def test_a_row_marked_for_maps_shows_it_though_its_words_are_the_same():
    views = [run_view(i) for i in range(3)]
    app = TableApp()
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.query_one(RunsTable)
        table.show(views)
        await pilot.pause()
        table.marked = views[1].id
        table.show(list(views))
        await pilot.pause()
        assert table.get_cell(views[1].id, "id").style == "reverse"  # a change of style alone is drawn too
        assert table.get_cell(views[0].id, "id").style == ""


async def test_a_changed_row_is_drawn_with_its_new_values_not_the_ones_drawn_before():
    """Found on a first start: the grid's texture column kept `·` on screen after its embedding was cached
    (the row's cells were taken from a render cache keyed by the table's update count) until a resize."""
    views = [run_view(i) for i in range(3)]
    app = TableApp()
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.query_one(RunsTable)
        table.show(views)
        await pilot.pause()
        screen = lambda: "\n".join(table.render_line(y).text for y in range(table.size.height))  # noqa: E731
        assert screen().count("90%") == 3
        table.show([views[0], replace(views[1], cpu_percent=12.0), views[2]])
        await pilot.pause()
        assert screen().count("90%") == 2 and "12%" in screen()
