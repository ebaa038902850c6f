"""Stopping a run: its whole process tree (or its job), recorded in events.jsonl and the registry.

The backend refuses when a recorded identity is incomplete (no create time), from another host or boot,
or now belongs to another process or user. An `orphaned` run (supervisor gone, command running) is
killed like any other; so is a `corrupt` one whose processes still run. The kill event (who, when, which
signal, whether KILL was needed, what was left) is what makes the run's final status `killed` rather than
`failed`, in the registry and after any reindex.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from pathlib import Path

from ..errors import MihdError
from ..jsonio import write_json_atomic
from ..rundir import EXIT, EventLog
from . import fanout_status
from .fanout import is_fanned
from .ids import split_cell
from .notify import suppress
from .status import RunWatcher

SIGNALS = ("TERM", "INT", "KILL")


def kill_run(root, run_id: str, signal: str = "TERM", grace: float = 10.0,
             watcher: RunWatcher | None = None) -> dict:
    """Signal run `run_id` (id, prefix or name; `GRID/N` for cell N of a fanned-out grid) and escalate to
    KILL after `grace` seconds. A fanned-out grid is killed part by part (mihd.runs.fanout_status.kill).

    Returns {"id", "signal", "escalated", "survivors", "status"} and what the backend adds ("left",
    "outside": processes by "PID NAME"). Raises MihdError when the run is not running, or when the
    backend refuses (an incomplete identity, pid reused, another user's process, another host).
    """
    signal = signal.upper().removeprefix("SIG")
    if signal not in SIGNALS:
        raise MihdError(f"--signal {signal}: expected one of {', '.join(SIGNALS)}")
    own = watcher is None
    watcher = watcher or RunWatcher(root)
    try:
        grid_id, cell = split_cell(run_id)  # GRID/3: cell 3 of a fanned-out grid
        view = watcher.view(grid_id)
        if cell is None and view.active:  # the researcher's own kill is no news to them: no `failed` sent
            suppress(Path(view.run_dir), "failed", "mihd runs kill")
        if cell is not None or is_fanned(view.run_dir):
            if cell is not None and not is_fanned(view.run_dir):
                raise MihdError(f"run {run_id!r}: ID/N names cell N of a grid launched with --parallel or on Slurm")
            return fanout_status.kill(watcher, view, signal, grace, cell)
        if not watcher.may_still_run(view):
            what = f"corrupt: {view.error}" if view.status == "corrupt" else view.status
            raise MihdError(f"run {view.id}: not running ({what}); nothing to kill")
        backend, handle = watcher.backend_of(view)
        outcome = backend.kill(handle, signal, grace)
        run_dir = Path(view.run_dir)
        record_kill(run_dir, outcome, signal, grace)
        row = watcher.registry.ingest(run_dir)  # the kill event makes the status `killed`
        return {"id": view.id, "status": row["status"], **outcome}
    finally:
        if own:
            watcher.close()


def record_kill(run_dir: Path, outcome: dict, signal: str, grace: float) -> None:
    """The kill event (who, when, what was left) and, when the supervisor itself was gone, exit.json on its behalf."""
    who = f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"
    log = EventLog(run_dir)
    try:
        log.emit("kill", signal=signal, by=who, grace=grace, escalated=outcome.get("escalated", False),
                 survivors=outcome.get("survivors"), left=outcome.get("left"), outside=outcome.get("outside"))
    finally:
        log.close()
    if outcome.get("survivors") == 0 and outcome.get("ended", True) and not (run_dir / EXIT).exists():
        write_json_atomic(run_dir / EXIT, {"code": None, "signal": signal, "ended": round(time.time(), 3),
                                           "forwarded": [], "written_by": "mihd runs kill"})
