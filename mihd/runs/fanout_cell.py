"""One cell of a fanned-out grid (`python -m mihd.cli.fanout_entry cell CELL_DIR --root R`): the check of the
extractions it needs, then its one-cell plan run in its own run dir by the `execute` its entry hands over."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from ..errors import MihdError
from ..jsonio import read_json
from ..rundir import EXIT, LOG, EventLog, read_spec, write_result
from ..safe_text import safe_text
from .fanout import EXTRACT, cell_needs, extract_dir, read_cell_needs, read_fanout


def last_words(run_dir: Path) -> str | None:
    """The last line a part printed that is not its supervisor's (its error, typically)."""
    try:
        lines = (Path(run_dir) / LOG).read_text(errors="replace").splitlines()
    except OSError:
        return None
    said = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("[mihd supervise]")]
    return safe_text(said[-1].removeprefix("mihd: error: ")[:300]) if said else None  # shown where run text is


def extraction_problem(grid_dir: Path, needs: dict[str, dict]) -> str | None:
    """Why a cell cannot start (an extraction it `needs` failed or never ended), else None."""
    for key, what in needs.items():
        d = extract_dir(grid_dir, key)
        label = f"{what.get('modality')} {what.get('name')}" + \
            (f" of slice {what['slice']}" if key.startswith(f"{what.get('slice')}-") else "")  # a study's
        ended = read_json(d / EXIT)
        if not isinstance(ended, dict):
            return f"extraction of {label} did not finish (see {EXTRACT}/{key}/run.log)"
        if ended.get("code") != 0:
            why = ended.get("error") or last_words(d) or f"exit code {ended.get('code')}"
            return f"extraction of {label} failed: {why}"
    return None


def _fail(cell_run_dir: Path, problem: str) -> int:
    plan = read_spec(cell_run_dir)["plan"]
    events = EventLog(cell_run_dir)
    try:
        events.emit("start", argv=[], cells=1, slice=plan.slice)
        write_result(cell_run_dir, {"slice": plan.slice, "status": "failed", "error": problem, "cells": []})
        events.emit("end", status="failed", error=problem)
    finally:
        events.close()
    return 1


def needs_of(cell_run_dir: Path, fan: dict | None) -> dict[str, dict]:
    """The extractions a cell waits for: in `fan`, the grid's layout as its local runner holds it; else (a Slurm
    task) in the cell's own needs.json, written at submission, so a fanout.json damaged since costs no cell;
    fanout.json only for a cell laid out before cells had one."""
    index = int(cell_run_dir.name)
    if fan is not None:
        return cell_needs(fan, index)
    own = read_cell_needs(cell_run_dir)
    return own if own is not None else cell_needs(read_fanout(cell_run_dir.parent.parent), index)


def run_cell(cell_run_dir: Path, root: str, execute: Callable[[Path, Path], dict], fan: dict | None = None) -> int:
    """Check the cell's extractions (needs_of: `fan` is its runner's layout, None on Slurm), then
    run its plan in this process (`execute(run_dir, root)` -> its result): 0 when it scored, 1 when it failed,
    2 (with `mihd: error: ...` in its run.log) when it could not run."""
    from ..workspace import resolve_root

    cell_run_dir = Path(cell_run_dir).resolve()
    grid_dir = cell_run_dir.parent.parent
    try:
        problem = extraction_problem(grid_dir, needs_of(cell_run_dir, fan))
        if problem:
            return _fail(cell_run_dir, problem)
        return 0 if execute(cell_run_dir, resolve_root(root))["status"] == "ok" else 1
    except MihdError as exc:
        print(f"mihd: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mihd: interrupted", file=sys.stderr)
        return 130
