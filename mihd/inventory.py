"""What the cache holds, as a reader sees it: inventory rows for listings and which cells' inputs are cached.

Reads metadata only (`mihd.cache.read_entries`), so it stays instant with thousands of entries and the
dashboard can use it; no arrays, no heavy imports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .cache import GENE_VARIANT, cache_from_config, entry_flags, read_entries
from .plan import Cell


@dataclass(frozen=True)
class InventoryRow:
    key: str
    slice: str
    modality: str
    name: str
    variant: str
    shape: str
    mb: float
    age_s: float | None
    flags: tuple[str, ...]  # "random init", "bf16": shown beside the name
    problem: str | None


def inventory(entries: list[dict], now: float | None = None) -> list[InventoryRow]:
    """The cache inventory as rows, sorted by slice, modality, name, variant."""
    now = time.time() if now is None else now
    rows = []
    for e in entries:
        shape = e.get("shape") or []
        rows.append(InventoryRow(
            key="|".join(str(e.get(k)) for k in ("slice", "modality", "name", "variant")),
            slice=str(e.get("slice")), modality=str(e.get("modality")), name=str(e.get("name")),
            variant=str(e.get("variant")), shape="x".join(map(str, shape)) or "?",
            mb=(e.get("nbytes") or 0) / 1e6, age_s=(now - e["created"]) if e.get("created") else None,
            flags=tuple(entry_flags(e)),
            problem=e.get("corrupt")))
    return sorted(rows, key=lambda r: (r.slice, r.modality, r.name, r.variant))


def cached_inputs(entries: list[dict]) -> set[tuple[str, str, str, str]]:
    """(slice, modality, name, variant) of every readable cache entry."""
    return {(e["slice"], e["modality"], e["name"], e["variant"]) for e in entries
            if not e.get("corrupt") and all(k in e for k in ("slice", "modality", "name", "variant"))}


def inputs_cached(cell: Cell, cached: set) -> bool:
    """Whether every embedding the cell needs is in `cached` (from `cached_inputs`)."""
    if (cell.slice, "gene", cell.gene, GENE_VARIANT) not in cached:
        return False
    return not cell.vision or (cell.slice, "vision", cell.vision, cell.variant) in cached


def cells_cached(root: Path, cells) -> tuple[bool, ...]:
    """For each cell, whether its inputs are cached now, here or in a read-only cache this workspace reads
    from (one read of each cache's metadata)."""
    slice_id = cells[0].slice if cells else None
    cached = cached_inputs([e for r in (root, *cache_from_config(root)) for e in read_entries(r, slice_id)])
    return tuple(inputs_cached(c, cached) for c in cells)
