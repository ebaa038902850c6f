"""A run's `late` and `overrun` events: appended to its events.jsonl once, whoever sees them first.

The run's supervisor, a dashboard or a `mihd runs ls` on any host may each decide that a run is late or
overrunning. The run dir is shared by all of them where an SQLite index is not, so the one that creates
`.event-<kind>` in the run dir (O_CREAT|O_EXCL, which holds on NFSv3+) appends the event and hands it to
the notifier (notify.deliver, which fires each event once per run itself). A run dir that cannot take the
claim (read-only) gets no event: the flag is still shown, from the watcher's own judgement.
Standard library only: the supervisor imports it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from ..rundir import EventLog
from .notify import deliver

CLAIM = ".event-{}"


def claim(run_dir: Path, kind: str) -> bool:
    """True for the one caller that creates the claim of `kind` for this run; False when it exists or
    cannot be made."""
    try:
        fd = os.open(Path(run_dir) / CLAIM.format(kind), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError:
        return False
    with os.fdopen(fd, "w") as fh:
        json.dump({"host": socket.gethostname(), "pid": os.getpid(), "t": round(time.time(), 3)}, fh)
    return True


def claimed(run_dir: Path, kind: str) -> bool:
    return (Path(run_dir) / CLAIM.format(kind)).exists()


def announce(run_dir: Path, kind: str, fields: dict, notice: dict) -> bool:
    """Append a `kind` event with `fields` and deliver `notice` (notify_event.FIELDS), once per run; True
    for the caller that did."""
    if not claim(run_dir, kind):
        return False
    written(run_dir, kind, fields)
    deliver(Path(run_dir), {"event": kind, "host": socket.gethostname(), **notice})
    return True


def written(run_dir: Path, kind: str, fields: dict) -> None:
    """A `kind` event with `fields` appended to the run's events.jsonl, told to nobody."""
    log = EventLog(run_dir)
    try:
        log.emit(kind, **fields)
    finally:
        log.close()


def notice(run_id: str, label: str, state: str, reason: str | None, elapsed: float | None,
           expected: float | None, projected: float | None) -> dict:
    """The event a hook is given (besides `event` and `host`)."""
    def r(x):
        return round(x, 1) if x is not None else None
    return {"run_id": run_id, "label": label, "state": state, "reason": reason, "elapsed_s": r(elapsed),
            "expected_s": r(expected), "projected_s": r(projected)}
