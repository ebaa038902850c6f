"""The runs table: one row per run (keyed by run id), cells updated only when their text changes.

Oldest first, as `mihd runs ls`, until sorted by another column (`S` steps through the columns, `-` reverses,
a click on a title sorts by it); runs without a value in that column (no ETA, no GPU) go last either way.
`/` filters the rows: every word typed must occur in the run's cell label, status, name or id. The table
keeps its rows in place while their order holds, and lays them out again only when it changes.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Label

from mihd.present import fmt_bytes, fmt_duration, fmt_score
from mihd.grid import GridSpec
from mihd.runs.status import RunView

from .fmt import fit_label, fmt_eta, fmt_minutes, short_id, text_bar
from ..text import plain_cells
from .keyed_table import KeyedTable

COLUMNS = (("id", "ID", 11), ("cell", "CELL", 22), ("status", "STATUS", 10), ("progress", "PROGRESS", 11),
           ("eta", "ETA", 6), ("elapsed", "ELAPSED", 9), ("cpu", "CPU", 5), ("rss", "RSS", 5), ("gpu", "GPU", 5))

# column key -> what a run sorts by there (None: no value, sorted last)
SORT_KEYS = {
    "id": lambda v: v.id,
    "cell": lambda v: v.label.lower(),
    "status": lambda v: (v.status, -(v.ari if v.ari is not None else -2.0)),  # best scores first among the done
    "progress": lambda v: v.progress,
    "eta": lambda v: v.eta_s if v.active else None,
    "elapsed": lambda v: v.elapsed,
    "cpu": lambda v: v.cpu_percent,
    "rss": lambda v: v.rss,
    "gpu": lambda v: v.gpu_mem,
}


def matches(v: RunView, words: list[str]) -> bool:
    """Whether every word occurs in the run's label, status, name or id (case does not matter)."""
    hay = f"{v.label} {v.status} {v.name or ''} {v.id}".lower()
    return all(w in hay for w in words)


def ordered(views: list[RunView], column: str, reverse: bool) -> list[RunView]:
    """The runs sorted by a column; those without a value there last, oldest first."""
    by = SORT_KEYS[column]
    having = [v for v in views if by(v) is not None]
    return sorted(having, key=by, reverse=reverse) + sorted((v for v in views if by(v) is None), key=lambda v: v.id)


