"""The cache inventory: one row per embedding (metadata only), keyed by slice|modality|name|variant."""

from __future__ import annotations

from mihd.inventory import InventoryRow
from mihd.present import fmt_age

from .keyed_table import KeyedTable

COLUMNS = (("slice", "SLICE", 10), ("modality", "MODALITY", 8), ("name", "NAME", 16), ("variant", "VARIANT", 12),
           ("shape", "SHAPE", 10), ("mb", "MB", 7), ("age", "AGE", 7))


class CacheInventory(KeyedTable):
    COLUMNS = COLUMNS

    @staticmethod
    def _cells(r: InventoryRow) -> tuple:
        name = r.name + "".join(f" [{'random' if flag == 'random init' else flag}]" for flag in r.flags)
        return (r.slice, r.modality, name, r.variant, r.problem or r.shape, f"{r.mb:.1f}",
                fmt_age(r.age_s))

    def show(self, rows: list[InventoryRow]) -> None:
        self.sync([(r.key, self._cells(r)) for r in rows])
