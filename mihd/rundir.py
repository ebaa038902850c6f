"""The run dir protocol (DESIGN.md): file names, the events log, and reading a run's state back.

A run writes only into its run dir. `events.jsonl` is appended one JSON object a line, flushed after
each line, so a reader polling the file always sees whole events (a torn last line is skipped).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterable

from .jsonio import read_json, write_json_atomic

SPEC = "spec.json"
LOG = "run.log"
EVENTS = "events.jsonl"
RESULT = "result.json"
EXIT = "exit.json"

EVENT_KINDS = ("start", "stage", "metric", "cache", "end", "overrun", "kill", "cell")


class EventLog:
    """Appends events to `events.jsonl`; a no-op when there is no run dir (plain API use)."""

    def __init__(self, run_dir: Path | None):
        self.run_dir = Path(run_dir) if run_dir else None
        self._fh = None
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.run_dir / EVENTS, "a", buffering=1)
        self._last_stage_emit: dict[str, float] = {}

    def emit(self, kind: str, **fields: Any) -> dict:
        event = {"t": round(time.time(), 3), "kind": kind, **fields}
        if self._fh is not None:
            self._fh.write(json.dumps(event, default=str) + "\n")
            self._fh.flush()
        return event

    def stage(self, stage: str, done: int, total: int, min_interval: float = 0.5, **fields: Any) -> None:
        """Progress of a stage; rate-limited so a tight loop does not flood the file."""
        now = time.monotonic()
        if done < total and now - self._last_stage_emit.get(stage, 0.0) < min_interval and done != 0:
            return
        self._last_stage_emit[stage] = now
        self.emit("stage", stage=stage, done=int(done), total=int(total), **fields)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_events(run_dir: Path, offset: int = 0) -> tuple[list[dict], int]:
    """Events from byte `offset` on, and the offset to continue from (only whole lines are consumed)."""
    path = Path(run_dir) / EVENTS
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    events = []
    for line in data[: end + 1].splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events, offset + end + 1


def write_result(run_dir: Path, result: dict) -> None:
    write_json_atomic(Path(run_dir) / RESULT, result)


def read_result(run_dir: Path) -> dict | None:
    return read_json(Path(run_dir) / RESULT)


def read_exit(run_dir: Path) -> dict | None:
    return read_json(Path(run_dir) / EXIT)


def read_spec(run_dir: Path) -> dict | None:
    return read_json(Path(run_dir) / SPEC)


def iter_run_dirs(runs_root: Path) -> Iterable[Path]:
    try:
        entries = sorted(os.scandir(runs_root), key=lambda e: e.name)
    except OSError:
        return []
    return [Path(e.path) for e in entries if e.is_dir() and not e.name.startswith(".")]
