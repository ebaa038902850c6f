"""The runs table: one row per run (keyed by run id), cells updated only when their text changes."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from mihd.present import fmt_bytes, fmt_duration
from mihd.runs.status import RunView

from .fmt import fmt_eta, short_id, text_bar
from .keyed_table import KeyedTable

COLUMNS = (("id", "ID", 11), ("cell", "CELL", 22), ("status", "STATUS", 9), ("progress", "PROGRESS", 11),
           ("eta", "ETA", 6), ("elapsed", "ELAPSED", 7), ("cpu", "CPU", 5), ("rss", "RSS", 5), ("gpu", "GPU", 5))


class RunsTable(KeyedTable):
    """Oldest first, as `mihd runs ls`; a new run is added at the bottom and gets the cursor."""

    COMPONENT_CLASSES = DataTable.COMPONENT_CLASSES | {
        "runs--queued", "runs--running", "runs--overrun", "runs--done", "runs--failed", "runs--killed", "runs--lost"}

    BINDINGS = [Binding("enter", "select_cursor", "Open", id="runs.open", tooltip="open the run's log and result")]

    COLUMNS = COLUMNS
    STRETCH = "cell"

    def _cells(self, v: RunView) -> tuple:
        state = "overrun" if v.overrun and v.active else v.status
        style = self.get_component_rich_style(f"runs--{state}", partial=True)
        status = v.status + (" !" if v.overrun and v.active else "")
        if v.status == "done" and v.ari is not None:
            status = f"done {v.ari:.2f}"
        prog = "" if v.progress is None else f"{text_bar(v.progress, 6)} {100 * v.progress:3.0f}%"
        return (short_id(v.id), v.label, Text(status, style=style), prog,
                fmt_eta(v.eta_s, v.eta_confidence) if v.active else "", fmt_duration(v.elapsed),
                "" if v.cpu_percent is None else f"{v.cpu_percent:.0f}%", fmt_bytes(v.rss) if v.rss else "",
                fmt_bytes(v.gpu_mem) if v.gpu_mem else "")

    def show(self, views: list[RunView]) -> None:
        added = self.sync([(v.id, self._cells(v)) for v in views])
        if added and len(self._shown) > 1:
            self.move_cursor(row=self.get_row_index(added[-1]), animate=False)

    @property
    def current(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
