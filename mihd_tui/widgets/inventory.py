"""The cache inventory: one row per embedding (metadata only), keyed by slice|modality|name|variant."""

from __future__ import annotations

from textual.widgets import DataTable

from mihd.grid_state import InventoryRow

from .fmt import fmt_age

COLUMNS = (("slice", "SLICE", 10), ("modality", "MODALITY", 8), ("name", "NAME", 16), ("variant", "VARIANT", 12),
           ("shape", "SHAPE", 10), ("mb", "MB", 7), ("age", "AGE", 7))


class CacheInventory(DataTable):
    def __init__(self, **kw) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self._shown: dict[str, tuple] = {}

    def on_mount(self) -> None:
        for key, title, width in COLUMNS:
            self.add_column(title, key=key, width=width)

    @staticmethod
    def _cells(r: InventoryRow) -> tuple:
        name = r.name + (" [random]" if r.random_init else "")
        return (r.slice, r.modality, name, r.variant, r.problem or r.shape, f"{r.mb:.1f}",
                fmt_age(r.age_s))

    def show(self, rows: list[InventoryRow]) -> None:
        keys = {r.key for r in rows}
        for key in [k for k in self._shown if k not in keys]:
            self.remove_row(key)
            del self._shown[key]
        for r in rows:
            cells = self._cells(r)
            old = self._shown.get(r.key)
            if old is None:
                self.add_row(*cells, key=r.key)
            else:
                for (col, _, _), new, prev in zip(COLUMNS, cells, old):
                    if new != prev:
                        self.update_cell(r.key, col, new)
            self._shown[r.key] = cells
