"""What the cache holds, as a reader sees it: inventory rows for listings, the entries being computed now
(their single-flight lock files), and which cells' inputs are cached.

Reads metadata only (`mihd.cache.read_entries`, lock files, the computing run's events), so it stays
instant with thousands of entries and the dashboard can use it; no arrays, no heavy imports.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from .cache import (GENE_VARIANT, LOCK_TIMEOUT, LOCKS, cache_from_config, entry_flags, lock_key, lock_owner,
                    read_entries)
from .cache_flight import holder_gone
from .plan import Cell
from .rundir import RunFileError, load_events
from .workspace import embeddings_dir, run_path


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
    problem: str | None  # "unreadable metadata" (corrupt), "unreadable (owner bob)" (another user's)
    compute_s: float | None = None  # seconds the encoder took to make it


@dataclass(frozen=True)
class InFlight:
    """An entry being computed now: who holds its single-flight lock, since when, how far it got."""

    key: str
    slice: str
    modality: str
    name: str
    variant: str
    host: str | None
    pid: int | None
    run: str | None
    for_s: float | None        # since the lock was taken
    silent_s: float            # since its last heartbeat (LOCK_TIMEOUT and more: its computer is gone)
    done: int | None = None    # how far it got: the holder's last progress in its lock (else its run's events)
    total: int | None = None
    flags: tuple[str, ...] = ()  # "random init", "bf16": as the entry will be listed
    dead: bool = False         # its holder was a process of this host that is gone: no heartbeat to wait for

    @property
    def fraction(self) -> float | None:
        return self.done / self.total if self.total else None

    @property
    def stalled(self) -> bool:
        return self.dead or self.silent_s >= LOCK_TIMEOUT


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
            flags=tuple(entry_flags(e)), problem=e.get("corrupt") or e.get("unreadable"),
            compute_s=e.get("compute_seconds") if isinstance(e.get("compute_seconds"), (int, float)) else None))
    return sorted(rows, key=lambda r: (r.slice, r.modality, r.name, r.variant))


def cached_inputs(entries: list[dict]) -> set[tuple[str, str, str, str]]:
    """(slice, modality, name, variant) of every readable cache entry."""
    return {(e["slice"], e["modality"], e["name"], e["variant"]) for e in entries
            if not e.get("corrupt") and not e.get("unreadable") and all(k in e for k in ("slice", "modality", "name", "variant"))}


def inputs_cached(cell: Cell, cached: set) -> bool:
    """Whether every embedding the cell needs is in `cached` (from `cached_inputs`)."""
    if (cell.slice, "gene", cell.gene, GENE_VARIANT) not in cached:
        return False
    return not cell.vision or (cell.slice, "vision", cell.vision, cell.variant) in cached


def cells_cached(root: Path, cells) -> tuple[bool, ...]:
    """For each cell, whether its inputs are cached now, here or in a read-only cache this workspace reads
    from (one read of each cache's metadata)."""
    slices = list(dict.fromkeys(c.slice for c in cells))
    cached = cached_inputs([e for r in (root, *cache_from_config(root)) for s in slices for e in read_entries(r, s)])
    return tuple(inputs_cached(c, cached) for c in cells)


def in_flight(root: Path, now: float | None = None) -> list[InFlight]:
    """Every cache entry being computed now (by `mihd extract`, a run, another host), from the lock files
    the computing process holds: its flags and progress as the holder wrote them there (an older holder
    wrote no progress: its run's last `extract_<modality>` stage event, when it has a run). A holder that was a
    process of this host and is gone (killed `mihd extract`) is `dead` at once, not live until its heartbeat ages."""
    now = time.time() if now is None else now
    folder = embeddings_dir(Path(root)) / LOCKS
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    out = []
    for fname in names:
        key = lock_key(fname)
        if key is None:
            continue
        path = folder / fname
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue  # released meanwhile
        owner = lock_owner(path)
        started = owner.get("started")
        done, total = owner.get("done"), owner.get("total")
        if not (isinstance(done, int) and isinstance(total, int)):
            done = total = None
            if owner.get("run"):
                done, total = _extract_stage(run_path(Path(root), str(owner["run"])), f"extract_{key.modality}")
        flags = owner.get("flags")
        out.append(InFlight(
            key=f"computing|{key.slice}|{key.modality}|{key.name}|{key.variant}", slice=key.slice,
            modality=key.modality, name=key.name, variant=key.variant,
            host=owner.get("host"), pid=owner.get("pid"), run=owner.get("run"),
            for_s=(now - started) if isinstance(started, (int, float)) else None, silent_s=max(now - mtime, 0.0),
            done=done, total=total,
            flags=tuple(f for f in flags if isinstance(f, str)) if isinstance(flags, list) else (),
            dead=holder_gone(owner)))
    return out


def _extract_stage(run_dir: Path, stage: str) -> tuple[int | None, int | None]:
    try:
        events = load_events(run_dir)
    except (RunFileError, OSError):
        return None, None
    last = next((e for e in reversed(events) if e.get("kind") == "stage" and e.get("stage") == stage), None)
    return (last.get("done"), last.get("total")) if last else (None, None)
