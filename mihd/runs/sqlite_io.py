"""SQLite plumbing of the host-local index (registry.py, grid_index.py): write transactions, WAL, the file's inode."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

BUSY_TIMEOUT_S = 30.0


class write:
    """BEGIN IMMEDIATE ... COMMIT: take the write lock up front (waiting up to the busy timeout)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *_):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def set_wal(conn: sqlite3.Connection) -> None:
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


def inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None
