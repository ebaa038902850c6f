"""A fanned-out grid judged late or overrunning from its parts' files, with nobody looking.

A grid's own events say nothing of its cells' progress: each part writes its own. So the supervisor of
the grid's local runner, and on Slurm (where no process runs for the grid as a whole) the supervisor of
each of its array tasks, judges the grid the way a watcher does (fanout_status.grid_progress), from the
history the launcher recorded in the grid's spec.json (forecast.py) instead of an index. The claims of
alerts.py make the first judge to see it the only one that tells.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..jsonio import read_json
from ..rundir import PROC, SPEC, read_plan, read_spec
from .cells import sig_string, signature
from .eta import Expected
from .fanout import FANOUT, grid_of_cell, parts
from .fanout_status import grid_progress
from .forecast import read_forecast
from .late import late_reason, tell
from .overrun import is_overrun

GRID_EVERY = 2.0   # seconds between a grid's judgements at least; each reads every part's files, so
SHARE = 0.05       # a large grid is judged less often: the judging takes at most this share of a core


def grid_of(run_dir: Path) -> Path | None:
    """The grid a run's supervisor judges: the run itself when it is a fanned-out grid (its local runner), its
    grid when it is a cell of a Slurm one (an array task: no runner); None for any other run."""
    run_dir = Path(run_dir)
    if (run_dir / FANOUT).is_file():
        return run_dir
    grid = grid_of_cell(run_dir)
    if grid is None or not (grid / FANOUT).is_file():
        return None
    return grid if (read_spec(grid) or {}).get("backend") == "slurm" else None


def cell_label(cell_dir: Path) -> str:
    """`demo grid 2 cells, cell 1: demo pca+texture staig_fusion gmm`: which cell of which grid, as alerts say it."""
    grid_dir = grid_of_cell(cell_dir)
    grid, cell = read_plan(grid_dir), read_plan(cell_dir)
    return f"{grid.label if grid else grid_dir.name}, cell {cell_dir.name}" + (f": {cell.label}" if cell else "")


def grid_started(grid_dir: Path) -> float | None:
    """When the grid started, as its registry row says: its runner's start, else its first part's."""
    def started(run_dir: Path) -> float | None:
        t = (read_json(run_dir / PROC) or {}).get("started")
        return t if isinstance(t, (int, float)) else None

    runner = started(grid_dir)  # the local runner starts before its parts: their files need no reading
    return runner if runner is not None else min(filter(None, (started(d) for _, d in parts(grid_dir))), default=None)


def recorded_history(cells: list[dict], backend: str, plans: list) -> dict[str, list[float]]:
    """The history the launcher saw, rebuilt from the grid's forecast (`plans`, one per cell): each cell's
    expected seconds, once for each run behind them (grid_progress takes the median and the count)."""
    return {sig_string(signature(cell, backend)): [plan.expected] * plan.n
            for cell, plan in zip(cells, plans) if plan.expected is not None and plan.n}


class GridJudge:
    """One grid's late and overrun judgement, every GRID_EVERY seconds."""

    def __init__(self, grid_dir: Path):
        self.grid_dir = Path(grid_dir)
        view = read_spec(self.grid_dir) or {}
        got = read_forecast(read_json(self.grid_dir / SPEC) or {})
        self.judged = got[0] if got else Expected(None)
        self.backend = view.get("backend") or "local"
        self.history = recorded_history(view.get("cells") or [], self.backend, got[2] if got else [])
        self.late: str | None = None
        self.next = float("-inf")

    def check(self, now: float, factor: float) -> str | None:
        """Judge the grid as of `now` (at most every GRID_EVERY seconds); returns its late flag's text."""
        if now < self.next:
            return self.late
        began = time.monotonic()
        try:
            return self._judge(now, factor)
        finally:
            self.next = now + max(GRID_EVERY, (time.monotonic() - began) / SHARE)

    def _judge(self, now: float, factor: float) -> str | None:
        row = {"run_dir": str(self.grid_dir), "backend": self.backend, "status": "running"}
        prog = grid_progress(row, {}, self.history, factor, now)
        started = grid_started(self.grid_dir)
        if started is None:
            return self.late  # nothing has started: nothing measured yet
        elapsed = now - started
        given = self.judged.source == "given"
        expected = self.judged if given or not prog.expected_s else Expected(prog.expected_s, "cells")
        projected = elapsed + prog.eta_s if prog.eta_s is not None else None
        was, self.late = self.late, late_reason(elapsed, prog.eta_s, prog.confidence, prog.fraction, expected,
                                                factor, self.late)
        over = prog.overrun if not given else is_overrun(elapsed, expected, factor)
        tell(self.grid_dir, self.late, was, elapsed, projected, expected, prog.fraction,
             over and expected.seconds is not None, factor)
        return self.late
