"""A DataTable kept in step with a list of keyed rows: rows are added, removed, or updated cell by cell
(never cleared and refilled), so a refresh redraws only what changed. One column (`STRETCH`) takes the
width a wide terminal leaves over; the table is rebuilt only when that width changes (on resize)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable


def plain(cells: tuple) -> tuple:
    """Cells as shown: DataTable reads a str as Rich markup, and a run name, cache name or problem may hold
    brackets (`[b]`, `[/]`) that would restyle it or raise."""
    return tuple(Text(c, end="") if isinstance(c, str) else c for c in cells)


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
        rows = [(key, plain(cells)) for key, cells in rows]
        keys = {key for key, _ in rows}
        for key in [k for k in self._shown if k not in keys]:
            self.remove_row(key)
            del self._shown[key]
        added = []
        for key, cells in rows:
            old = self._shown.get(key)
            if old is None:
                self.add_row(*cells, key=key)
                added.append(key)
            else:
                for (col, _, _), new, prev in zip(self.COLUMNS, cells, old):
                    if new != prev:
                        self.update_cell(key, col, new)
            self._shown[key] = cells
        return added
