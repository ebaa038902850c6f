"""The embedding cache: files on the (possibly shared) workspace are the truth; diskcache is a host-local index.

Layout under `<root>/embeddings/` (see docs/ARCHITECTURE.md, "The embedding cache", for why):
  entries/<slice>/<modality>~<name>~<variant>.json          the entry: its metadata (shape, encoder, config,
                                                            fingerprint, blob, xxh3_64 of the array, ...)
  entries/<slice>/<modality>~<name>~<variant>~<token>.npy   the raw float32 array (a plain .npy file)
  spots/<blake2b>.json                                      spot barcodes, shared by entries on one spot set
  locks/<slice>~<modality>~<name>~<variant>.lock            single flight: who computes a missing entry

Every file is written under a temporary name in its folder, fsynced, then renamed into place (atomic on a
local disk, NFS and Lustre within a folder); nothing is ever rewritten in place. An entry exists once its
.json is renamed in, after its blob: a killed writer leaves an unreferenced file, never a readable partial
entry. A replace writes a new blob and then switches the .json; the old blob is left for `gc` after a grace
(its mtime is refreshed at the switch), so a reader that read the old .json still finds the old blob, and a
reader always gets the old entry or the new one. Every hit checks the array's xxh3_64 in the same pass as
the read, so bytes that differ from what was written are reported as `corrupt`, never served.

This module holds the entry itself (lookup, put, remove); its other jobs live beside it: cache_files (keys,
checked reading of each file, hashing), cache_index (listing through the host-local index), cache_flight
(single-flight locks), cache_upkeep (verify, gc).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .cache_files import (CHUNK, DENIED, GENE_VARIANT, GONE, SEP, CacheKey, CacheUnreadable, check_header,
                          is_meta, is_valid_name, key_of_row, meta_matches, npy_header, parse_meta, parse_spots, read_file,
                          spots_hash as spots_hash_of, subdirs, token, touch, unreadable, validate_name,
                          write_error)
from .cache_flight import LOCK_TIMEOUT, LOCKS, Claim, SingleFlight, lock_key, lock_owner
from .cache_index import Listing
from .cache_upkeep import ORPHAN_GRACE, Upkeep
from .errors import CacheCorrupt, MihdError
from .jsonio import write_atomic, write_json_atomic
from .owners import other_owner
from .workspace import embeddings_dir, is_writable, read_cache_from, warn_once

if TYPE_CHECKING:
    import numpy as np

    from .embedding import Embedding

# names other modules import from here
__all__ = ["GENE_VARIANT", "LOCKS", "LOCK_TIMEOUT", "ORPHAN_GRACE", "CacheKey", "CacheUnreadable", "Claim",
           "EmbeddingCache", "Lookup", "cache_from_config", "entry_flags", "inventory_stamp", "is_valid_name", "key_of_row",
           "lock_key", "lock_owner", "read_entries", "unreadable_advice", "validate_name"]


@dataclass
class Lookup:
    status: str  # hit | miss | stale | corrupt | unreadable
    embedding: "Embedding | None" = None
    reason: str = ""


def unreadable_advice(reason: str) -> str:
    """The one line for an entry this user may not read: whose it is and the two ways out."""
    return f"{reason}; ask its owner to make it group-readable (chmod g+r), or store your own with --cache-name NAME"


def _problem(exc: CacheCorrupt) -> Lookup:
    return Lookup("unreadable" if isinstance(exc, CacheUnreadable) else "corrupt", reason=str(exc))


class EmbeddingCache(Listing, SingleFlight, Upkeep):
    """One workspace's cache, plus read-only caches to look in when this one misses (`--cache-from`)."""

    def __init__(self, root: Path, sources: list[Path] | None = None, *, as_source: bool = False):
        self.root = Path(root)
        self.dir = embeddings_dir(self.root)
        self._index = None
        self._spots: dict[str, list[str]] = {}
        self.sources = [] if as_source else [
            EmbeddingCache(s, as_source=True) for s in [*(sources or []), *cache_from_config(self.root)]]
        if not as_source:
            self.convert_old_layout()

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    # -- paths ------------------------------------------------------------------------------
    def slice_dir(self, slice_id: str) -> Path:
        return self.dir / "entries" / slice_id

    def meta_path(self, key: CacheKey) -> Path:
        return self.slice_dir(key.slice) / f"{key.stem}.json"

    def _spots_path(self, spots_hash: str) -> Path:
        return self.dir / "spots" / f"{spots_hash}.json"

    # -- metadata ---------------------------------------------------------------------------
    def meta(self, key: CacheKey) -> dict | None:
        """The entry's metadata, None when there is no entry; CacheUnreadable (another user's file) or
        CacheCorrupt (damaged, or naming another entry) when it cannot be used."""
        path = self.meta_path(key)
        try:
            raw = read_file(path, is_meta)
        except OSError as exc:
            raise unreadable(path, exc, f"cache entry {key}: metadata") from None
        if raw is None:
            return None
        meta = parse_meta(raw)
        if meta is None:
            raise CacheCorrupt(f"cache entry {key}: unreadable metadata")
        if not meta_matches(meta, key):
            raise CacheCorrupt(f"cache entry {key}: its metadata names another entry")
        return meta

    # -- arrays -------------------------------------------------------------------------------
    def lookup(self, key: CacheKey, fingerprint: str | None = None) -> Lookup:
        """Hit, miss, stale (the slice changed since), corrupt (reported, never returned as data) or
        unreadable (another user's file this user may not read; never recomputed over). On anything but a hit, the read-only `sources` are asked in turn."""
        found = self._lookup_own(key, fingerprint)
        if found.status == "hit":
            return found
        for source in self.sources:
            theirs = source._lookup_own(key, fingerprint)
            if theirs.status == "hit":
                theirs.embedding.meta["source"] = str(source.root)
                return theirs
        return found

    def _lookup_own(self, key: CacheKey, fingerprint: str | None) -> Lookup:
        seen = None
        for _ in range(4):  # a replace or rm between reading the .json and opening its blob: read again
            try:
                meta = self.meta(key)
            except CacheCorrupt as exc:
                return _problem(exc)
            if meta is None:
                return Lookup("miss")
            if fingerprint is not None and meta.get("fingerprint") != fingerprint:
                return Lookup("stale", reason=f"cache entry {key}: the slice changed since it was computed")
            if meta["blob"] == seen:
                break
            seen = meta["blob"]
            try:
                return Lookup("hit", self._load(key, meta))
            except FileNotFoundError:
                continue
            except CacheCorrupt as exc:
                return _problem(exc)
        return Lookup("corrupt", reason=f"cache entry {key}: its array is missing")

    def _load(self, key: CacheKey, meta: dict) -> "Embedding":
        """The entry's array, checked against its xxh3_64 in the same pass as the read."""
        import numpy as np
        import xxhash

        from .embedding import Embedding

        shape, blob = tuple(meta["shape"]), meta["blob"]  # types checked by parse_meta
        if Path(blob).name != blob or not blob.endswith(".npy"):
            raise CacheCorrupt(f"cache entry {key}: blob name {blob!r} is not a file of its folder")
        path = self.slice_dir(key.slice) / blob
        digest = xxhash.xxh3_64()
        try:
            with open(path, "rb", buffering=0) as fh:
                check_header(fh, key, shape)
                if os.fstat(fh.fileno()).st_size - fh.tell() != shape[0] * shape[1] * 4:  # before allocating
                    raise CacheCorrupt(f"cache entry {key}: array has the wrong size (truncated or overwritten)")
                array = np.empty(shape, dtype=np.float32)
                view = memoryview(array).cast("B")
                pos = 0
                while pos < len(view):
                    got = fh.readinto(view[pos: pos + CHUNK])
                    if not got:
                        break
                    digest.update(view[pos: pos + got])
                    pos += got
                extra = fh.read(1)
        except OSError as exc:
            if exc.errno in GONE:  # replaced or removed meanwhile: the caller reads the .json again
                raise FileNotFoundError(exc.errno, exc.strerror, str(path)) from None
            raise unreadable(path, exc, f"cache entry {key}: array") from None
        if pos != len(view) or extra:
            raise CacheCorrupt(f"cache entry {key}: array has the wrong size (truncated or overwritten)")
        if digest.hexdigest() != meta["xxh3_64"]:
            raise CacheCorrupt(f"cache entry {key}: array checksum mismatch (the file changed after it was written)")
        spots = self._read_spots(key, meta["spots_hash"])
        if len(spots) != shape[0]:
            raise CacheCorrupt(f"cache entry {key}: its spot list has {len(spots)} spots, its array {shape[0]}")
        return Embedding(array=array, meta=meta, obs_names=np.asarray(spots, dtype=object))

    def _read_spots(self, key: CacheKey, spots_hash: str) -> list[str]:
        if spots_hash not in self._spots:
            path = self._spots_path(spots_hash)
            try:
                raw = read_file(path, lambda raw: spots_hash_of(raw) == spots_hash)
            except OSError as exc:
                if exc.errno in DENIED:
                    raise unreadable(path, exc, f"cache entry {key}: its spot list") from None
                raw = None
            if raw is None:
                raise CacheCorrupt(f"cache entry {key}: its spot list is missing")
            spots = parse_spots(raw) if spots_hash_of(raw) == spots_hash else None
            if spots is None:
                raise CacheCorrupt(f"cache entry {key}: its spot list changed after it was written")
            self._spots[spots_hash] = spots
        return self._spots[spots_hash]

    def put(self, key: CacheKey, array: "np.ndarray", obs_names, **meta_fields) -> dict:
        """Store a raw embedding; returns its metadata. Replaces an existing entry atomically.

        A full disk or a read-only workspace is a one-line MihdError, with nothing partial left behind."""
        import numpy as np
        import xxhash

        array = np.ascontiguousarray(array, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] != len(obs_names):
            raise MihdError(f"cache entry {key}: array shape {array.shape} does not match {len(obs_names)} spots")
        self.check_writable(f"store {key}")
        spots_raw = json.dumps([str(s) for s in obs_names]).encode()
        spots_hash = spots_hash_of(spots_raw)
        folder = self.slice_dir(key.slice)
        blob = f"{key.stem}{SEP}{token()}.npy"
        meta = {
            "slice": key.slice, "modality": key.modality, "name": key.name, "variant": key.variant,
            "shape": list(array.shape), "dtype": "float32", "nbytes": array.nbytes,
            "xxh3_64": xxhash.xxh3_64_hexdigest(memoryview(array).cast("B")),
            "blob": blob, "spots_hash": spots_hash, "created": time.time(), "version": __version__,
            "transforms": [], **meta_fields,
        }
        need = array.nbytes + len(spots_raw) + 8192
        old = self._replaced_meta(key)
        written: list[Path] = []
        try:
            folder.mkdir(parents=True, exist_ok=True)
            spots_path = self._spots_path(spots_hash)
            if not touch(spots_path):  # reused: refreshed so `gc` spares it until the .json is in
                spots_path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(spots_path, [spots_raw])  # whole, and maybe shared already: left to `gc`
            write_atomic(folder / blob, [npy_header(array), memoryview(array).cast("B")])
            written.append(folder / blob)
            if old:
                touch(folder / old["blob"])  # its grace before `gc` counts from the switch
            write_json_atomic(self.meta_path(key), meta)
        except OSError as exc:
            for path in written:
                path.unlink(missing_ok=True)
            raise self._write_error(exc, f"store {key}", need) from None
        self._spots[spots_hash] = json.loads(spots_raw)
        return meta

    def _replaced_meta(self, key: CacheKey) -> dict | None:
        """The metadata a put replaces (None: none, or damaged); another user's unreadable entry is refused."""
        try:
            return self.meta(key)
        except CacheUnreadable as exc:
            raise MihdError(unreadable_advice(str(exc))) from None
        except CacheCorrupt:
            return None

    def made_by_other(self, key: CacheKey) -> str | None:
        """The user who made this entry when it is not this one (a lab's shared workspace), else None."""
        return other_owner(self.meta_path(key))

    def remove(self, key: CacheKey) -> bool:
        self.check_writable(f"remove {key}")
        try:
            old = self.meta(key)
        except CacheCorrupt:  # damaged or another user's unreadable one: its blob is left to `gc`
            old = None
        try:
            self.meta_path(key).unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self._write_error(exc, f"remove {key}", 0) from None
        if old and Path(old["blob"]).name == old["blob"]:
            (self.slice_dir(key.slice) / old["blob"]).unlink(missing_ok=True)
        return True

    # -- writability --------------------------------------------------------------------------
    def check_writable(self, what: str) -> None:
        if not is_writable(self.root):
            raise MihdError(f"--root {self.root}: the workspace is read-only; cannot {what} "
                            "(read from it with --cache-from and write to a --root of your own)")

    def _write_error(self, exc: OSError, what: str, need: int) -> MihdError:
        return write_error(self.root, exc, what, need)