class RunsTable(KeyedTable):
    COMPONENT_CLASSES = DataTable.COMPONENT_CLASSES | {
        "runs--queued", "runs--running", "runs--overrun", "runs--late", "runs--unknown", "runs--done", "runs--failed", "runs--killed", "runs--lost",
        "runs--orphaned", "runs--corrupt"}

    BINDINGS = [
        Binding("enter", "select_cursor", "Open", id="runs.open", tooltip="open the run's log and result"),
        Binding("slash", "filter", "Filter", id="runs.filter", key_display="/",
                tooltip="show only runs whose cell, status, name or id hold the words typed"),
        Binding("S", "sort_next", "Sort", id="runs.sort", tooltip="sort by the next column"),
        Binding("minus", "sort_reverse", "Reverse", id="runs.reverse", key_display="-", show=False,
                tooltip="reverse the sort order"),
        Binding("D,delete", "remove", "Remove", id="runs.remove", tooltip="remove a finished run (asks first)"),
        Binding("R", "rerun", "Rerun", id="runs.rerun", tooltip="start the selected run again with the same spec"),
        Binding("m", "compare", "Maps", id="runs.compare",
                tooltip="pick a run, then m on a second one: both runs' maps side by side"),
        Binding("escape", "clear_filter", "Clear filter", id="runs.clear_filter", show=False,
                tooltip="show every run again"),
    ]

    COLUMNS = COLUMNS
    STRETCH = "cell"

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.sort_column, self.sort_reverse = "id", False
        self.words: list[str] = []
        self.views: list[RunView] = []
        self.marked: str | None = None  # the first run picked for side-by-side maps
        self._made: dict[str, tuple] = {}  # run id -> (what its row was made from, its cells)
        self.said: GridSpec | None = None  # the header's slice (left out of CELL), gene and clusterer (left out
                                           # where a label is too long)

    def _cells(self, v: RunView) -> tuple:
        state = "overrun" if v.overrun and v.active else "late" if v.late and v.active else \
            "corrupt" if v.status == "unreadable" else v.status
        style = self.get_component_rich_style(f"runs--{state}", partial=True)
        status = v.status + (" !" if v.overrun and v.active else " »" if v.late and v.active else "")
        if v.status == "done" and v.ari is not None:
            status = f"done {fmt_score(v.ari, v.random_init, 2)}".replace("-0.", "-.")  # `done -.05*` fits too
        prog = "" if v.progress is None else f"{text_bar(v.progress, 6)} {100 * v.progress:3.0f}%"
        ident = Text(short_id(v.id), style="reverse" if v.id == self.marked else "")
        said = self.said
        label = v.label[len(said.slice) + 1:] if said and v.label.startswith(said.slice + " ") else v.label
        return (ident, fit_label(label, self._label_width(), said and said.gene, said and said.cluster), Text(status, style=style), prog,
                fmt_eta(v.eta_s, v.eta_confidence, fmt_minutes) if v.active else "",
                fmt_minutes(v.elapsed) if v.active else fmt_duration(v.elapsed),
                "" if v.cpu_percent is None else f"{v.cpu_percent:.0f}%", fmt_bytes(v.rss) if v.rss else "",
                fmt_bytes(v.gpu_mem) if v.gpu_mem else "")

    def _label_width(self) -> int:
        i = [key for key, _, _ in COLUMNS].index("cell")
        return self._widths[i] if self._widths else COLUMNS[i][2]

    def relayout(self, width: int | None = None) -> None:
        before = self._widths
        super().relayout(width)
        if self._widths != before and self.views:
            self.show(self.views)  # the labels fitted to the new CELL width

    # -- showing -----------------------------------------------------------------------------------------
    def show(self, views: list[RunView], said: GridSpec | None = None) -> None:
        if said != self.said and said is not None:
            self.said, self._shown = said, {}  # every label reads anew
            self.clear()
        self.views = views
        self._made = {v.id: self._made[v.id] for v in views if v.id in self._made}  # forget runs gone
        shown = [v for v in views if matches(v, self.words)] if self.words else views
        rows = [(v.id, self._row(v)) for v in ordered(shown, self.sort_column, self.sort_reverse)]
        keys = [k for k, _ in rows]
        new = [k for k in keys if k not in self._shown]
        kept = set(keys)
        if keys == [k for k in self._shown if k in kept] + new:
            added = self.sync(rows)  # the order holds: rows are updated in place
        else:
            added = self._lay_out(rows, new)
        if added and len(self._shown) > 1:
            self.move_cursor(row=self.get_row_index(added[-1]), animate=False)
        if self.parent is not None:
            for bar in self.parent.query(RunsFilter):
                bar.count(len(keys), len(views))

    def _row(self, v: RunView) -> tuple:
        """The run's cells, made again only when the run (or what its row depends on here) changed: most runs of
        a refresh are finished and unchanged."""
        key = (v, self.said, self.marked == v.id, self._label_width(), getattr(self.app, "theme", None))
        made = self._made.get(v.id)
        if made is None or made[0] != key:
            made = self._made[v.id] = (key, plain_cells(self._cells(v)))
        return made[1]

    def _lay_out(self, rows: list[tuple[str, tuple]], new: list[str]) -> list[str]:
        """All rows again in the new order, the cursor staying on its run."""
        cursor = self.current
        self.clear()
        self._shown = {}
        for key, cells in rows:
            self.add_row(*cells, key=key)
            self._shown[key] = cells
        if cursor in self._shown:
            self.move_cursor(row=self.get_row_index(cursor), animate=False)
        return new

    def _add_columns(self, widths: list[int]) -> None:
        super()._add_columns(widths)
        self._titles()

    def _titles(self) -> None:
        for key, title, _ in COLUMNS:  # each column is wide enough for its title and the arrow
            mark = (" ▼" if self.sort_reverse else " ▲") if key == self.sort_column and key != "id" else ""
            self.columns[key].label = Text(title + mark)
        self.refresh()

    def sort_by(self, column: str, reverse: bool = False) -> None:
        self.sort_column, self.sort_reverse = column, reverse
        self._titles()
        self.show(self.views)

    def set_filter(self, text: str) -> None:
        self.words = text.lower().split()
        self.show(self.views)

    @property
    def current(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    # -- keys --------------------------------------------------------------------------------------------
    def action_sort_next(self) -> None:
        keys = [k for k, _, _ in COLUMNS]
        self.sort_by(keys[(keys.index(self.sort_column) + 1) % len(keys)])

    def action_sort_reverse(self) -> None:
        self.sort_by(self.sort_column, not self.sort_reverse)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        column = event.column_key.value
        self.sort_by(column, not self.sort_reverse if column == self.sort_column else False)

    def action_filter(self) -> None:
        bars = self.parent.query(RunsFilter) if self.parent is not None else []
        if bars:
            bars.first().focus_input()
        else:
            self.parent.mount(RunsFilter(self), before=self)

    def action_clear_filter(self) -> None:
        """Esc on the table, like Esc in the filter box: every run again, the filter line gone."""
        if self.parent is not None:
            for bar in self.parent.query(RunsFilter):
                bar.close()

    def action_remove(self) -> None:
        from ..run_actions import confirm_remove

        confirm_remove(self.app, self.current)

    def action_rerun(self) -> None:
        from ..run_actions import rerun

        rerun(self.app, self.current)

    def action_compare(self) -> None:
        from ..run_actions import compare

        compare(self.app, self)


class RunsFilter(Horizontal):
    """The filter line above the runs table: what is typed filters at once; Enter keeps it and returns to the
    table, Escape clears it and closes the line."""

    DEFAULT_CSS = """
    RunsFilter { height: 1; }
    RunsFilter Input { width: 1fr; }
    RunsFilter Label { width: auto; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, table: RunsTable) -> None:
        super().__init__()
        self.table = table

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter runs: words in the cell, status, name or id (Enter keeps, Esc clears)",
                    value=" ".join(self.table.words), compact=True, id="runs-filter")
        yield Label("")

    def on_mount(self) -> None:
        self.focus_input()
        self.count(self.table.row_count, len(self.table.views))

    def focus_input(self) -> None:
        self.query_one(Input).focus()

    def count(self, shown: int, total: int) -> None:
        self.query_one(Label).update(f"{shown} of {total} runs")

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.table.set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value.strip():
            self.remove()
        self.table.focus()

    def on_key(self, event) -> None:
        if event.key == "escape":
            event.stop()
            self.close()

    def close(self) -> None:
        self.table.set_filter("")
        self.table.focus()
        self.remove()
