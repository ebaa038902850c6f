"""The backend seam: how a run is started, watched and stopped somewhere (this machine, a Slurm queue).

Every backend starts the same supervisor (`python -m mihd.runs.supervise RUN_DIR -- argv`), so every run
leaves the same run dir behind; a backend only answers "where is it now" and "stop it". Its handle is a
plain JSON dict, stored in the run dir (`handle.json`) and the registry, so a later process (a restarted
dashboard) reattaches with nothing but the files. A handle never holds a path: callers pass the run dir's
current location as `handle["run_dir"]`, so a moved or copied workspace reads its own files.

A new backend is a module defining a class with the members below plus one line in `BACKENDS`
(backends/__init__.py), which also turns its declared `options` into flags, defaults and dialog fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol


@dataclass(frozen=True)
class Option:
    """One backend option, declared once: the flag, the `<root>/<backend>.json` key and the dialog field."""
    name: str                                   # key in options dicts and the JSON defaults
    type: Callable[[Any], Any] = str            # text or JSON value -> value (ValueError: wrong type)
    help: str = ""
    validate: Callable[[Any], Any] | None = None  # value -> normalised value; ValueError("expected ...")
    metavar: str | None = None
    repeat: bool = False                        # a list: the flag repeats, defaults and flags add up
    flag: str = ""                              # default: --name with dashes

    def __post_init__(self):
        if not self.flag:
            object.__setattr__(self, "flag", "--" + self.name.replace("_", "-"))

# Where a run stands according to its backend (exit.json, when present, overrides all of these).
# ORPHANED: the command runs on but its supervisor is gone (killed, OOM): nobody will write exit.json.
QUEUED, RUNNING, ORPHANED, GONE, UNKNOWN = "queued", "running", "orphaned", "gone", "unknown"


@dataclass
class RunState:
    state: str                   # queued | running | orphaned | gone (no process, no job) | unknown (cannot tell)
    reason: str | None = None    # the backend's own words: a Slurm pending reason, why it is unknown
    started: float | None = None  # when it began running, if the backend knows
    handle: dict | None = None   # an updated handle (e.g. the backend's final word), else None
    time_limit: float | None = None  # seconds the backend gives the run before it ends it (a Slurm job's --time)


class Backend(Protocol):
    name: str
    options: tuple[Option, ...]

    def submit(self, run_dir: Path, argv: list[str], options: dict) -> dict:
        """Start `argv` under the supervisor for `run_dir`; return a JSON-able handle at once."""

    def poll(self, handles: dict[str, dict]) -> dict[str, RunState]:
        """State per run id, for many runs in one go (one `squeue` call, one process-table scan)."""

    def kill(self, handle: dict, signal: str, grace: float) -> dict:
        """Signal the run's processes, escalate to KILL after `grace` s; raise MihdError when refused.

        Returns what was done: {"signal", "escalated", "survivors"} and, where the backend can tell,
        "left" and "outside" (processes still alive / found outside the run's session, as "PID NAME")."""

    def process_root(self, handle: dict) -> tuple[int, float] | None:
        """(pid, create time) of the run's process tree on this machine, for CPU/RSS/GPU sampling;
        None when the run's processes are not visible here (e.g. on a compute node)."""
