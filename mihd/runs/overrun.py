"""Overrun: a run past its expected time. Decided here, flagged by the watcher (CLI, dashboard) once.

Overrunning means elapsed > factor x expected (history), or elapsed > the `--expect` given. The factor
is 1.5 unless set (argument, or MIHD_OVERRUN_FACTOR). The run itself never writes this event: the
registry's atomic claim makes exactly one watcher append it, however many are polling.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import MihdError
from ..rundir import EventLog
from .eta import Expected

DEFAULT_FACTOR = 1.5


def overrun_factor(value: float | str | None = None) -> float:
    raw = value if value is not None else os.environ.get("MIHD_OVERRUN_FACTOR", DEFAULT_FACTOR)
    try:
        factor = float(raw)
    except ValueError:
        factor = 0
    if factor <= 0:
        raise MihdError(f"overrun factor {raw!r}: expected a positive number (e.g. 1.5)")
    return factor


def is_overrun(elapsed: float | None, expected: Expected, factor: float = DEFAULT_FACTOR) -> bool:
    if elapsed is None or expected.seconds is None:
        return False
    limit = expected.seconds if expected.source == "given" else factor * expected.seconds
    return elapsed > limit


def record_overrun(registry, run_id: str, run_dir: Path, elapsed: float, expected: Expected,
                   factor: float, now: float) -> bool:
    """Flag the run in the registry and append one `overrun` event; False if someone already did."""
    if not registry.claim_overrun(run_id, now):
        return False
    log = EventLog(run_dir)
    try:
        log.emit("overrun", elapsed=round(elapsed, 1), expected=round(expected.seconds, 1),
                 source=expected.source, factor=factor)
    finally:
        log.close()
    return True
