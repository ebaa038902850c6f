"""The run registry: a host-local SQLite index over the run dirs, `workspace.host_index_dir(root)/registry.sqlite`.

The run dirs are the truth; every column is derived from their files (spec.json, handle.json, proc.json,
events.jsonl, result.json, exit.json), so the index can be deleted, rebuilt (`reindex`) or healed at any
time and loses nothing: what a watcher decides about a run is written into the run dir first (a `lost`
event, the backend's `outcome` in handle.json). It is host-local because SQLite's locks and WAL do not
hold across hosts on NFS/Lustre/GPFS; each open, and each watcher refresh, ingests the run dirs it has not
seen (one scandir), so a run started on another host shows within one refresh, and a read-only workspace
lists fine. Each row keeps the stamp (inode, size, mtime) of the files it was described from, so an ended
run whose file is later written, damaged or repaired is described again at the next sync, found by stats
without rereading the others. An unreadable index file (random bytes, a torn image) is moved aside and rebuilt, with a note
in `notes`; an older schema (PRAGMA user_version) is rebuilt, a newer one refused in one line. The
`<root>/mihd.sqlite` of earlier releases is never opened (SQLite on the shared file system is what
failed): everything it held is in the run dirs. Writers use BEGIN IMMEDIATE with a busy timeout, so
launchers and dashboards on one host writing at once wait for each other and lose nothing.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from pathlib import Path

from ..errors import MihdError
from ..rundir import iter_run_dirs
from ..workspace import host_index_dir, resolve_root, runs_dir
from .eta import CELL_KEY
from .grid_index import SCHEMA as GRID_SCHEMA
from .grid_index import PartSweep, put as put_parts, reusing
from .run_files import ACTIVE, ACTIVE_SQL, RUN_COLUMNS, files_stamp, has_files
from .run_row import describe
from .sqlite_io import BUSY_TIMEOUT_S, inode as _inode, set_wal as _set_wal, write as _write

SCHEMA_VERSION = 7          # PRAGMA user_version; older indexes are rebuilt from the run dirs
INDEX_FILE = "registry.sqlite"
LEGACY_FILE = "mihd.sqlite"  # the registry of earlier releases, in the workspace root: never opened
MAX_IN = 500  # ids asked with IN (...); more are filtered here (SQLite caps a statement's variables)
_UNREADABLE = ("file is not a database", "malformed", "no such table", "no such column")  # heal by rebuilding

SCHEMA = """
CREATE TABLE runs (
  id TEXT PRIMARY KEY, name TEXT, label TEXT, signature TEXT, cells TEXT, n_cells INTEGER,
  backend TEXT, handle TEXT, pid INTEGER, create_time REAL, job_id TEXT, host TEXT, run_dir TEXT,
  created REAL, started REAL, ended REAL, status TEXT, exit_code INTEGER, exit_signal TEXT, error TEXT,
  note TEXT, expect REAL, overrun INTEGER NOT NULL DEFAULT 0, overrun_at REAL, kill_signal TEXT,
  killed_at REAL, killed_by TEXT, updated REAL, stamp TEXT);
CREATE INDEX runs_status ON runs(status);
CREATE INDEX runs_signature ON runs(signature, status);
CREATE TABLE cells (
  run_id TEXT NOT NULL, idx INTEGER NOT NULL, signature TEXT, sig TEXT, label TEXT,
  ari REAL, nmi REAL, random_init INTEGER NOT NULL DEFAULT 0, seconds REAL, entry TEXT,
  PRIMARY KEY (run_id, idx));
CREATE INDEX cells_signature ON cells(signature, run_id);
CREATE TABLE views (run_id TEXT PRIMARY KEY, text TEXT NOT NULL);
CREATE TRIGGER views_stale AFTER UPDATE ON runs BEGIN DELETE FROM views WHERE run_id = old.id; END;
CREATE TRIGGER views_gone AFTER DELETE ON runs BEGIN DELETE FROM views WHERE run_id = old.id; END;
""" + GRID_SCHEMA
_UPSERT = (
    f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))}) "
    "ON CONFLICT(id) DO UPDATE SET "
    + ", ".join(f"{c}=excluded.{c}" for c in RUN_COLUMNS if c not in ("id", "overrun", "overrun_at"))
    + ", overrun=MAX(runs.overrun, excluded.overrun), overrun_at=COALESCE(runs.overrun_at, excluded.overrun_at)"
)


def _listing_stamp(folder: Path) -> tuple | None:
    """The folder's mtime, which moves when an entry is added, removed or renamed; None when it may not have
    moved yet for an entry just made (the same clock tick: less than a second ago) or cannot be read."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns) if time.time() - st.st_mtime > 1.0 else None


