"""What a watcher settles about a run's end, written where every reader finds it: whether an exit.json's TERM
still waits for its backend to say who sent it (signalled_job), and the `lost` decision for a run that left
nothing to say how it ended (record_lost, written once into its run dir so a rebuilt index keeps it)."""

from __future__ import annotations

import socket
from pathlib import Path

from ..jsonio import read_json
from ..rundir import EXIT, EventLog, RunFileError, load_events
from .backends import get_backend


def backend_name(name: str) -> str:
    return "local" if name == "direct" else name  # a direct run is a local process without supervisor


def signalled_job(row: dict) -> bool:
    """An exit.json that says only TERM, of a backend whose last word says who sent it (Slurm at the time
    limit, a `scancel` from outside): that word is asked for before the run is read as ended."""
    if not getattr(get_backend(backend_name(row.get("backend") or "local")), "says_who_ended", False):
        return False
    ended = read_json(Path(row["run_dir"]) / EXIT)
    return isinstance(ended, dict) and bool(ended.get("signal"))


def record_lost(run_dir: Path, reason: str) -> None:
    """Write the `lost` decision into the run dir once (so a rebuilt index keeps it); a read-only
    workspace keeps it in this host's index only."""
    try:
        if any(e["kind"] == "lost" for e in load_events(run_dir)):
            return
        log = EventLog(run_dir)
        try:
            log.emit("lost", reason=reason, by=socket.gethostname())
        finally:
            log.close()
    except (OSError, RunFileError):
        pass
