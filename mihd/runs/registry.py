"""The run registry: an SQLite index (WAL mode) over the run dirs at `<root>/mihd.sqlite`.

The run dirs are the truth; every column here is derived from their files (spec.json, handle.json,
proc.json, events.jsonl, result.json, exit.json), so a deleted registry is rebuilt by `reindex` and
`ingest` of the same files is idempotent. The one fact not in the files is `lost` (process gone, no
exit.json), which the watcher (status.py) decides and ingest keeps. Writers use BEGIN IMMEDIATE with
a busy timeout, so several launchers and dashboards writing at once wait for each other and lose nothing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from ..jsonio import read_json
from ..rundir import iter_run_dirs, read_events, read_exit, read_result, read_spec
from ..workspace import registry_path, resolve_root, runs_dir
from .cells import cell_label, run_signature, sig_string, signature
from .eta import CELL_KEY
from .supervise import PROC

HANDLE = "handle.json"  # the backend's handle, written by launch
SLURM_FAILURES = frozenset({"TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "PREEMPTED"})
TERMINAL = ("done", "failed", "killed")
ACTIVE = ("queued", "running")
BUSY_TIMEOUT_S = 30.0

RUN_COLUMNS = (
    "id", "name", "label", "signature", "cells", "n_cells", "backend", "handle", "pid", "create_time",
    "job_id", "host", "run_dir", "created", "started", "ended", "status", "exit_code", "exit_signal",
    "error", "expect", "overrun", "overrun_at", "kill_signal", "killed_at", "killed_by", "updated",
)
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, name TEXT, label TEXT, signature TEXT, cells TEXT, n_cells INTEGER,
  backend TEXT, handle TEXT, pid INTEGER, create_time REAL, job_id TEXT, host TEXT, run_dir TEXT,
  created REAL, started REAL, ended REAL, status TEXT, exit_code INTEGER, exit_signal TEXT, error TEXT,
  expect REAL, overrun INTEGER NOT NULL DEFAULT 0, overrun_at REAL, kill_signal TEXT, killed_at REAL,
  killed_by TEXT, updated REAL);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE INDEX IF NOT EXISTS runs_signature ON runs(signature, status);
CREATE TABLE IF NOT EXISTS cells (
  run_id TEXT NOT NULL, idx INTEGER NOT NULL, signature TEXT, sig TEXT, label TEXT,
  ari REAL, nmi REAL, seconds REAL, PRIMARY KEY (run_id, idx));
"""
_UPSERT = (
    f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))}) "
    "ON CONFLICT(id) DO UPDATE SET "
    + ", ".join(f"{c}=excluded.{c}" for c in RUN_COLUMNS if c not in ("id", "status", "overrun", "overrun_at"))
    + ", status=CASE WHEN runs.status='lost' AND excluded.status IN ('queued','running') THEN 'lost' "
      "ELSE excluded.status END"
    + ", overrun=MAX(runs.overrun, excluded.overrun), overrun_at=COALESCE(runs.overrun_at, excluded.overrun_at)"
)


def describe(run_dir: Path) -> tuple[dict, list[dict]]:
    """The registry row and cell rows that the files of one run dir say (no process checks)."""
    run_dir = Path(run_dir)
    spec = read_spec(run_dir) or {}
    handle = read_json(run_dir / HANDLE) or {}
    ident = read_json(run_dir / PROC) or {}
    result = read_result(run_dir)
    exit_ = read_exit(run_dir)
    backend = spec.get("backend") or handle.get("backend") or "direct"
    events, _ = read_events(run_dir)
    start_ev = next((e for e in events if e.get("kind") == "start"), None)
    kill_ev = next((e for e in reversed(events) if e.get("kind") == "kill"), None)
    overrun_ev = next((e for e in events if e.get("kind") == "overrun"), None)
    end_ev = next((e for e in reversed(events) if e.get("kind") == "end"), None)

    result_cells = (result or {}).get("cells") or []
    cells = spec.get("cells") or [c.get("signature") or c for c in result_cells]
    if exit_ is not None:
        failed_result = (result or {}).get("status") == "failed"
        if handle.get("slurm_state") in SLURM_FAILURES and not kill_ev:
            status = "failed"  # Slurm ended it (time limit, memory, node): not the researcher's kill
        elif kill_ev or exit_.get("forwarded"):
            status = "killed"
        elif exit_.get("code") == 0 and not failed_result:
            status = "done"
        else:
            status = "failed"
    elif spec.get("direct") or (not spec and not ident):
        status = {"ok": "done", "failed": "failed"}.get((result or end_ev or {}).get("status"), "running")
    else:
        status = "running" if ident else "queued"
    started = ident.get("started") or (start_ev or {}).get("t")
    ended = (exit_ or {}).get("ended") or (end_ev or {}).get("t") if status in TERMINAL else None
    created = spec.get("created") or started or _mtime(run_dir)
    error = (result or {}).get("error") or (end_ev or {}).get("error") or (exit_ or {}).get("error")
    if handle.get("slurm_state") in SLURM_FAILURES:
        error = f"Slurm {handle['slurm_state']}" + (f" ({handle['slurm_reason']})" if handle.get("slurm_reason") else "") \
            + (f": {error}" if error else "")
    row = {
        "id": spec.get("id") or run_dir.name, "name": spec.get("name"),
        "label": cell_label(cells, spec.get("name")), "signature": run_signature(cells, backend),
        "cells": json.dumps(cells), "n_cells": len(cells), "backend": backend,
        "handle": json.dumps(handle) if handle else None,
        "pid": ident.get("pid") or handle.get("pid"), "create_time": ident.get("create_time"),
        "job_id": handle.get("job_id"), "host": ident.get("host") or handle.get("host"),
        "run_dir": str(run_dir.resolve()), "created": created, "started": started, "ended": ended,
        "status": status, "exit_code": (exit_ or {}).get("code"), "exit_signal": (exit_ or {}).get("signal"),
        "error": error, "expect": spec.get("expect"),
        "overrun": 1 if overrun_ev else 0, "overrun_at": (overrun_ev or {}).get("t"),
        "kill_signal": (kill_ev or {}).get("signal"), "killed_at": (kill_ev or {}).get("t"),
        "killed_by": (kill_ev or {}).get("by"), "updated": time.time(),
    }
    cell_rows = []
    for i, cell in enumerate(result_cells):
        sig = signature(cell, backend)
        secs = (cell.get("seconds") or {}).get("total")
        cell_rows.append({"run_id": row["id"], "idx": i, "signature": sig_string(sig), "sig": json.dumps(sig),
                          "label": cell_label([cell]), "ari": cell.get("ari"), "nmi": cell.get("nmi"),
                          "seconds": secs})
    return row, cell_rows


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


