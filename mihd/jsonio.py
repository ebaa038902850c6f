"""Atomic file writes and tolerant JSON reads, shared by the cache, the run dirs and the slice registry."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path: Path, chunks: Iterable[bytes | memoryview], sync: bool = True) -> None:
    """Write to a temporary name beside `path`, fsync, then rename: no reader, on this host or another
    one sharing the folder (NFS, Lustre), ever sees half a file; a failed write leaves nothing behind.
    `sync=False` for a file that is only a copy of others (a crash may leave it torn: its reader checks it)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a shared workspace needs the usual mode
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    write_atomic(path, [json.dumps(data, indent=1, sort_keys=True, default=str).encode()])


def read_json(path: Path, default: Any = None) -> Any:
    """The parsed file, or `default` when it is missing or not valid JSON (e.g. being written)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default
