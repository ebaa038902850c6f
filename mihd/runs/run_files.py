"""Reading one run dir's files for the registry (run_row.describe): every file checked (rundir.load_file), and
the one problem that decides its row, if any; their stamp (files_stamp), by which an index finds a changed run
with stats alone; the statuses a run's row may be in.

A file another lab member's umask keeps from this user (or a run dir it may not enter) makes the row
`unreadable (owner X)`, never `corrupt`, and never a traceback for the whole listing. A run whose events say
it ended ok but whose result.json is gone is damaged, not `done`. A grid's cell that finished with a result
keeps it: a garbled line in its events (a torn write), or a damaged spec.json, proc.json or exit.json beside
a sound result, is skipped with a note rather than turning the cell (and its grid) `failed`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..rundir import (EVENTS, EXIT, HANDLE, PROC, RESULT, SPEC, USAGE, RunFileError, RunFileUnreadable, event_problem,
                      load_events, load_file, read_events)
from .fanout import CELLS, EXTRACT, FANOUT

FILES = (SPEC, HANDLE, PROC, RESULT, EXIT, USAGE)  # checked in this order: the first problem names the row
STAMPED = (SPEC, HANDLE, PROC, RESULT, EXIT, USAGE, EVENTS, FANOUT)  # the files a row is described from
UNSETTLED = "unreadable"  # the stamp of an unreadable row: never a run dir's, so every sync reads it again
TERMINAL = ("done", "failed", "killed")
RUN_COLUMNS = (  # a registry row's fields (run_row.describe)
    "id", "name", "label", "signature", "cells", "n_cells", "backend", "handle", "pid", "create_time",
    "job_id", "host", "run_dir", "created", "started", "ended", "status", "exit_code", "exit_signal",
    "error", "note", "expect", "overrun", "overrun_at", "kill_signal", "killed_at", "killed_by", "updated", "stamp",
)
ACTIVE = ("queued", "running", "orphaned")
ACTIVE_SQL = ", ".join(f"'{s}'" for s in ACTIVE)  # the same, as an SQL list: status IN (...)


@dataclass
class RunFiles:
    files: dict = field(default_factory=dict)    # file name -> its checked content (None: absent or skipped)
    events: list = field(default_factory=list)
    problem: RunFileError | None = None           # what makes the row corrupt (or unreadable)
    note: str | None = None                       # the damage a cell's result outlived


def has_files(run_dir: Path) -> bool:
    """Whether `run_dir` holds a run: one of its first files is there, or it cannot be looked into (another
    user's run dir, listed as unreadable)."""
    for name in (SPEC, EVENTS, RESULT):
        try:
            os.stat(f"{os.fspath(run_dir)}/{name}")
            return True
        except PermissionError:
            return True
        except OSError:
            continue
    return False


def files_stamp(run_dir: Path) -> str:
    """Inode, size and mtime of each file a row is described from: a row whose stamp differs from its run dir's
    is out of date (a file written, replaced, damaged or removed since), found with stats, not reads. A grid's
    (fanout.json, last) adds its parts' folders: a part added or removed (grid_index says how parts are stamped)."""
    base = os.fspath(run_dir)
    parts = [_stat(f"{base}/{name}") for name in STAMPED]
    if parts[-1] != "-":
        parts += [_stat(f"{base}/{name}") for name in (CELLS, EXTRACT)]
    return " ".join(parts)


def _stat(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "-"
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def read_run(run_dir: Path, part: bool = False) -> RunFiles:
    """Every file of `run_dir` checked. `part`: a grid's cell, whose sound result stands over other damage."""
    got, problems = RunFiles(), []
    for name in FILES:
        try:
            got.files[name] = load_file(run_dir, name)
        except RunFileError as exc:
            got.files[name] = None
            problems.append(exc)
    try:
        got.events = load_events(run_dir)
    except RunFileError as exc:
        got.events = [e for e in read_events(run_dir)[0] if not event_problem(e)]  # the sound lines
        problems.append(exc)
    unreadable = [p for p in problems if isinstance(p, RunFileUnreadable)]
    result = got.files[RESULT]
    if unreadable:
        got.problem = unreadable[0]
    elif problems and part and (result or {}).get("status") == "ok":
        got.note = "; ".join(map(str, problems)) + " (skipped: its result stands)"
    elif problems:
        got.problem = problems[0]
    elif result is None and any(e["kind"] == "end" and e.get("status") == "ok" for e in got.events):
        got.problem = RunFileError(f"{RESULT}: missing, though the run ended ok (its scores are gone)")
    return got
