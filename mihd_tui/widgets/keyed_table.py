"""A DataTable kept in step with a list of keyed rows: rows are added, removed, or updated cell by cell
(never cleared and refilled), and an updated row is redrawn alone (`update_rows`), so a refresh redraws only
what changed. One column (`STRETCH`) takes the width a wide terminal leaves over; the table is rebuilt only
when that width changes (on resize)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from ..text import plain_cells


def same(a, b) -> bool:
    """Whether two cells show alike: a Text's own style counts too (Text's == compares only words and spans)."""
    if isinstance(a, Text) and isinstance(b, Text):
        return a.plain == b.plain and a.style == b.style and a.spans == b.spans
    return a == b


def update_rows(table: DataTable, updates: dict[str, list[tuple[str, object]]]) -> None:
    """Set rows' changed cells ({row key: [(column key, value)]}) and redraw those rows only.
    DataTable.update_cell counts any change as a change of the whole table (its render caches share one
    update count), so one live run's ELAPSED redrew every row each refresh; here only the changed rows'
    cached renders are dropped. Where the DataTable keeps its rows otherwise (another Textual), update_cell."""
    caches = [getattr(table, n, None) for n in ("_row_render_cache", "_cell_render_cache", "_line_cache",
                                                 "_row_renderable_cache")]
    if not updates:
        return
    if not all(hasattr(c, "keys") and hasattr(c, "discard") for c in caches):
        for key, changed in updates.items():
            for col, value in changed:
                table.update_cell(key, col, value)
        return
    rows, cells, strips, renderables = caches
    keys, spots = set(), set()
    for key, changed in updates.items():
        keys.add(RowKey(key))
        for col, value in changed:
            table._data[RowKey(key)][ColumnKey(col)] = value
            spots.add((RowKey(key), ColumnKey(col)))
    for k in [k for k in rows.keys() if k[0] in keys]:
        rows.discard(k)
    for k in [k for k in cells.keys() if k[:2] in spots]:
        cells.discard(k)
    for k in [k for k in strips.keys() if _row_at(table, k[0]) in keys]:
        strips.discard(k)
    indices = [table.get_row_index(key) for key in keys]
    for k in [k for k in renderables.keys() if k[1] in indices]:  # (update count, row index): its cells' values
        renderables.discard(k)
    table._refresh_region(table._get_row_region(min(indices)).union(table._get_row_region(max(indices))))


def _row_at(table: DataTable, y: int):
    try:
        return table._get_offsets(y)[0]
    except LookupError:
        return None

class KeyedTable(DataTable):
    COLUMNS: tuple[tuple[str, str, int], ...] = ()  # (column key, title, least width)
    STRETCH: str | None = None  # the column that grows into spare width (e.g. a label)
    MAX_STRETCH = 60

    def __init__(self, **kw) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self._shown: dict[str, tuple] = {}
        self._widths: list[int] = []

    def on_mount(self) -> None:
        self._add_columns(self._fit(self.size.width))

    def on_resize(self, event) -> None:
        self.relayout(event.size.width)

    def least_widths(self) -> list[int]:
        return [w for _, _, w in self.COLUMNS]

    def relayout(self, width: int | None = None) -> None:
        """Lay the columns out again for `width` (default: the current one) when their widths change."""
        widths = self._fit(self.size.width if width is None else width)
        if widths == self._widths:
            return
        keys = list(self._shown)
        cursor = keys[self.cursor_row] if 0 <= self.cursor_row < len(keys) else None
        self.clear(columns=True)
        self._add_columns(widths)
        for key, cells in self._shown.items():
            self.add_row(*cells, key=key)
        if cursor is not None:
            self.move_cursor(row=self.get_row_index(cursor))

    def _fit(self, total: int) -> list[int]:
        widths = self.least_widths()
        if self.STRETCH is not None:
            i = [k for k, _, _ in self.COLUMNS].index(self.STRETCH)
            spare = total - sum(widths) - 2 * self.cell_padding * len(widths) - 2  # 2: the scrollbar
            widths[i] = min(widths[i] + max(spare, 0), self.MAX_STRETCH)
        return widths

    def _add_columns(self, widths: list[int]) -> None:
        self._widths = widths
        for (key, title, _), width in zip(self.COLUMNS, widths):
            self.add_column(title, key=key, width=width)

    def sync(self, rows: list[tuple[str, tuple]]) -> list[str]:
        """Show `rows` as (row key, cells); returns the keys of rows added by this call."""
        rows = [(key, plain_cells(cells)) for key, cells in rows]
        keys = {key for key, _ in rows}
        for key in [k for k in self._shown if k not in keys]:
            self.remove_row(key)
            del self._shown[key]
        added, updates = [], {}
        for key, cells in rows:
            old = self._shown.get(key)
            if old is None:
                self.add_row(*cells, key=key)
                added.append(key)
            else:
                changed = [(col, new) for (col, _, _), new, prev in zip(self.COLUMNS, cells, old) if not same(new, prev)]
                if changed:
                    updates[key] = changed
            self._shown[key] = cells
        update_rows(self, updates)
        return added
