"""Cell signatures: the key under which the history of finished runs files a cell's running time.

A signature is a Cell's fields {slice, gene, vision, variant, fusion, cluster} plus whether its inputs
were cached when it ran and the backend (added by run control, the only part that knows how a run was
launched), and `n_seeds` when a cell is fused and clustered for several seeds (that many times the work).
Its string form keys the ETA history; a run of several cells gets one string over all of them.
The registry and result.json keep cells in the stored form (a signature without the backend), which
`signature` and `stored_label` read back.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache

from ..errors import MihdError
from ..plan import Cell, RunSpec

SIG_FIELDS = ("slice", "gene", "vision", "variant", "fusion", "cluster", "cached", "backend")


def _cached_flag(src: dict) -> bool | None:
    """True when every embedding was a cache hit; from `cached` (bool or per-modality) or `cache`."""
    cached = src.get("cached")
    if isinstance(cached, dict):
        states = cached.values()
    elif cached is None and isinstance(src.get("cache"), dict):
        states = src["cache"].values()
    else:
        return None if cached is None else bool(cached)
    return all(s == "hit" for s in states if s is not None)


def signature(cell: Cell | dict, backend: str | None = None, cached: bool | None = None, n_seeds: int = 1) -> dict:
    """The signature of a Cell with its cached flag and number of seeds, or of a stored cell (a registry row's
    cell, a result.json cell and its `signature`, an older spec.json cell) that carries its own."""
    if isinstance(cell, Cell):
        return {**{f: getattr(cell, f) for f in SIG_FIELDS[:6]}, "cached": cached, "backend": backend,
                **_seeds(n_seeds)}
    src = {**cell, **(cell.get("signature") or {})}
    sig = {f: src.get(f) for f in SIG_FIELDS[:6]}
    if sig["vision"] and not sig["variant"]:
        sig["variant"] = "standard"
    return {**sig, "cached": _cached_flag(src), "backend": backend or src.get("backend"), **_seeds(src.get("n_seeds"))}


def _seeds(n) -> dict:
    """`n_seeds` only when several: a one-seed signature stays what it always was."""
    return {"n_seeds": n} if isinstance(n, int) and not isinstance(n, bool) and n > 1 else {}


def stored(cell: Cell, cached: bool | None, n_seeds: int = 1) -> dict:
    """The stored form of a cell: its fields, whether its inputs were cached, and its number of seeds."""
    return {f: v for f, v in signature(cell, cached=cached, n_seeds=n_seeds).items() if f != "backend"}


def sig_string(sig: dict) -> str:
    text = "|".join("-" if sig.get(f) is None else str(sig[f]).lower() for f in SIG_FIELDS)
    return text + (f"|seeds={sig['n_seeds']}" if _seeds(sig.get("n_seeds")) else "")


def run_signature(cells: list[Cell | dict], backend: str | None, cached: list[bool | None] | None = None,
                  n_seeds: int = 1) -> str:
    """One key for a run: the cell's string for one cell, a digest over the sorted cells for a grid.
    `cached` and `n_seeds` describe Cells (stored cells carry their own)."""
    flags = cached if cached is not None else [None] * len(cells)
    strings = sorted(sig_string(signature(c, backend, f, n_seeds)) for c, f in zip(cells, flags))
    if len(strings) == 1:
        return strings[0]
    if not strings:
        return f"-|{backend or '-'}"
    return "grid:" + hashlib.sha1("\n".join(strings).encode()).hexdigest()[:16]


def stored_label(cells: list[dict], name: str | None = None) -> str:
    """The label (RunSpec.label) of stored cells; `-` when they name no complete cell. Kept by content: an
    index rebuilt from a lab's 50,000 run dirs and cells labels a few hundred kinds of cell."""
    return _label(json.dumps([cells, name], sort_keys=True, default=str))


@lru_cache(maxsize=4096)
def _label(key: str) -> str:
    cells, name = json.loads(key)
    try:
        plan = RunSpec(tuple(Cell.from_dict(signature(c)) for c in cells), kind="grid" if len(cells) > 1 else "run",
                       name=name)
    except MihdError:
        return name or "-"
    return plan.label


def headline(scores: list[dict]) -> dict:
    """A run's one score ({ari, nmi, random_init}, None without any): its best cell's, or for a study (cells on
    several slices) its best combination's mean over its slices (the study's answer, not one slice's luck);
    combinations scored on more slices rank first (a mean over fewer is not the same measure).
    `scores`: per cell {signature (sig_string), ari, nmi, random_init}."""
    scored = [s for s in scores if s["ari"] is not None]
    fields = [s["signature"].split("|") for s in scored]
    study = len({f[0] for f in fields}) > 1
    combos: dict = {}
    for s, f in zip(scored, fields):
        combos.setdefault(tuple(f[1:6]) if study else len(combos), []).append(s)  # one cell alone, else its slices
    if not combos:
        return {"ari": None, "nmi": None, "random_init": False}
    group = max(combos.values(), key=lambda g: (len(g), sum(s["ari"] for s in g) / len(g)))
    nmis = [s["nmi"] for s in group if s["nmi"] is not None]
    return {"ari": sum(s["ari"] for s in group) / len(group), "nmi": sum(nmis) / len(nmis) if nmis else None,
            "random_init": any(s["random_init"] for s in group)}
