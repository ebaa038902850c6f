"""How long the supervisor may take over a run's end, so that it always gets to write exit.json.

Where nothing hurries it (a local run), what the command leaves running gets LEFTOVER_GRACE seconds between
TERM and KILL. Under Slurm, a TERM (an outside `scancel`, the time limit) is followed by Slurm's KILL of the
whole job, supervisor included, KillWait seconds later: a supervisor still waiting then never writes
exit.json, and the run reads `lost`. So under Slurm every wait of the end is a share of KillWait: the command
is KILLed half of it after Slurm's TERM, leftovers are KILLed by then too (Slurm TERMed them at the same
moment), the last quarter is left for exit.json. Before any TERM the same shares bound each wait, as one may
come at any moment of the end. A TERM that only `scancel --batch --signal` sent (mihd's own kill, which then
gives the run its --grace) leaves the job RUNNING: Slurm is asked before the command is KILLed early.

A TERM at the job's time limit is said in exit.json (slurm_outcome), so the run reads failed by that limit from its
own files: a grid whose last cell it is ends with it, and no watcher asks Slurm about that cell again.
"""

from __future__ import annotations

import math
import os
import signal
import time
from functools import partial

from ..errors import MihdError
from .backends.slurm_commands import JobInfo, SlurmCommands, subprocess_runner
from .backends.slurm_words import limit_note
from .self_watch import own_job

LEFTOVER_GRACE = 5.0  # seconds a leftover gets between TERM and KILL, and then to be gone, at most
ASSUMED_KILL_WAIT = 5.0  # under Slurm when scontrol does not say: a short KillWait some sites set
ASK_TIMEOUT_S = 5.0  # `scontrol show config`, asked once as the command starts
COMMAND_SHARE, TERM_SHARE, KILL_SHARE = 0.5, 0.5, 0.75  # of KillWait, from Slurm's TERM
START_LAG_S = 5.0  # a job starts this much before its supervisor at most (the clock's tolerance at its time limit)


def _slurm(timeout: float = ASK_TIMEOUT_S) -> SlurmCommands:
    return SlurmCommands(partial(subprocess_runner, timeout=timeout))


def slurm_kill_wait() -> float | None:
    """KillWait of the Slurm running this process (one `scontrol show config`); None outside Slurm."""
    if not os.environ.get("SLURM_JOB_ID"):
        return None
    wait = _slurm().kill_wait()
    return ASSUMED_KILL_WAIT if wait is None else wait


class EndWindow:
    def __init__(self, kill_wait: float | None = None):
        self.kill_wait = kill_wait  # None: nobody KILLs the supervisor after a TERM (or not known yet)
        self.term_at: float | None = None  # time.monotonic() of the first TERM
        self.command_killed = False
        self.said: JobInfo | None = None  # this job as Slurm last said it since the TERM

    def _ending(self, timeout: float) -> bool:
        """Whether Slurm is ending this job (COMPLETING after a scancel or the time limit), not only signalling it;
        True when Slurm cannot say within `timeout` seconds, as its KILL may then be on its way."""
        try:
            self.said = _slurm(timeout).show_job(own_job())
        except MihdError:
            return True
        return self.said is None or self.said.state != "RUNNING"

    def termed(self) -> None:
        """A TERM arrived (called from the signal handler): the clock to Slurm's KILL runs from now."""
        if self.term_at is None:
            self.term_at = time.monotonic()

    def command_left(self) -> float:
        """Seconds the command may still take to end (inf where nothing hurries it)."""
        if self.kill_wait is None or self.term_at is None:
            return math.inf
        return self.term_at + COMMAND_SHARE * self.kill_wait - time.monotonic()

    def hurry(self, pgid: int) -> bool:
        """KILL the command's process group once its time is up and Slurm is ending the job; True when this
        call did."""
        if self.command_killed or self.command_left() > 0:
            return False
        if not self._ending(timeout=max((KILL_SHARE - COMMAND_SHARE) * self.kill_wait, 0.5)):
            self.term_at = self.said = None  # only a signal: the command keeps its time, a later TERM starts anew
            return False
        self.command_killed = True
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return True

    def until(self, started: float, killing: bool) -> float:
        """When a wait for leftovers begun at `started` (monotonic) ends: the TERM phase's, or after KILL."""
        end = started + LEFTOVER_GRACE
        if self.kill_wait is None:
            return end
        since = started if self.term_at is None else min(started, self.term_at)
        return min(end, since + (KILL_SHARE if killing else TERM_SHARE) * self.kill_wait)

    def slurm_outcome(self, elapsed: float, time_limit_s: float | None) -> dict | None:
        """When Slurm's time limit sent the TERM, exit.json's `outcome` ({"status": "failed", "note": `killed by
        Slurm: time limit 0:01:00 reached`}), else None. Slurm is asked (it says Reason=TimeLimit while it ends
        the job) unless it answered since the TERM, within the window left before exit.json's share; with no
        answer the clock judges: the run's `elapsed` seconds reached its known `time_limit_s`."""
        if self.kill_wait is None or self.term_at is None:
            return None
        if self.said is None:
            left = self.term_at + KILL_SHARE * self.kill_wait - time.monotonic()
            self._ending(max(left, (1 - KILL_SHARE) * self.kill_wait / 2))
        if self.said is not None:
            hit, limit = self.said.reason == "TimeLimit" or self.said.state == "TIMEOUT", self.said.time_limit
        else:
            hit, limit = time_limit_s is not None and elapsed >= time_limit_s - START_LAG_S, time_limit_s
        return {"status": "failed", "note": limit_note(limit)} if hit else None
