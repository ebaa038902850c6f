"""Stopping a run: its whole process tree (or its job), recorded in events.jsonl and the registry; a fanned-out
grid part by part (kill_grid), or one of its cells.

The backend refuses when a recorded identity is incomplete (no create time), from another host or boot,
or now belongs to another process or user. An `orphaned` run (supervisor gone, command running) is
killed like any other; so is a `corrupt` one whose processes still run. The kill event (who, when, which
signal, whether KILL was needed, what was left) is what makes the run's final status `killed` rather than
`failed`, in the registry and after any reindex.
"""

from __future__ import annotations

import getpass
import os
import signal as _signal
import socket
import time
from pathlib import Path

from ..errors import MihdError
from ..jsonio import read_json, write_json_atomic
from ..rundir import EXIT, HANDLE, PROC, EventLog
from .fanout import CELLS, cell_dir, is_fanned, mark_never_started, parts, read_fanout
from ..identity import alive
from .ids import split_cell
from .notify import suppress
from .run_files import ACTIVE
from .run_row import describe
from .status import RunWatcher

SIGNALS = ("TERM", "INT", "KILL")


def kill_run(root, run_id: str, signal: str = "TERM", grace: float = 10.0,
             watcher: RunWatcher | None = None) -> dict:
    """Signal run `run_id` (id, prefix or name; `GRID/N` for cell N of a fanned-out grid) and escalate to
    KILL after `grace` seconds. A fanned-out grid is killed part by part (kill_grid).

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
            return kill_grid(watcher, view, signal, grace, cell)
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


def kill_grid(watcher, view, signal: str, grace: float, index: int | None = None) -> dict:
    """Kill the whole grid (its runner first, so it starts nothing more, then every part still active, then
    Slurm's array and extraction jobs as wholes), or only cell `index`; each part's kill is recorded in its
    own dir, the grid's in the grid's."""
    from .backends import get_backend

    grid_dir = Path(view.run_dir)
    fan = read_fanout(grid_dir)
    n = len(fan["cells"])
    handle = read_json(grid_dir / HANDLE) or {}
    if index is not None:
        if not 0 <= index < n:
            raise MihdError(f"run {view.id}/{index}: no such cell (the grid has cells 0 to {n - 1})")
        status = next((c.status for c in view.cells if c.index == index), None)
        if status not in ACTIVE:
            raise MihdError(f"run {view.id}/{index}: not running ({status}); nothing to kill")
        targets = [(f"{CELLS}/{index}", cell_dir(grid_dir, index))]
    else:
        if view.status not in ACTIVE:
            raise MihdError(f"run {view.id}: not running ({view.status}); nothing to kill")
        targets = parts(grid_dir, fan)
    out = {"id": view.id if index is None else f"{view.id}/{index}", "signal": signal, "escalated": False,
           "survivors": 0, "left": [], "outside": []}

    def merge(res: dict) -> None:
        out["escalated"] = out["escalated"] or bool(res.get("escalated"))
        out["survivors"] += res.get("survivors") or 0
        out["left"] += res.get("left") or []
        out["outside"] += res.get("outside") or []

    if index is None and handle.get("backend") == "slurm":  # first what has not started: a slot freed below starts nothing
        slurm = get_backend("slurm")
        for job in [handle.get("job_id"), *(handle.get("extract_jobs") or [])]:
            if job:
                slurm.commands.scancel(str(job), pending_only=True)
    runner = _runner(grid_dir) if index is None and handle.get("backend") == "local" else None
    if runner:  # the runner alone: it starts nothing more (TERM: passes it on, marks the parts it never started)
        os.kill(runner[0], getattr(_signal, f"SIG{signal}"))
    who = f"kill of grid {view.id}" if index is None else None
    for _, d in targets:
        if (d / EXIT).exists():
            continue
        part_handle = read_json(d / HANDLE)
        if not isinstance(part_handle, dict):  # never started: waiting for a worker
            mark_never_started(d, signal, who or "mihd runs kill")
            continue
        if part_handle.get("backend") == "local":
            deadline = time.monotonic() + 3.0  # started just now: its supervisor is recording itself
            while not (d / PROC).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        try:
            res = get_backend(part_handle.get("backend") or "local").kill({**part_handle, "run_dir": str(d)}, signal,
                                                                         grace)
        except MihdError:
            if index is not None:
                raise
            continue  # nothing of it runs any more (it ended just now, or its supervisor died): not ours to say
        record_kill(d, res, signal, grace)
        merge(res)
    if runner:  # its parts are gone: it ends at once; what would not is killed with its supervisor's session
        deadline = time.monotonic() + grace + 5.0
        while alive(*runner) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(*runner):
            merge(get_backend("local").kill({**handle, "run_dir": str(grid_dir)}, "KILL", 0))
        sup = read_json(grid_dir / PROC) or {}
        deadline = time.monotonic() + 10.0  # its supervisor writes exit.json once it ended: wait for that
        while alive(sup.get("pid"), sup.get("create_time")) and time.monotonic() < deadline:
            time.sleep(0.05)
    if index is None:
        if handle.get("backend") == "slurm":  # whatever a task or extraction job still holds
            slurm = get_backend("slurm")
            for job in [handle.get("job_id"), *(handle.get("extract_jobs") or [])]:
                if job:
                    slurm.commands.scancel(str(job))
        record_kill(grid_dir, {**out, "ended": True} if handle.get("backend") == "slurm" else {**out, "ended": False},
                    signal, grace)
    row = watcher.registry.ingest(grid_dir)
    if index is None:
        return {**out, "status": row["status"]}
    return {**out, "status": describe(cell_dir(grid_dir, index))[0]["status"]}


def _runner(grid_dir: Path) -> tuple[int, float] | None:
    """(pid, create time) of a local grid's runner while it runs, from the grid's proc.json."""
    ident = read_json(Path(grid_dir) / PROC)
    if not isinstance(ident, dict) or (Path(grid_dir) / EXIT).exists():
        return None
    pid, ctime = ident.get("child_pid"), ident.get("child_create_time")
    return (pid, ctime) if alive(pid, ctime) else None