class Registry:
    """One connection to `<root>/mihd.sqlite`; reconnects if the file was deleted or replaced."""

    def __init__(self, root: Path | str | None = None):
        self.root = resolve_root(root)
        self.path = registry_path(self.root)
        self._conn: sqlite3.Connection | None = None
        self._inode: int | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        inode = _inode(self.path)
        if self._conn is None or inode != self._inode:
            self.close()
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            _set_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            with _write(conn):
                for stmt in SCHEMA.split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
            self._conn, self._inode = conn, _inode(self.path)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def ingest(self, run_dir: Path) -> dict:
        row, cell_rows = describe(run_dir)
        self.write(row, cell_rows)
        return row

    def write(self, row: dict, cell_rows: list[dict]) -> None:
        conn = self.conn
        with _write(conn):
            conn.execute(_UPSERT, [row.get(c) for c in RUN_COLUMNS])
            conn.execute("DELETE FROM cells WHERE run_id=?", (row["id"],))
            conn.executemany(
                "INSERT INTO cells (run_id, idx, signature, sig, label, ari, nmi, seconds) "
                "VALUES (:run_id, :idx, :signature, :sig, :label, :ari, :nmi, :seconds)", cell_rows)

    def reindex(self) -> int:
        """Ingest every run dir (rebuilds a deleted or stale registry); returns how many."""
        dirs = list(iter_run_dirs(runs_dir(self.root)))
        for d in dirs:
            if (d / "spec.json").exists() or (d / "events.jsonl").exists() or (d / "result.json").exists():
                self.ingest(d)
        return len(dirs)

    def ids(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT id FROM runs")}

    def rows(self, where: str = "", params: tuple = ()) -> list[dict]:
        sql = "SELECT * FROM runs" + (f" WHERE {where}" if where else "") + " ORDER BY id"
        return [dict(r) for r in self.conn.execute(sql, params)]

    def row(self, run_id: str) -> dict | None:
        rows = self.rows("id=?", (run_id,))
        return rows[0] if rows else None

    def update(self, run_id: str, **fields) -> None:
        sets = ", ".join(f"{k}=?" for k in fields)
        with _write(self.conn):
            self.conn.execute(f"UPDATE runs SET {sets}, updated=? WHERE id=?",
                              (*fields.values(), time.time(), run_id))

    def claim_overrun(self, run_id: str, at: float) -> bool:
        """Set the overrun flag; True only for the one caller that set it (so the event is written once)."""
        with _write(self.conn):
            cur = self.conn.execute("UPDATE runs SET overrun=1, overrun_at=? WHERE id=? AND overrun=0",
                                    (at, run_id))
        return cur.rowcount == 1

    def cells(self, run_ids: list[str] | None = None) -> dict[str, list[dict]]:
        sql = "SELECT * FROM cells"
        params: tuple = ()
        if run_ids is not None:
            if not run_ids:
                return {}
            sql += f" WHERE run_id IN ({','.join('?' * len(run_ids))})"
            params = tuple(run_ids)
        out: dict[str, list[dict]] = {}
        for r in self.conn.execute(sql + " ORDER BY run_id, idx", params):
            out.setdefault(r["run_id"], []).append(dict(r))
        return out

    def durations(self) -> dict[str, list[float]]:
        """The history behind expected times: running time of every finished (done) run by run signature,
        and under `eta.CELL_KEY + signature` the seconds of each cell inside a done multi-cell run (so a
        grid whose cells only ever ran inside other grids still gets an expected time)."""
        out: dict[str, list[float]] = {}
        for sig, secs in self.conn.execute(
                "SELECT signature, ended - started FROM runs WHERE status='done' "
                "AND ended IS NOT NULL AND started IS NOT NULL"):
            out.setdefault(sig, []).append(secs)
        for sig, secs in self.conn.execute(
                "SELECT c.signature, c.seconds FROM cells c JOIN runs r ON r.id = c.run_id "
                "WHERE r.status='done' AND r.n_cells > 1 AND c.seconds IS NOT NULL"):
            out.setdefault(CELL_KEY + sig, []).append(secs)
        return out


class _write:
    """BEGIN IMMEDIATE ... COMMIT: take the write lock up front (waiting up to the busy timeout)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *_):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _set_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL. SQLite answers "database is locked" at once, without the busy timeout, while another
    process is creating the same file (two launchers on a fresh workspace): retry until the timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def ingest(root: Path | str | None, run_dir: Path | str) -> dict:
    """Index one run dir (e.g. after a direct `mihd run --run-dir D`); safe to call again."""
    reg = Registry(root)
    try:
        return reg.ingest(Path(run_dir))
    finally:
        reg.close()