def _healing(method):
    """Run `method`; when the index file turns out unreadable, move it aside, rebuild, and run it again.
    Any other SQLite failure becomes one line naming the file (never a traceback)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        for attempt in (1, 2):
            try:
                return method(self, *args, **kwargs)
            except sqlite3.DatabaseError as exc:
                if attempt == 2 or self.memory or not any(w in str(exc) for w in _UNREADABLE):
                    raise MihdError(f"{self.path}: {exc}") from None
                self._set_aside(exc)
    return wrapper


class Registry:
    """One connection to the host-local index; reconnects if the file was deleted or replaced."""

    def __init__(self, root: Path | str | None = None):
        self.root = resolve_root(root)
        self.path = host_index_dir(self.root) / INDEX_FILE
        self.notes: list[str] = []  # what was healed or rebuilt, one line each (the CLI prints them on stderr)
        self.memory = False         # no usable index folder: an in-memory index, rebuilt by each process
        self._conn: sqlite3.Connection | None = None
        self._inode: int | None = None
        self._sweep = ""            # the run id after which sync(check=N) takes up its stat sweep
        self._listed: tuple | None = None  # the runs folder's listing stamp when sync last listed it
        self._durations: tuple[tuple, dict] = ((), {})  # (the index's version then, durations())
        self._parts = PartSweep()   # sync(check=N)'s sweep over ended grids' parts

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection; a new one (first use, a file deleted or replaced) ingests unseen run dirs first."""
        return self._connection(sync=True)

    def _connection(self, sync: bool) -> sqlite3.Connection:
        if self._conn is None or (not self.memory and _inode(self.path) != self._inode):
            self.close()
            self._conn = self._open()
            if sync:
                self.sync(check=0)  # the run dirs it has not seen; changed ones are for the caller's sync
        return self._conn

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._inode = _inode(self.path)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            _set_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
        except (OSError, sqlite3.OperationalError) as exc:  # an unwritable index folder: this process only
            self.memory = True
            self.notes.append(f"registry: cannot use {self.path} ({exc}); indexing the run dirs in memory")
            conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.row_factory = sqlite3.Row
        self._migrate(conn)
        self._inode = None if self.memory else _inode(self.path)
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Create the schema, or rebuild an older one (it is an index: the run dirs refill it)."""
        if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        with _write(conn):
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have just done it
            if version > SCHEMA_VERSION:
                raise MihdError(f"{self.path}: registry schema {version} is newer than this mihd knows "
                                f"({SCHEMA_VERSION}); use the newer mihd, or delete the file (an index) to rebuild it")
            if version == SCHEMA_VERSION:
                return
            old = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in old:
                conn.execute(f'DROP TABLE "{table}"')
            for stmt in SCHEMA.split(";\n"):  # a trigger holds "; " inside
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        if old:
            self.notes.append(f"registry {self.path}: schema {version} -> {SCHEMA_VERSION}, rebuilt from the run dirs")
        elif (self.root / LEGACY_FILE).exists():
            self.notes.append(f"{self.root / LEGACY_FILE}: an earlier release's registry, no longer read (the index "
                              "is host-local now and rebuilt from the run dirs); it may be deleted")

    def _set_aside(self, exc: Exception) -> None:
        """Move the unreadable index (and its WAL) aside, unless another process already replaced it."""
        self.close()
        if _inode(self.path) == self._inode:
            aside = self.path.with_name(f"{self.path.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
                except FileNotFoundError:
                    pass
            self.notes.append(f"registry {self.path}: unreadable ({exc}); moved aside to {aside.name}, "
                              "rebuilt from the run dirs")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @_healing
    def sync(self, check: int | None = None) -> int:
        """Index the run dirs not seen yet, forget those that are gone, and describe again the ended runs whose
        files changed since they were indexed (their stamps: stats, no reads). Returns how many rows were
        (re)described. With `check` (a caller that syncs every few seconds) the work is bounded: the runs
        folder is listed only when its mtime moved, and at most `check` ended runs are stat'ed, taking up
        where the last call stopped, so every change is still seen within a turn. Active runs are the
        watcher's: it follows them through their backends."""
        base = runs_dir(self.root)
        listed = _listing_stamp(base)
        new, gone = [], set()
        if check is None or listed is None or listed != self._listed:
            try:
                names = {e.name for e in os.scandir(base) if e.is_dir() and e.name[0] != "."}
            except OSError:
                names = set()
            known = self.ids()
            new = [d for d in (base / n for n in sorted(names - known)) if has_files(d)]
            gone = known - names
            self._listed = listed
        if check is None:
            stamps = self.conn.execute(f"SELECT id, stamp FROM runs WHERE status NOT IN ({ACTIVE_SQL})").fetchall()
        elif check:
            stamps = self.conn.execute(f"SELECT id, stamp FROM runs WHERE status NOT IN ({ACTIVE_SQL}) AND id > ? "
                                       "ORDER BY id LIMIT ?", (self._sweep, check)).fetchall()
            self._sweep = stamps[-1][0] if len(stamps) == check else ""
        else:
            stamps = []
        folder = os.fspath(base)  # 10,000 runs stat'ed: no Path made per run
        changed = [i for i, stamp in stamps if i not in gone and files_stamp(f"{folder}/{i}") != stamp]
        if check:  # and ended grids whose parts' files changed (grid_index: a bounded number of parts per call)
            changed += [i for i in self._parts.changed(self.conn, base, check) if i not in gone and i not in changed]
        changed = [base / i for i in changed if has_files(base / i)]  # one removed since the listing goes at the next
        with reusing(self.conn):
            described = [describe(d) for d in new + changed]
        if described or gone:
            with _write(self.conn):
                for run_id in gone:
                    self.conn.execute("DELETE FROM runs WHERE id=?", (run_id,))
                    self.conn.execute("DELETE FROM cells WHERE run_id=?", (run_id,))
                for row, cell_rows in described:
                    self._put(row, cell_rows)
        return len(described)

    @_healing
    def ingest(self, run_dir: Path, gone: bool = False) -> dict:
        with reusing(self.conn):
            row, cell_rows = describe(run_dir, gone)
        with _write(self.conn):
            self._put(row, cell_rows)
        return row

    def _put(self, row: dict, cell_rows: list[dict]) -> None:
        self.conn.execute(_UPSERT, [row.get(c) for c in RUN_COLUMNS])
        put_parts(self.conn, row)
        self.conn.execute("DELETE FROM cells WHERE run_id=?", (row["id"],))
        self.conn.executemany(
            "INSERT INTO cells (run_id, idx, signature, sig, label, ari, nmi, random_init, seconds, entry) "
            "VALUES (:run_id, :idx, :signature, :sig, :label, :ari, :nmi, :random_init, :seconds, :entry)", cell_rows)

    @_healing
    def reindex(self) -> int:
        """Rebuild the whole index from the run dirs (in one transaction); returns how many run dirs."""
        dirs = list(iter_run_dirs(runs_dir(self.root)))
        described = [describe(d) for d in dirs if has_files(d)]
        with _write(self._connection(sync=False)):
            self.conn.execute("DELETE FROM runs")
            self.conn.execute("DELETE FROM cells")
            for row, cell_rows in described:
                self._put(row, cell_rows)
        return len(dirs)

    @_healing
    def ids(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT id FROM runs")}

    @_healing
    def rows(self, where: str = "", params: tuple = ()) -> list[dict]:
        sql = "SELECT * FROM runs" + (f" WHERE {where}" if where else "") + " ORDER BY id"
        return [dict(r) for r in self.conn.execute(sql, params)]

    def row(self, run_id: str) -> dict | None:
        rows = self.rows("id=?", (run_id,))
        return rows[0] if rows else None

    @_healing
    def update(self, run_id: str, **fields) -> None:
        sets = ", ".join(f"{k}=?" for k in fields)
        with _write(self.conn):
            self.conn.execute(f"UPDATE runs SET {sets}, updated=? WHERE id=?",
                              (*fields.values(), time.time(), run_id))

    @_healing
    def kept_views(self, where: str, params: tuple = ()) -> dict[str, str]:
        """The listing texts kept for the ended runs among the rows `where` selects, by id (keep_views)."""
        return dict(self.conn.execute(f"SELECT v.run_id, v.text FROM views v JOIN runs ON runs.id = v.run_id "
                                      f"WHERE ({where}) AND status NOT IN ({ACTIVE_SQL})", params).fetchall())

    @_healing
    def keep_views(self, made: list[tuple[str, str, str]]) -> None:
        """Keep ended runs' listing texts (table `views`), each (text, run id, the stamp of the row it was made
        from), until the row is described again, updated or removed (the table's triggers); one whose row moved on
        meanwhile is not kept. Apart from `runs`, whose rows stay small for the queries that scan them."""
        if made:
            with _write(self.conn):
                self.conn.executemany("INSERT OR REPLACE INTO views (run_id, text) SELECT id, ? FROM runs "
                                      "WHERE id=? AND stamp IS ?", made)

    @_healing
    def claim_overrun(self, run_id: str, at: float) -> bool:
        """Set the overrun flag; True only for the one caller that set it (so the event is written once)."""
        with _write(self.conn):
            cur = self.conn.execute("UPDATE runs SET overrun=1, overrun_at=? WHERE id=? AND overrun=0",
                                    (at, run_id))
        return cur.rowcount == 1

    @_healing
    def cells(self, run_ids: list[str] | None = None) -> dict[str, list[dict]]:
        """The cell rows of these runs (of every run when None), by run id in order; without `entry` (entries())."""
        sql = "SELECT run_id, idx, signature, sig, label, ari, nmi, random_init, seconds FROM cells"
        params: tuple = ()
        if run_ids is not None and len(run_ids) <= MAX_IN:
            if not run_ids:
                return {}
            sql += f" WHERE run_id IN ({','.join('?' * len(run_ids))})"
            params = tuple(run_ids)
        wanted = set(run_ids) if run_ids is not None and len(run_ids) > MAX_IN else None
        out: dict[str, list[dict]] = {}
        for r in self.conn.execute(sql + " ORDER BY run_id, idx", params):
            if wanted is None or r["run_id"] in wanted:
                out.setdefault(r["run_id"], []).append(dict(r))
        return out

    @_healing
    def entries(self) -> list[tuple[str, float, str]]:
        """Every indexed result.json cell, by run: (run id, when its run ended (else was created), the cell as
        `run_row._indexed_entry` keeps it, JSON)."""
        return self.conn.execute(
            "SELECT c.run_id, COALESCE(r.ended, r.created, 0), c.entry FROM cells c JOIN runs r ON r.id = c.run_id "
            "ORDER BY c.run_id, c.idx").fetchall()

    @_healing
    def entry_fields(self, paths: tuple[str, ...], numbers: tuple[str, ...] = ()) -> list[tuple]:
        """Fields of every indexed result.json cell (entries' cells), taken out by SQLite rather than parsed in
        Python (50,000 cells: a second): (run id, when, one value per JSON path such as `seconds.total`); true/false
        read 1/0, an object or a list its JSON text; a path in `numbers` reads a number or None, never true/false."""
        cols = ", ".join(f"IIF(json_type(c.entry, '$.{p}') IN ('integer', 'real'), json_extract(c.entry, '$.{p}'), "
                         f"NULL)" if p in numbers else f"json_extract(c.entry, '$.{p}')" for p in paths)
        return self.conn.execute(
            f"SELECT c.run_id, COALESCE(r.ended, r.created, 0), {cols} FROM cells c JOIN runs r ON r.id = c.run_id "
            "WHERE c.entry IS NOT NULL ORDER BY c.run_id, c.idx").fetchall()

    @_healing
    def durations(self) -> dict[str, list[float]]:
        """The history behind expected times: running time of every finished (done) run by run signature,
        and under `eta.CELL_KEY + signature` the seconds of each cell inside a done multi-cell run (so a
        grid whose cells only ever ran inside other grids still gets an expected time). Made again only
        after the index changed (a write by this connection or another)."""
        version = (self.conn.execute("PRAGMA data_version").fetchone()[0], self.conn.total_changes)
        if version == self._durations[0]:
            return self._durations[1]
        out: dict[str, list[float]] = {}
        for sig, secs in self.conn.execute(
                "SELECT signature, ended - started FROM runs WHERE status='done' "
                "AND ended IS NOT NULL AND started IS NOT NULL"):
            out.setdefault(sig, []).append(secs)
        for sig, secs in self.conn.execute(
                "SELECT c.signature, c.seconds FROM cells c JOIN runs r ON r.id = c.run_id "
                "WHERE r.status='done' AND r.n_cells > 1 AND c.seconds IS NOT NULL"):
            out.setdefault(CELL_KEY + sig, []).append(secs)
        self._durations = (version, out)
        return out


def ingest(root: Path | str | None, run_dir: Path | str) -> dict:
    """Index one run dir (e.g. after a direct `mihd run --run-dir D`); safe to call again."""
    reg = Registry(root)
    try:
        return reg.ingest(Path(run_dir))
    finally:
        reg.close()
