"""A command hook: its argv run with no shell, the event as JSON on stdin and as MIHD_EVENT_* variables.

It runs in a session of its own, so a hook that outlives its timeout is killed with everything it started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

from ..identity import MARKER_VAR

SAID_CHARS = 200  # of a hook's own output kept in its outcome


def event_env(event: dict) -> dict[str, str]:
    """MIHD_EVENT_RUN_ID=..., one per field (null as empty); NUL, which no variable may hold, dropped."""
    return {f"MIHD_EVENT_{key.upper()}": "" if value is None else str(value).replace("\0", "")
            for key, value in event.items() if key.isidentifier()}


def run_command(argv: tuple[str, ...], event: dict, timeout: float) -> tuple[bool, str]:
    """(whether it exited 0, what it did in a few words)."""
    env = {k: v for k, v in os.environ.items() if k != MARKER_VAR and not k.startswith("MIHD_EVENT_")}
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**env, **event_env(event)}, start_new_session=True, close_fds=True)
    except OSError as exc:
        return False, f"cannot start: {exc.strerror or exc}"
    try:
        out, _ = proc.communicate(json.dumps(event).encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.communicate(timeout=5)  # a grandchild that left the session may hold the pipe: not waited for
        except subprocess.TimeoutExpired:
            pass
        return False, f"killed after {timeout:g} s (timeout)"
    said = " ".join(out.decode(errors="replace").split())[:SAID_CHARS]
    how = "exit 0" if proc.returncode == 0 else (
        f"exit {proc.returncode}" if proc.returncode > 0 else f"killed by signal {-proc.returncode}")
    return proc.returncode == 0, how + (f": {said}" if said else "")
