"""Cells and signatures: what a run computes, as the registry and the ETA see it.

A cell signature is {slice, gene, vision, variant, fusion, cluster, cached} plus the backend (added here,
since only run control knows how a run was launched). Its string form keys the history used for expected
durations; a run of several cells gets one string over all of them.
"""

from __future__ import annotations

import hashlib
import itertools

SIG_FIELDS = ("slice", "gene", "vision", "variant", "fusion", "cluster", "cached", "backend")
_CELL_OPTS = {"--gene": "gene", "--vision": "vision", "--variant": "variant", "--fusion": "fusion",
              "--cluster": "cluster", "--clusterer": "cluster"}


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


def signature(cell: dict, backend: str | None = None) -> dict:
    """The normalised signature of a cell (from a spec, or a result.json cell and its `signature`)."""
    src = {**cell, **(cell.get("signature") or {})}
    sig = {f: src.get(f) for f in SIG_FIELDS[:-2]}
    if sig["vision"] and not sig["variant"]:
        sig["variant"] = "standard"
    sig["cached"] = _cached_flag(src)
    sig["backend"] = backend or src.get("backend")
    return sig


def sig_string(sig: dict) -> str:
    return "|".join("-" if sig.get(f) is None else str(sig[f]).lower() for f in SIG_FIELDS)


def run_signature(cells: list[dict], backend: str | None) -> str:
    """One key for a run: the cell's string for one cell, a digest over the sorted cells for a grid."""
    strings = sorted(sig_string(signature(c, backend)) for c in cells)
    if len(strings) == 1:
        return strings[0]
    if not strings:
        return f"-|{backend or '-'}"
    return "grid:" + hashlib.sha1("\n".join(strings).encode()).hexdigest()[:16]


def cell_label(cells: list[dict], name: str | None = None) -> str:
    """`demo pca+texture/standard concat gmm`, or `demo grid 12 cells`."""
    if name:
        return name
    if not cells:
        return "-"
    if len(cells) > 1:
        return f"{cells[0].get('slice') or '?'} grid {len(cells)} cells"
    c = signature(cells[0])
    vision = f"+{c['vision']}" + (f"/{c['variant']}" if c["variant"] not in (None, "standard") else "") \
        if c["vision"] else ""
    parts = [c["slice"] or "?", f"{c['gene'] or '?'}{vision}", c["fusion"], c["cluster"]]
    return " ".join(p for p in parts if p)


def cells_from_args(args: list[str]) -> list[dict]:
    """The cells of `run SLICE --gene G --vision V ...` or `grid SLICE --vision a,b --fusion x,y ...`.

    Lenient: options not about cells are skipped, values may be comma-separated or repeated tokens.
    Unspecified fields stay None (the run's defaults apply; result.json has the final word).
    """
    if not args or args[0] not in ("run", "grid"):
        return []
    values: dict[str, list[str]] = {}
    slice_id, key, i = None, None, 1
    while i < len(args):
        tok = args[i]
        if tok.startswith("--"):
            opt, _, inline = tok.partition("=")
            key = _CELL_OPTS.get(opt, "")
            if inline and key:
                values.setdefault(key, []).extend(v for v in inline.split(",") if v)
                key = None
        elif key:
            values.setdefault(key, []).extend(v for v in tok.split(",") if v)
            if args[0] == "run":
                key = None
        elif key is None and slice_id is None:
            slice_id = tok
        i += 1
    fields = ("gene", "vision", "variant", "fusion", "cluster")
    grid = [values.get(f) or [None] for f in fields]
    return [{"slice": slice_id, **dict(zip(fields, combo))} for combo in itertools.product(*grid)]
