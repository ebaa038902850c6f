"""What a run is expected to take, as the watchers compute it and as spec.json records it at launch.

A watcher (CLI, dashboard) reads the history from its host's registry. The run's own supervisor reads no
SQLite (and on a compute node has none), so the launcher records the same figures in spec.json under
"forecast": the expected time that judges it (`--expect`, else history) with its source, the history's
expected time that paces its ETA, and each cell's plan (expected seconds, runs behind them, stage shares,
cost). `tracker_of(spec)` rebuilds the run's ETA tracker from them in the supervisor.
"""

from __future__ import annotations

from dataclasses import asdict

from .cells import run_signature, sig_string, signature
from .eta import CellPlan, Expected, ProgressTracker, cell_plans, expected_duration

KEY = "forecast"


def expectations(run_sig: str, cell_sigs: list[str], history: dict, expect: float | None) -> tuple[Expected, Expected]:
    """(the expected time that judges overrun and late: `--expect` first, the one that paces the ETA: the
    history when there is one)."""
    timed = expected_duration(run_sig, history, None, cell_sigs)
    judged = expected_duration(run_sig, history, expect, cell_sigs)
    return judged, timed if timed.seconds is not None else judged


def forecast(cells: list[dict], backend: str, expect: float | None, history: dict, shares_of) -> dict:
    """spec.json's "forecast" for a run of `cells` (read_spec's form) on `backend`; `shares_of(sig)`: the
    learned stage shares of a cell signature, or None."""
    sigs = [sig_string(signature(c, backend)) for c in cells]
    judged, paced = expectations(run_signature(cells, backend), sigs, history, expect)
    plans = cell_plans([c.get("fusion") for c in cells], sigs, history, {s: shares_of(s) for s in sigs})
    return {"expected": asdict(judged), "paced": asdict(paced), "plans": [asdict(p) for p in plans],
            "n_cells": len(cells)}


def _expected(data) -> Expected:
    if not isinstance(data, dict) or not isinstance(data.get("seconds"), (int, float, type(None))):
        return Expected(None)
    return Expected(data["seconds"], data.get("source") if isinstance(data.get("source"), str) else None,
                    int(data.get("n") or 0), str(data.get("confidence") or "unknown"))


def _plan(data) -> CellPlan:
    if not isinstance(data, dict):
        return CellPlan()
    exp = data.get("expected")
    shares = data.get("shares") if isinstance(data.get("shares"), dict) else {}
    return CellPlan(exp if isinstance(exp, (int, float)) else None, int(data.get("n") or 0),
                    {k: float(v) for k, v in shares.items() if isinstance(v, (int, float))},
                    float(data.get("cost") or 1.0))


def read_forecast(spec: dict) -> tuple[Expected, Expected, list[CellPlan], int | None] | None:
    """(judged, paced, plans, n_cells) from spec.json's raw content; None when it has no forecast."""
    data = spec.get(KEY) if isinstance(spec, dict) else None
    if not isinstance(data, dict):
        return None
    plans = [_plan(p) for p in data.get("plans") or [] if isinstance(data.get("plans"), list)]
    n = data.get("n_cells")
    return _expected(data.get("expected")), _expected(data.get("paced")), plans, n if isinstance(n, int) else None


def tracker_of(spec: dict, started: float) -> tuple[ProgressTracker, Expected] | None:
    """The run's ETA tracker and the expected time that judges it, from spec.json's forecast."""
    got = read_forecast(spec)
    if got is None:
        return None
    judged, paced, plans, n = got
    return ProgressTracker(n, plans, paced, started), judged


def own_pace(started: float) -> tuple[ProgressTracker, Expected]:
    """A tracker of nothing but the run's own measured rate, and no expected time: what judges a part of a
    fanned-out grid (whose forecast is its grid's) against its own time limit."""
    return ProgressTracker(None, None, Expected(None), started), Expected(None)
