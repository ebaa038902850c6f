"""What a researcher is told when Slurm, not mihd, ended a job: its time limit, or a `scancel` from outside; and
what a job Slurm is still ending reads meanwhile.

Both used to read a bare `killed`: Slurm sends the batch script TERM in either case and the supervisor
forwards it. Slurm's final state tells them apart (TIMEOUT, CANCELLED); a `kill` event in the run dir (or,
for a cell of a job array, in its grid's) says the cancel came from mihd itself.
"""

from __future__ import annotations

from pathlib import Path

from ...rundir import EVENTS
from ...present import slurm_clock
from .slurm_commands import JobInfo


def killed_by_mihd(run_dir: Path) -> bool:
    """A `kill` event in the run dir, or in its grid's when it is a cell of one (cells/<i>)."""
    dirs = [run_dir] + ([run_dir.parent.parent] if run_dir.parent.name == "cells" else [])
    for d in dirs:
        try:
            text = (d / EVENTS).read_text(errors="replace")
        except OSError:
            continue
        if '"kind": "kill"' in text:
            return True
    return False


def ended_note(info: JobInfo, run_dir: Path) -> str:
    """The words for how Slurm ended the job: `killed by Slurm: time limit 2:00:00 reached`, `cancelled outside
    mihd (scancel)`, else Slurm's own state and reason."""
    if info.state == "TIMEOUT":
        return limit_note(info.time_limit)
    if info.state == "CANCELLED" and not killed_by_mihd(run_dir):
        return "cancelled outside mihd (scancel)"
    return f"Slurm {info.state}" + (f" ({info.reason})" if info.reason else "")


def limit_note(time_limit: float | None) -> str:
    """`killed by Slurm: time limit 2:00:00 reached` (the limit left out when Slurm did not say it)."""
    limit = f" {slurm_clock(time_limit)}" if time_limit else ""
    return f"killed by Slurm: time limit{limit} reached"


def held_note(state: str) -> str | None:
    """The word for a job Slurm still holds on its node: none while it runs; `ending` while Slurm completes it
    (COMPLETING: its script was signalled or is done, and whether a scancel or a time limit did it is said only
    once Slurm has let go), else Slurm's own state (suspended, ...)."""
    if state == "RUNNING":
        return None
    return "ending: Slurm is stopping the job" if state == "COMPLETING" else state.lower()