def read_entries(root: Path, slice_id: str | None = None) -> list[dict]:
    """Every entry's metadata, for a reader (listing, dashboard): a workspace without a cache has none,
    and reading creates nothing in the workspace."""
    if not embeddings_dir(root).is_dir():
        return []
    cache = EmbeddingCache(root)
    try:
        return cache.entries(slice_id)
    finally:
        cache.close()


def inventory_stamp(root: Path) -> tuple:
    """Changes when an entry is added, replaced or removed (the entry folders' mtimes): a watcher rereads
    the inventory only then. Cheap: one stat per slice, none per entry."""
    stamp = []
    entries = embeddings_dir(root) / "entries"
    for folder in [entries, *sorted(subdirs(entries))]:
        try:
            st = folder.stat()
            stamp.append((folder.name, st.st_mtime_ns, st.st_size, st.st_nlink))
        except OSError:
            stamp.append((folder.name, None))
    return tuple(stamp)


def cache_from_config(root: Path) -> list[Path]:
    """`<root>/cache_from.json`: a list of read-only workspaces to read embeddings from as well (entries that
    are not folders are said once, on stderr, and left out: workspace.read_cache_from)."""
    folders, problems = read_cache_from(root)
    for line in problems:
        warn_once(line)
    return folders


def entry_flags(meta: dict) -> list[str]:
    """What a listing must say about an entry beside its name: random weights, reduced precision."""
    config = meta.get("config") or {}
    flags = ["random init"] if meta.get("random_init") or config.get("random_init") else []
    return flags + (["bf16"] if config.get("precision") == "bf16" else [])
