"""The cache layout before files-on-shared-storage: one diskcache store (SQLite + blob files) directly in
`<root>/embeddings`. A writer moves every entry into the file layout once, then removes the old store.

Keys of the old store: `meta|slice|modality|name|variant` (JSON text with `data_key`, `crc32`, `shape`,
`spots_hash`), `data|...` (raw float32 bytes), `spots|<hash>` (JSON list of barcodes).
"""

from __future__ import annotations

import json
import os
import re
import sys
import zlib

from .cache_files import CacheKey
from .cache_flight import LOCKS
from .errors import MihdError
from .workspace import is_writable

_STORE_FILES = ("cache.db", "cache.db-wal", "cache.db-shm")
_BLOB_DIR = re.compile(r"^[0-9a-f]{2}$")
_LAYOUT_FIELDS = ("slice", "modality", "name", "variant", "shape", "dtype", "nbytes", "crc32", "data_key", "spots_hash")


def migrate(cache) -> None:
    """Rewrite each old entry of `cache` (an EmbeddingCache being opened) in the file layout (an entry already
    there is newer and kept), delete it from the old store, and remove the store when it is empty. One process
    at a time (a lock file); on a read-only workspace nothing moves and the old entries stay where they are
    until a writer opens it."""
    if not is_writable(cache.root):
        print(f"mihd: {cache.dir}: holds the old cache layout, which a read-only workspace cannot convert; "
              "its entries show once someone with write access runs any `mihd cache` command", file=sys.stderr)
        return
    claim = cache.claim_path(cache.dir / LOCKS / "legacy-migration.lock", "the old cache layout")
    if claim is None:
        return  # another process is converting it; its entries appear as they move
    import diskcache

    moved, dropped = 0, []
    try:
        if not (cache.dir / "cache.db").exists():
            return
        store = diskcache.Cache(str(cache.dir), size_limit=2**62, eviction_policy="none", cull_limit=0, timeout=60)
        try:
            for k in list(store.iterkeys()):
                if not (isinstance(k, str) and k.startswith("meta|")):
                    continue
                try:
                    meta = json.loads(store.get(k))
                    key = CacheKey(meta["slice"], meta["modality"], meta["name"], meta["variant"])
                    new = cache.meta(key) is None
                    array, spots = _read(store, meta) if new else (None, None)
                except (ValueError, TypeError, KeyError, MihdError) as exc:
                    dropped.append(f"{k[len('meta|'):]} ({exc})")
                else:
                    if new:  # a full disk stops here, the rest of the old store intact
                        cache.put(key, array, spots, **{f: v for f, v in meta.items() if f not in _LAYOUT_FIELDS})
                        moved += 1
                store.delete(k)
            store.clear()
        finally:
            store.close()
        for name in _STORE_FILES:
            (cache.dir / name).unlink(missing_ok=True)
        _remove_empty_blob_dirs(cache.dir)
    finally:
        claim.release()
    if moved or dropped:
        print(f"mihd: {cache.dir}: moved {moved} entries from the old single-store layout to entries/", file=sys.stderr)
    for what in dropped:
        print(f"mihd: old cache entry {what}: unreadable, not moved (recomputed when next needed)", file=sys.stderr)


def _read(store, meta: dict):
    import numpy as np

    shape = tuple(meta["shape"])
    nbytes = int(np.prod(shape)) * 4
    value = store.get(meta["data_key"], read=True)
    if value is None:
        raise ValueError("its array is missing")
    if isinstance(value, bytes):
        data = value
    else:
        with value:
            data = value.read()
    if len(data) != nbytes:
        raise ValueError("its array has the wrong size")
    if meta.get("crc32") is not None and zlib.crc32(data) != meta["crc32"]:
        raise ValueError("its array checksum does not match")
    spots = store.get(f"spots|{meta['spots_hash']}")
    if spots is None:
        raise ValueError("its spot list is missing")
    spots = json.loads(spots)
    if len(shape) != 2 or len(spots) != shape[0]:
        raise ValueError(f"its spot list does not match its shape {shape}")
    return np.frombuffer(data, dtype=np.float32).reshape(shape), spots


def _remove_empty_blob_dirs(folder) -> None:
    """diskcache's two-level blob folders (`ab/cd/`), once `clear()` emptied them."""
    for top in os.scandir(folder):
        if not (top.is_dir() and _BLOB_DIR.match(top.name)):
            continue
        for sub in os.scandir(top.path):
            if sub.is_dir() and _BLOB_DIR.match(sub.name):
                try:
                    os.rmdir(sub.path)
                except OSError:
                    pass
        try:
            os.rmdir(top.path)
        except OSError:
            pass
