"""A fanned-out grid's rollup in the host-local index, so that a listing rereads no part that did not change.

Describing a grid reads each of its parts (cells and extractions: spec, events, a result.json of the spots),
which costs a study of 4 cells 30 ms and a workspace of 3,000 of them a minute. So the index keeps, per
grid, what each part's files said with their stamp (`parts`), and for a grid that ended its cells as
`mihd runs ls` and the dashboard show them (`rollup`, a GridProgress, kept for the grid row's stamp):
- a part whose stamp did not move is answered from the index while the grid is described again (a
  running study reads only the cells that are running or changed), inside `reusing(conn)`;
- an ended grid's cells are read back from the index (`Rollups`), made from its files once after it
  changed; the grid's own stamp covers its `cells/` and `extract/` folders (a part added or removed);
- a part's files written later (damaged, repaired) are found by `PartSweep`, a bounded number of part
  stamps per call taken up where the last stopped (the dashboard's sweep), and by `parts_changed` for
  one grid (`mihd runs show GRID`).
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from .fanout import is_fanned
from .grid_view import CellView, GridProgress
from .run_files import ACTIVE, ACTIVE_SQL, STAMPED, files_stamp
from .sqlite_io import write

SCHEMA = """
CREATE TABLE grids (
  run_id TEXT PRIMARY KEY, stamps TEXT NOT NULL, parts TEXT NOT NULL, rollup_stamp TEXT, rollup TEXT);
CREATE TRIGGER grids_gone AFTER DELETE ON runs BEGIN DELETE FROM grids WHERE run_id = old.id; END;
"""
PARTS = "parts"  # the key of a grid's described row that carries its parts to `put`
MAX_IN = 500
_local = threading.local()


def fanned(row: dict) -> bool:
    """Whether the row is a fanned-out grid's, from its stamp (fanout.json's part of it): no stat. An active
    row (its fanout.json may be newer than its stamp) or a row with no file stamp asks its run dir."""
    if row["status"] in ACTIVE:
        return is_fanned(row["run_dir"])
    return (row.get("stamp") or "").count(" ") >= len(STAMPED)  # a grid's stamp adds its parts' folders


def described(parts: list[tuple[str, tuple[dict, list[dict]]]]) -> dict:
    """What `aggregate` hands to the registry row: each part's stamp, row and cell rows by part name."""
    return {name: [row.get("stamp"), row, cells] for name, (row, cells) in parts}


def put(conn, row: dict) -> None:
    """Keep a described grid's parts (its row's PARTS, taken off the row) for the next description; a row
    without them (not a grid, or a grid unreadable as a whole) forgets any."""
    parts = row.pop(PARTS, None)
    if parts is None:
        conn.execute("DELETE FROM grids WHERE run_id=?", (row["id"],))
        return
    stamps = {name: p[0] for name, p in parts.items()}
    conn.execute("INSERT OR REPLACE INTO grids (run_id, stamps, parts) VALUES (?, ?, ?)",
                 (row["id"], json.dumps(stamps), json.dumps(parts)))


@contextmanager
def reusing(conn):
    """Within it (on this thread), `known` answers the parts of grids this index holds."""
    prev = getattr(_local, "state", None)
    _local.state = (conn, {})
    try:
        yield
    finally:
        _local.state = prev


def known(part_dir: Path) -> tuple[dict, list[dict]] | None:
    """A part's row and cell rows as the index holds them, when its files' stamp is the one they were read
    with (stats only); None outside `reusing`, or when it changed."""
    state = getattr(_local, "state", None)
    if state is None:
        return None
    conn, grids = state
    part_dir = Path(part_dir)
    grid_id = part_dir.parent.parent.name
    if grid_id not in grids:
        got = conn.execute("SELECT parts FROM grids WHERE run_id=?", (grid_id,)).fetchone()
        grids[grid_id] = json.loads(got[0]) if got else {}
    entry = grids[grid_id].get(f"{part_dir.parent.name}/{part_dir.name}")
    if entry is None or entry[0] != files_stamp(part_dir):
        return None
    return entry[1], entry[2]


def parts_changed(conn, run_id: str, grid_dir: Path) -> bool:
    """Whether a file of one of the grid's parts changed since the grid was described."""
    got = conn.execute("SELECT stamps FROM grids WHERE run_id=?", (run_id,)).fetchone()
    return got is not None and _changed(json.loads(got[0]), Path(grid_dir))


def _changed(stamps: dict, grid_dir: Path) -> bool:
    return any(files_stamp(grid_dir / name) != stamp for name, stamp in stamps.items())


class PartSweep:
    """The ended grids whose parts' files changed, found `budget` part stamps per call, going round."""

    def __init__(self):
        self._after = ""

    def changed(self, conn, base: Path, budget: int) -> list[str]:
        out, spent, last = [], 0, self._after
        for run_id, stamps in conn.execute(
                f"SELECT g.run_id, g.stamps FROM grids g JOIN runs r ON r.id = g.run_id WHERE g.run_id > ? "
                f"AND r.status NOT IN ({ACTIVE_SQL}) ORDER BY g.run_id", (self._after,)):
            stamps = json.loads(stamps)
            if spent and spent + len(stamps) > budget:
                break
            spent, last = spent + len(stamps), run_id
            if _changed(stamps, base / run_id):
                out.append(run_id)
        else:
            last = ""  # the turn is complete: start again from the first
        self._after = last
        return out


class Rollups:
    """Ended grids' GridProgress, read back from the index for the row's stamp, else made (`compute`, with the
    parts the index holds) and kept by `save`."""

    def __init__(self, conn, rows: list[dict]):
        self.conn, self._made = conn, []
        ids = [r["id"] for r in rows]
        self._stored: dict[str, tuple[str, str]] = {}
        for i in range(0, len(ids), MAX_IN):
            chunk = ids[i:i + MAX_IN]
            self._stored.update((r[0], (r[1], r[2])) for r in conn.execute(
                f"SELECT run_id, rollup_stamp, rollup FROM grids WHERE run_id IN ({','.join('?' * len(chunk))}) "
                "AND rollup IS NOT NULL", chunk))

    def get(self, row: dict, compute):
        stamp, text = self._stored.pop(row["id"], (None, None))
        if text is not None and stamp == row["stamp"]:
            data = json.loads(text)
            try:
                return GridProgress(**{**data, "cells": [CellView(**c) for c in data["cells"]]})
            except TypeError:  # kept by another version of mihd: made again
                pass
        with reusing(self.conn):
            progress = compute()
        self._made.append((row["stamp"], json.dumps(asdict(progress)), row["id"]))
        return progress

    def save(self) -> None:
        if self._made:
            with write(self.conn):
                self.conn.executemany("UPDATE grids SET rollup_stamp=?, rollup=? WHERE run_id=?", self._made)
            self._made = []
