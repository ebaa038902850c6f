"""Overrun: a run past its expected time. Decided here, flagged by the watcher (CLI, dashboard) once.

The `--expect` given is authoritative: past it, a run overruns. An expected time from history is a
yardstick only when at least MIN_HISTORY runs stand behind it: then elapsed > factor x expected (1.5
unless set by argument or MIHD_OVERRUN_FACTOR) overruns. Fewer runs (one noisy first run says little)
flag only past TENTATIVE_FACTOR x expected, and the `overrun` event says so. Either way a run gets
MIN_SLACK_S beyond its expected time, so a seconds-long run is not flagged for a slow process start.
The run's own supervisor decides it too (self_watch.py): whoever sees it first appends the one `overrun`
event (alerts.py's claim in the run dir); a watcher also flags it in its host's registry.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ..errors import MihdError
from .alerts import announce, notice
from .eta import MIN_HISTORY, Expected

DEFAULT_FACTOR = 1.5
TENTATIVE_FACTOR = 3.0
MIN_SLACK_S = 10.0


def overrun_factor(value: float | str | None = None) -> float:
    raw = value if value is not None else os.environ.get("MIHD_OVERRUN_FACTOR", DEFAULT_FACTOR)
    try:
        factor = float(raw)
    except ValueError:
        factor = 0
    if not 0 < factor < math.inf:  # nan too
        where = "--overrun-factor" if value is not None else "MIHD_OVERRUN_FACTOR"
        raise MihdError(f"{where} {raw!r}: expected a positive number (e.g. 1.5)")
    return factor


def overrun_limit(expected: Expected, factor: float = DEFAULT_FACTOR) -> tuple[float | None, float, str]:
    """(elapsed seconds past which the run overruns, the factor applied, what the expected time rests on)."""
    if expected.seconds is None:
        return None, factor, "no expected time"
    if expected.source == "given":
        return expected.seconds, 1.0, "given at launch"
    runs = f"{expected.n} earlier run{'s' * (expected.n != 1)}"
    if expected.tentative:
        factor = max(factor, TENTATIVE_FACTOR)
        why = f"median of only {runs} (fewer than {MIN_HISTORY}): wider factor"
    else:
        why = f"median of {runs}"
    return max(factor * expected.seconds, expected.seconds + MIN_SLACK_S), factor, why


def is_overrun(elapsed: float | None, expected: Expected, factor: float = DEFAULT_FACTOR) -> bool:
    limit = overrun_limit(expected, factor)[0]
    return elapsed is not None and limit is not None and elapsed > limit


def overrun_fields(elapsed: float, expected: Expected, factor: float) -> dict:
    """The `overrun` event's fields."""
    _, factor, why = overrun_limit(expected, factor)
    return {"elapsed": round(elapsed, 1), "expected": round(expected.seconds, 1), "source": expected.source,
            "factor": factor, "basis": why}


def record_overrun(registry, run_id: str, run_dir: Path, elapsed: float, expected: Expected,
                   factor: float, now: float, label: str | None = None) -> bool:
    """Flag the run in the registry and append one `overrun` event (unless its supervisor or another
    watcher did); False if this host had flagged it already."""
    if not registry.claim_overrun(run_id, now):
        return False
    announce(run_dir, "overrun", overrun_fields(elapsed, expected, factor),
             notice(run_id, label, "overrun", "past its expected time", elapsed, expected.seconds, None))
    return True
