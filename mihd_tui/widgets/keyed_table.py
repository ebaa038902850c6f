"""A DataTable kept in step with a list of keyed rows: rows are added, removed, or updated cell by cell
(never cleared and refilled), so a refresh redraws only what changed."""

from __future__ import annotations

from textual.widgets import DataTable


class KeyedTable(DataTable):
    COLUMNS: tuple[tuple[str, str, int], ...] = ()  # (column key, title, width)

    def __init__(self, **kw) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self._shown: dict[str, tuple] = {}

    def on_mount(self) -> None:
        for key, title, width in self.COLUMNS:
            self.add_column(title, key=key, width=width)

    def sync(self, rows: list[tuple[str, tuple]]) -> list[str]:
        """Show `rows` as (row key, cells); returns the keys of rows added by this call."""
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
