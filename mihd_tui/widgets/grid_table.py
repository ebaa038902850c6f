"""The fusion x vision grid: one DataTable cell per grid cell, restyled only when its state changes."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from mihd.grid import DONE, CellState, Grid

from ..wording import CELL_WIDTH, cell_text
from .keyed_table import update_rows

ROW_MARK, COLUMN_MARK = "▸ ", "▾"


class GridTable(DataTable):
    """Rows are fusion methods (keyed by name), columns vision encoders / cache names (keyed by name).

    Colours come from app.tcss through component classes: `grid--ari-0`..`grid--ari-4` (poor..excellent)
    and `grid--<state>` for the other states.
    """

    COMPONENT_CLASSES = DataTable.COMPONENT_CLASSES | {
        *(f"grid--ari-{i}" for i in range(5)),
        "grid--never", "grid--ready", "grid--queued", "grid--running", "grid--late", "grid--overrun", "grid--orphaned",
        "grid--failed", "grid--killed", "grid--lost", "grid--corrupt", "grid--na", "grid--done", "grid--no-weights",
    }

    BINDINGS = [Binding("enter", "select_cursor", "Launch", id="grid.launch", tooltip="launch the cell under the cursor")]

    def __init__(self, **kw) -> None:
        super().__init__(cursor_type="cell", zebra_stripes=False, **kw)
        self.grid: Grid | None = None
        self._shown: dict[tuple[str, str], CellState] = {}

    def _cell_text(self, cs: CellState) -> Text:
        if cs.state == DONE and cs.band is not None:
            name = f"grid--ari-{cs.band}"
        else:
            name = "grid--" + {"n/a": "na", "no weights": "no-weights"}.get(cs.state, cs.state)
        return Text(cell_text(cs), style=self.get_component_rich_style(name, partial=True), justify="center")

    def show(self, grid: Grid) -> None:
        """Bring the table to `grid`, updating only the cells whose state changed."""
        self.grid = grid
        if [c.value for c in self.columns] != grid.columns or [r.value for r in self.rows] != grid.rows:
            self._layout(grid)
            return
        updates: dict[str, list] = {}
        for key, cs in grid.cells.items():
            if self._shown.get(key) != cs:
                updates.setdefault(key[0], []).append((key[1], self._cell_text(cs)))
                self._shown[key] = cs
        update_rows(self, updates)  # only the changed rows are drawn again

    def _layout(self, grid: Grid) -> None:
        """Lay the table out for a new shape (first show, a new cache name, another slice); keeps the cursor."""
        where = self.current if self.columns else grid.first_runnable()  # first show: a cell that can run
        self.clear(columns=True)
        for col in grid.columns:
            self.add_column(f" {col}", key=col, width=max(len(col) + 1, CELL_WIDTH))
        for row in grid.rows:
            self.add_row(*[self._cell_text(grid[(row, c)]) for c in grid.columns], key=row, label=f"  {row}")
        self._shown = dict(grid.cells)
        if where and where[0] in grid.rows and where[1] in grid.columns:
            self.move_cursor(row=grid.rows.index(where[0]), column=grid.columns.index(where[1]), animate=False)
        self._mark_cursor()

    def watch_cursor_coordinate(self, old, new) -> None:
        super().watch_cursor_coordinate(old, new)
        self._mark_cursor()

    def _mark_cursor(self) -> None:
        """`▸` before the cursor's row and `▾` before its column: the cursor is more than a colour (a plain
        capture, a colour-blind researcher). Labels keep their width: the marks take a blank's place."""
        where = self.current or ("", "")
        for key, row in self.rows.items():
            row.label = Text(f"{ROW_MARK if key.value == where[0] else '  '}{key.value}")
        for key, col in self.columns.items():
            col.label = Text(f"{COLUMN_MARK if key.value == where[1] else ' '}{key.value}")
        self._update_count += 1  # the table's render caches are keyed by it
        self.refresh()

    def restyle(self) -> None:
        """Redraw every cell (after a theme change)."""
        self._shown.clear()
        if self.grid is not None:
            self.show(self.grid)

    @property
    def current(self) -> tuple[str, str] | None:
        """(fusion, column) under the cursor."""
        if self.grid is None or not self.row_count or not self.columns:
            return None
        row_key, col_key = self.coordinate_to_cell_key(self.cursor_coordinate)
        return row_key.value, col_key.value
