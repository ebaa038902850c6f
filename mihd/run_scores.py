"""scores.json: a run's result.json without its per-spot data, for the run index.

A result.json holds each cell's spot labels and the slice's spot coordinates (about 170 KB for 3,000 spots),
of which the index (run_row.describe) needs only the scores, timings and options. Rebuilding the index of a
lab's workspace (50,000 run dirs and grid cells) read and parsed 8 GB for that. So the writer puts a small
copy beside it, stamped with the result.json it was made from (inode, size, mtime), and the reader takes it
only while that stamp still holds: a result.json written again, damaged or deleted since is read as itself.
Runs made before this file existed keep working: their result.json is read as before.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .jsonio import write_json_atomic

SCORES = "scores.json"
OF = "of"             # the stamp of the result.json a scores.json was made from
PER_SPOT = ("spots",)  # a result's fields that grow with the slice (a cell's own: its "labels")


def _stamp(path: Path | str) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def scores_of(result: dict) -> dict:
    """The result without its per-spot data; a cell that had labels says so (`labelled`)."""
    cells = [{**{k: v for k, v in c.items() if k != "labels"}, "labelled": "labels" in c} if isinstance(c, dict)
             else c for c in result.get("cells") or []]
    return {**{k: v for k, v in result.items() if k not in PER_SPOT}, "cells": cells}


def write_scores(result_path: Path, result: dict) -> None:
    """scores.json beside `result_path`, just written. Best effort: without it the index reads result.json."""
    stamp = _stamp(result_path)
    if stamp is None:
        return
    try:
        write_json_atomic(Path(result_path).parent / SCORES, {**scores_of(result), OF: stamp})
    except OSError:
        pass  # a full disk or a read-only dir: the scores are still in result.json


def current_scores(run_dir: Path, result_name: str) -> dict | None:
    """scores.json when it was made from the result.json there now; None otherwise (absent, stale, garbled)."""
    base = os.fspath(run_dir)
    stamp = _stamp(f"{base}/{result_name}")
    if stamp is None:
        return None
    try:
        with open(f"{base}/{SCORES}", "rb") as fh:
            data = json.loads(fh.read())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.pop(OF, None) != stamp:
        return None
    return data
