"""Listing the cache: every entry's metadata, read through a host-local index (diskcache, in
`workspace.host_index_dir`) that keeps each .json's metadata under its (mtime, size, inode), so a listing
rereads only new or changed files. The index is rebuildable at will; when it cannot be used (a full or
read-only local disk) listing reads the .json files directly.

A file that cannot be read shows as a row with `unreadable` (another user's, with the owner) or `corrupt`
(damaged), named by its file name; such rows never count as cached.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .cache_files import (SEP, CacheUnreadable, is_meta, is_valid_name, key_of_stem, meta_matches, parse_meta,
                          read_file, unreadable)
from .errors import CacheCorrupt
from .workspace import host_index_dir

SETTLE = 1.1  # seconds: the coarsest mtime granularity expected (1 s on some NFS/Lustre servers) + margin


class Listing:
    """EmbeddingCache's listing half (its `dir`, `slice_dir` and `_index` come from EmbeddingCache)."""

    def entries(self, slice_id: str | None = None) -> list[dict]:
        """Metadata of every entry (no arrays read); damaged or unreadable metadata shows as a row with
        `corrupt` or `unreadable`."""
        base = self.dir / "entries"
        if slice_id is not None:
            slices = [slice_id] if is_valid_name(slice_id) else []
        else:
            try:
                slices = sorted(e.name for e in os.scandir(base) if e.is_dir() and not e.name.startswith("."))
            except OSError:
                slices = []
        index = self._open_index()
        rows = []
        for s in slices:
            rows += self._slice_entries(s, index)
        return rows

    def _slice_entries(self, slice_id: str, index) -> list[dict]:
        """One slice folder's entries. The index keeps each .json's metadata under its (mtime, size, inode),
        so only new or changed files are read. When the folder itself (its mtime: any create, rename or
        delete in it) has not changed since a listing that began clearly after that mtime was first seen,
        the kept listing is used without a stat per file: a change after that listing would have moved the
        mtime past its timestamp tick (SETTLE); the monotonic clock is this host's, like the index."""
        folder = self.slice_dir(slice_id)
        try:
            st = folder.stat()
        except OSError:
            return []
        now = time.monotonic()
        dir_sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        known = _index_get(index, slice_id)
        if known.get("dir") == dir_sig:
            first_seen = known.get("first_seen", now)
            settled = first_seen <= now and known.get("listed_at", now) - first_seen > SETTLE
            if settled and not known.get("problems"):  # a problem row is read again: a chmod moves no mtime
                return [meta for _, meta in known.get("files", {}).values()]
        else:
            first_seen = now
        files = known.get("files", {})
        fresh, rows = {}, []
        try:
            listing = [e for e in os.scandir(folder) if e.name.endswith(".json") and not e.name.startswith(".")]
        except OSError:
            listing = []
        for e in listing:
            try:
                fst = e.stat()
            except OSError:  # removed meanwhile
                continue
            sig = (fst.st_mtime_ns, fst.st_size, fst.st_ino)
            cached = files.get(e.name)
            if cached is not None and tuple(cached[0]) == sig and not _is_problem(cached[1]):
                meta = cached[1]
            else:
                meta = _read_row(slice_id, Path(e.path))
                if meta is None:  # removed meanwhile
                    continue
            fresh[e.name] = (sig, meta)
            rows.append(meta)
        _index_set(index, slice_id, {"dir": dir_sig, "first_seen": first_seen, "listed_at": now, "files": fresh,
                                     "problems": any(map(_is_problem, rows))})
        return rows

    def _open_index(self):
        """The host-local diskcache index, or None when it cannot be opened (then listing reads every file)."""
        if self._index is None:
            try:
                import diskcache

                folder = host_index_dir(self.root) / "embeddings"
                folder.mkdir(parents=True, exist_ok=True)
                self._index = diskcache.Cache(str(folder), size_limit=2**40, eviction_policy="none", timeout=5)
            except Exception:  # the index is only a speed-up
                self._index = None
        return self._index


def _read_row(slice_id: str, path: Path) -> dict | None:
    """One entry file as a listing row; None when it is gone."""
    stem = path.name[: -len(".json")]
    key = key_of_stem(slice_id, stem)
    try:
        raw = read_file(path, is_meta)
    except OSError as exc:
        return _problem_row(slice_id, stem, unreadable(path, exc))
    if raw is None:
        return None
    meta = parse_meta(raw)
    if meta is None or key is None:
        return _problem_row(slice_id, stem, CacheCorrupt("unreadable metadata"))
    if not meta_matches(meta, key):
        return _problem_row(slice_id, stem, CacheCorrupt("its metadata names another entry"))
    return _readable(meta, path.parent / meta["blob"], path.parents[2] / "spots" / f"{meta['spots_hash']}.json")


def _readable(meta: dict, *paths: Path) -> dict:
    """`meta`, flagged `unreadable (owner X)` when its blob or spot list is a file this user may not read
    (another member's chmod), as `verify` finds it: an access() per file when the metadata is read, none in a
    settled listing; a flagged row is a problem row, read again at each listing until it is readable."""
    for path in paths:
        if os.access(path, os.R_OK):
            continue
        try:
            open(path, "rb").close()
        except PermissionError as exc:
            return {**meta, "unreadable": str(unreadable(path, exc))}
        except OSError:  # gone: verify finds it corrupt, the listing leaves that to it
            continue
    return meta


def _problem_row(slice_id: str, stem: str, problem: CacheCorrupt) -> dict:
    mod, name, variant = (stem.split(SEP) + ["?", "?"])[:3]
    field = "unreadable" if isinstance(problem, CacheUnreadable) else "corrupt"
    return {"slice": slice_id, "modality": mod, "name": name, "variant": variant, field: str(problem)}


def _is_problem(row) -> bool:
    return not isinstance(row, dict) or "corrupt" in row or "unreadable" in row


def _index_get(index, slice_id: str) -> dict:
    if index is None:
        return {}
    try:
        known = index.get(f"slice|{slice_id}")
    except Exception:
        return {}
    return known if isinstance(known, dict) else {}


def _index_set(index, slice_id: str, listing: dict) -> None:
    if index is None:
        return
    try:
        index.set(f"slice|{slice_id}", listing)
    except Exception:  # a full or read-only local disk: the next listing reads the files again
        pass

