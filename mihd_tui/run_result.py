"""A run's result as the run detail shows it (no Textual here): result.json, or for a run that ended without one
the cells it finished, from its events; and the rows of its cells table."""

from __future__ import annotations

from pathlib import Path

from mihd.errors import MihdError
from mihd.jsonio import read_json
from mihd.plan import Cell
from mihd.present import fmt_duration
from mihd.rundir import RESULT, load_events, read_spec
from mihd.runs.usage import read_usage


def read_result(run_dir: Path) -> tuple[dict | None, dict]:
    """(the result, or the cells finished; usage.json's peaks)."""
    result = read_json(run_dir / RESULT) or _finished_cells(run_dir)
    return result, (read_usage(run_dir) or {}).get("peak") or {}


def result_rows(result: dict) -> list[tuple[str, str, str, str, str]]:
    """(cell, ARI, NMI, time, note) for each cell; a study's cells name their slice."""
    rows = []
    for c in result.get("cells") or []:
        secs = (c.get("seconds") or {}).get("total")
        note = c.get("error") or ("random-init weights" if c.get("random_init") else "")
        label = _cell_label(result.get("slice"), c)
        rows.append((f"{c.get('slice')} {label}" if result.get("slices") else label,
                     "-" if c.get("ari") is None else f"{c['ari']:.3f}"
                     + (f" ± {c['ari_sd']:.3f}" if c.get("ari_sd") is not None else ""),
                     "-" if c.get("nmi") is None else f"{c['nmi']:.3f}", fmt_duration(secs), note))
    return rows


def _finished_cells(run_dir: Path) -> dict | None:
    """A run that ended without result.json (killed): the cells it finished, from its `metric` events,
    each with its score or its error, so what it did is not lost."""
    try:
        spec, events = read_spec(run_dir), load_events(run_dir)
    except MihdError:
        return None
    cells = list(spec["plan"].cells) if spec and spec.get("plan") else []
    done = [{**cells[e["index"]].to_dict(), **{k: e.get(k) for k in ("ari", "nmi", "error", "random_init")}}
            for e in events if e.get("kind") == "metric" and isinstance(e.get("index"), int)
            and 0 <= e["index"] < len(cells)]
    if not done:
        return None
    return {"slice": cells[0].slice, "status": "failed", "cells": done,
            "error": f"ended after {len(done)} of {len(cells)} cells; no result.json"}


def _cell_label(slice_id: str | None, cell: dict) -> str:
    """A result.json cell as Cell.short_label (`pca+texture concat gmm`; no vision: `pca mean gmm`)."""
    try:
        return Cell.from_dict({"slice": slice_id, **cell}).short_label
    except MihdError:
        return "?"
