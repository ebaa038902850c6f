"""Late: a run whose trustworthy projected end passes its expected time, or its Slurm time limit.

An overrun (overrun.py) is a run already past its limit; `late` says so before, from the run's own
measured rate, so a researcher can stop a run that cannot finish in time instead of waiting for it.

The confidence rule: a projection (elapsed + ETA) is judged only when its ETA is `medium` or `high`
(eta.py: at least 3/4 of what is left is measured by this run's own rate, or timed by a history of
MIN_HISTORY+ runs, and no stage is past its expected end). An ETA made of hints (`low`: an `--expect`
standing in for a measurement, one earlier run, default stage costs) or nothing measured (`unknown`)
never flags a run, and never clears a flag either. A trustworthy projection flags the run `late` when
it passes the overrun limit by LATE_MARGIN (and LATE_SLACK_S), so the usual wobble of a measured rate
on a shared machine does not flag a run that ends in time; the flag goes when a trustworthy projection
comes back under the limit itself. A job's time limit needs no margin: Slurm ends the job there.
"""

from __future__ import annotations

from pathlib import Path

from ..present import fmt_duration, slurm_clock
from .alerts import announce, claimed, notice, written
from .eta import Expected
from .fanout import grid_of_cell, run_name
from .overrun import overrun_fields, overrun_limit

TRUSTED = ("medium", "high")  # ETA confidences a projection is judged on
LATE_MARGIN = 1.5             # a projection this far past the limit flags a run: an early rate on a loaded
                              # machine was seen 1.5x off (bench_late.py); a run that cannot finish is 5-50x
LATE_SLACK_S = 10.0           # and at least this many seconds past it
OVERRUN_WORDS = "will overrun"
LIMIT_WORDS = "will hit its time limit"


def projection(elapsed: float | None, eta_s: float | None, confidence: str) -> float | None:
    """The run's projected running time in total, or None when its ETA is not trustworthy."""
    if elapsed is None or eta_s is None or confidence not in TRUSTED:
        return None
    return elapsed + eta_s


def short_duration(seconds: float) -> str:
    """`30m`, `2h05m`, `4m10s`, `20s`: fmt_duration without a trailing `00s`."""
    text = fmt_duration(seconds)
    return text[:-3] if text.endswith("m00s") else text


def late_reason(elapsed: float | None, eta_s: float | None, confidence: str, fraction: float | None,
                expected: Expected, factor: float, was: str | None = None,
                time_limit_s: float | None = None) -> str | None:
    """The `late` flag's text (None: not late) as of now; `was`: the flag's text at the last judgement (it
    stays while the projection is not trustworthy, and until a trustworthy one comes back under)."""
    projected = projection(elapsed, eta_s, confidence)
    if projected is None:
        return was
    if time_limit_s and projected > time_limit_s:
        return f"{LIMIT_WORDS} {slurm_clock(time_limit_s)} (projected {slurm_clock(projected)})"
    limit = overrun_limit(expected, factor)[0]
    if limit is None:
        return None
    still = was is not None and was.startswith(OVERRUN_WORDS) and projected > limit
    if still or projected > max(limit * LATE_MARGIN, limit + LATE_SLACK_S):
        at = f" (at {fraction * 100:.0f} %)" if fraction is not None else ""
        return f"{OVERRUN_WORDS}: projected {short_duration(projected)}, expected " \
               f"{short_duration(expected.seconds)}{at}"
    return None


def tell(run_dir: Path, late: str | None, was: str | None, elapsed: float, projected: float | None, expected: Expected,
         fraction: float | None, overrun: bool, factor: float, label: str | None = None) -> None:
    """A judge's verdict told: the `late` event when the flag turns on, the `overrun` event once (alerts.py's
    claims keep each to one per run, whoever judges). A grid's cell is read from its events (fanout_status), so
    there each later turn of its flag is written too, unannounced: back on time (`reason` null), late again."""
    run_dir = Path(run_dir)
    cell, run_id = grid_of_cell(run_dir) is not None, run_name(run_dir)
    if late and not was:
        fields = {"reason": late, "elapsed": round(elapsed, 1), "projected": round(projected, 1),
                  "expected": expected.seconds, "source": expected.source, "at": fraction}
        if not announce(run_dir, "late", fields, notice(run_id, label, "late", late, elapsed, expected.seconds,
                                                        projected)) and cell:
            written(run_dir, "late", fields)
    elif was and not late and cell:
        written(run_dir, "late", {"reason": None, "elapsed": round(elapsed, 1), "at": fraction})
    if overrun and not claimed(run_dir, "overrun"):
        announce(run_dir, "overrun", overrun_fields(elapsed, expected, factor),
                 notice(run_id, label, "overrun", "past its expected time", elapsed, expected.seconds, projected))
