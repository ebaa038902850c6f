"""The supervisor's own watch: a run decides `late` and `overrun` while it waits, with nobody looking.

Every JUDGE_EVERY seconds the supervisor feeds the new lines of events.jsonl
to the ETA tracker that spec.json's forecast describes (forecast.py), and judges: late (late.py: a
trustworthy projection past the expected time, or past the Slurm job's time limit) and overrun
(overrun.py). A fanned-out grid is judged from its parts instead (grid_watch.py), by its runner's
supervisor and, on Slurm, by each of its cells' supervisors; there each cell is also judged alone, by its own
pace against its array task's time limit, so a cell Slurm will kill at its --time is told before (by its grid's
hooks: the cell's own alerts name the cell). Each is appended to events.jsonl and handed to the notifier once
per run or cell (alerts.py), whoever sees it first: this supervisor or a watcher on any host. Standard
library only, no SQLite.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..jsonio import read_json
from ..rundir import SPEC, event_problem, read_events
from .forecast import own_pace, tracker_of
from .grid_watch import GridJudge, cell_label, grid_of
from .late import late_reason, tell
from .overrun import is_overrun, overrun_factor

SLURM_ASK_S = 10.0  # how long the job's own time limit may take to read from Slurm
JUDGE_EVERY = 1.0  # seconds between judgements: reading the new lines of events.jsonl costs next to nothing


def own_job() -> str | None:
    """This process's Slurm job as squeue names it alone: `ARRAY_TASK` in an array task (the array's last task
    carries the array's own id in SLURM_JOB_ID, which squeue answers with every task of the array), else the
    job id; None outside a job."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID") or None


def slurm_time_limit(job_id: str | None = None) -> float | None:
    """The time limit of this Slurm job or array task (its own or the partition's default) in seconds; None
    outside a job, for an unlimited one, or when Slurm does not say."""
    from .backends.slurm_commands import clean_env, parse_limit

    job_id = job_id or own_job()
    if not job_id:
        return None
    try:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%l"], capture_output=True, text=True,
                             timeout=SLURM_ASK_S, env=clean_env()).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_limit(out.strip().splitlines()[0] if out.strip() else None)


class SelfWatch:
    """One run's judgement as its supervisor waits; `check(now)` never raises past its caller's guard."""

    def __init__(self, run_dir: Path, started: float, time_limit_s: float | None = None):
        self.run_dir, self.started, self.time_limit_s = Path(run_dir), started, time_limit_s
        self.tracker, self.expected, self.offset = None, None, 0
        self.late: str | None = None
        self.label: str | None = None  # what its alerts call it (None: its own label, read by the notifier)
        self.factor = overrun_factor()
        self.grid: GridJudge | None | bool = False  # False: not looked for yet

    def check(self, now: float) -> str | None:
        """Judge the run as of `now`; returns the late flag's text (None: not late)."""
        if self.grid is False:
            grid = grid_of(self.run_dir)
            self.grid = GridJudge(grid) if grid else None
        if self.grid is not None:
            late = self.grid.check(now, self.factor)
            if self.grid.grid_dir == self.run_dir:
                return late  # the grid's runner: its own events hold none of its cells' progress
        if self.tracker is None:
            got = self._tracker()
            if got is None:
                return None  # not launched with a forecast (a local grid's part, an older launcher)
            self.tracker, self.expected = got
        events, self.offset = read_events(self.run_dir, self.offset)
        self.tracker.feed([e for e in events if not event_problem(e)])
        p = self.tracker.estimate(now)
        if p.ended:
            return None
        elapsed, exp = now - self.started, self.expected
        projected = elapsed + p.eta_s if p.eta_s is not None else None
        was, self.late = self.late, late_reason(elapsed, p.eta_s, p.confidence, p.fraction, exp, self.factor,
                                                self.late, self.time_limit_s)
        tell(self.run_dir, self.late, was, elapsed, projected, exp, p.fraction, is_overrun(elapsed, exp, self.factor),
             self.factor, self.label)
        return self.late

    def _tracker(self):
        """The run's ETA tracker and the expected time that judges it: its forecast's; for a cell of a Slurm grid
        (an array task, whose forecast is its grid's) its own measured pace alone, judged by its task's time limit."""
        got = tracker_of(read_json(self.run_dir / SPEC) or {}, self.started)
        if got is None and self.grid is not None:
            got, self.label = own_pace(self.started), cell_label(self.run_dir)
        if got is not None:
            self.time_limit_s = self.time_limit_s or slurm_time_limit()
        return got
