"""The backend seam: how a run is started, watched and stopped somewhere (this machine, a Slurm queue).

Every backend starts the same supervisor (`python -m mihd.runs.supervise RUN_DIR -- argv`), so every run
leaves the same run dir behind; a backend only answers "where is it now" and "stop it". Its handle is a
plain JSON dict, stored in the run dir (`handle.json`) and the registry, so a later process (a restarted
dashboard) reattaches with nothing but the files.

A new backend lives in `backends/<name>.py` and defines a class `Backend` with the methods below.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# Where a run stands according to its backend (exit.json, when present, overrides all of these).
QUEUED, RUNNING, GONE, UNKNOWN = "queued", "running", "gone", "unknown"


@dataclass
class RunState:
    state: str                   # queued | running | gone (no process, no job) | unknown (cannot tell from here)
    reason: str | None = None    # e.g. a Slurm pending reason, or why it is unknown
    started: float | None = None  # when it began running, if the backend knows
    handle: dict | None = None   # an updated handle (e.g. the pid learnt after submit), else None


class Backend(Protocol):
    name: str

    def submit(self, run_dir: Path, argv: list[str], options: dict) -> dict:
        """Start `argv` under the supervisor for `run_dir`; return a JSON-able handle at once."""

    def poll(self, handles: dict[str, dict]) -> dict[str, RunState]:
        """State per run id, for many runs in one go (one `squeue` call, one process-table scan)."""

    def kill(self, handle: dict, signal: str, grace: float) -> dict:
        """Signal the run's processes, escalate to KILL after `grace` s; raise MihdError when refused.

        Returns what was done: {"signal", "escalated", "survivors"}."""

    def process_root(self, handle: dict) -> tuple[int, float] | None:
        """(pid, create time) of the run's process tree on this machine, for CPU/RSS/GPU sampling;
        None when the run's processes are not visible here (e.g. on a compute node)."""
