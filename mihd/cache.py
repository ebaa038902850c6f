"""The embedding cache: raw encoder outputs in diskcache under `<root>/embeddings`.

Layout (one diskcache store, string keys):
  meta|slice|modality|name|variant   -> JSON text: shape, encoder, config, fingerprint, data key, crc, ...
  data|slice|modality|name|variant|<ms>-<uuid> -> the raw float32 bytes (a file on disk); <ms> is the
                                     write time in hex milliseconds, so `gc` can spare writes in flight
  spots|<hash>                       -> JSON list of spot barcodes (shared by all entries on that spot set)

An entry becomes visible only when its meta is written, after its data: a writer killed midway leaves
an unreferenced blob, never a readable partial entry. Each write uses a fresh data key, so two
processes writing the same entry at once cannot pair one's meta with the other's data. Listing reads
meta only. The store never evicts (size_limit off): embeddings are removed only by `mihd cache rm`;
blobs no entry refers to (a killed writer's, the loser of a race) only by `mihd cache gc`.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import diskcache

from . import __version__
from .errors import CacheCorrupt, MihdError
from .workspace import embeddings_dir

if TYPE_CHECKING:
    import numpy as np

    from .embedding import Embedding

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
GENE_VARIANT = "-"
ORPHAN_GRACE = 600.0  # seconds: a blob younger than this may be a write whose meta is about to follow


def is_valid_name(name: str) -> bool:
    return isinstance(name, str) and bool(_NAME_RE.match(name)) and ".." not in name


def validate_name(name: str, what: str = "--cache-name") -> str:
    """Cache and slice names become key parts and folder names: a fixed character set, no `..`."""
    if not is_valid_name(name):
        raise MihdError(
            f"{what} {name!r}: invalid name; use letters, digits and _ . + - "
            "(up to 64, starting with a letter or digit, no '..' or '/')"
        )
    return name


@dataclass(frozen=True)
class CacheKey:
    slice: str
    modality: str
    name: str
    variant: str

    def __post_init__(self):
        validate_name(self.slice, "slice")
        validate_name(self.name)
        if self.modality not in ("gene", "vision"):
            raise MihdError(f"modality {self.modality!r}: expected gene or vision")

    @property
    def meta_key(self) -> str:
        return "|".join(("meta", self.slice, self.modality, self.name, self.variant))

    def __str__(self) -> str:
        return f"{self.slice}/{self.modality}/{self.name}/{self.variant}"


@dataclass
class Lookup:
    status: str  # hit | miss | stale | corrupt
    embedding: "Embedding | None" = None
    reason: str = ""


class EmbeddingCache:
    def __init__(self, root: Path):
        self.dir = embeddings_dir(Path(root))
        self._store = diskcache.Cache(
            str(self.dir), size_limit=2**62, eviction_policy="none", cull_limit=0, timeout=60
        )

    def close(self) -> None:
        self._store.close()

    # -- metadata -----------------------------------------------------------------------------
    def meta(self, key: CacheKey) -> dict | None:
        raw = self._store.get(key.meta_key)
        if raw is None:
            return None
        try:
            meta = json.loads(raw)
            if not isinstance(meta, dict) or "data_key" not in meta:
                raise ValueError
            return meta
        except (TypeError, ValueError):
            raise CacheCorrupt(f"cache entry {key}: unreadable metadata") from None

    def entries(self, slice_id: str | None = None) -> list[dict]:
        """Metadata of every entry (no arrays read); corrupt metadata shows as a row with `corrupt`."""
        rows = []
        prefix = "meta|" if slice_id is None else f"meta|{slice_id}|"
        for k in self._store.iterkeys():
            if not (isinstance(k, str) and k.startswith(prefix)):
                continue
            raw = self._store.get(k)
            try:
                meta = json.loads(raw)
            except (TypeError, ValueError):
                _, s, mod, name, variant = k.split("|", 4)
                meta = {"slice": s, "modality": mod, "name": name, "variant": variant, "corrupt": "unreadable metadata"}
            rows.append(meta)
        return rows

    # -- arrays -------------------------------------------------------------------------------
    def lookup(self, key: CacheKey, fingerprint: str | None = None) -> Lookup:
        """Hit, miss, stale (the slice changed since) or corrupt (reported, never returned as data)."""
        try:
            meta = self.meta(key)
        except CacheCorrupt as exc:
            return Lookup("corrupt", reason=str(exc))
        if meta is None:
            return Lookup("miss")
        if fingerprint is not None and meta.get("fingerprint") != fingerprint:
            return Lookup("stale", reason=f"cache entry {key}: the slice changed since it was computed")
        try:
            return Lookup("hit", self._load(key, meta))
        except CacheCorrupt as exc:
            return Lookup("corrupt", reason=str(exc))

    def _load(self, key: CacheKey, meta: dict, check_crc: bool = False) -> "Embedding":
        import numpy as np

        from .embedding import Embedding

        shape = tuple(meta["shape"])
        nbytes = int(np.prod(shape)) * 4
        fh = self._store.get(meta["data_key"], read=True)
        if fh is None:
            raise CacheCorrupt(f"cache entry {key}: its array is missing")
        array = np.empty(shape, dtype=np.float32)
        if isinstance(fh, bytes):  # small arrays live inside the SQLite file, not in a blob file
            got, extra = len(fh), b""
            if got == nbytes:
                memoryview(array).cast("B")[:] = fh
        else:
            with fh:
                got = fh.readinto(memoryview(array).cast("B")) if nbytes else 0
                extra = fh.read(1)
        if got != nbytes or extra:
            raise CacheCorrupt(f"cache entry {key}: array has the wrong size (truncated or overwritten)")
        if check_crc and zlib.crc32(memoryview(array).cast("B")) != meta.get("crc32"):
            raise CacheCorrupt(f"cache entry {key}: array checksum mismatch")
        spots = self._store.get(f"spots|{meta['spots_hash']}")
        if spots is None:
            raise CacheCorrupt(f"cache entry {key}: its spot list is missing")
        return Embedding(array=array, meta=meta, obs_names=np.asarray(json.loads(spots), dtype=object))

    def put(self, key: CacheKey, array: "np.ndarray", obs_names, **meta_fields) -> dict:
        """Store a raw embedding; returns its metadata. Replaces an existing entry atomically."""
        import hashlib

        import numpy as np

        array = np.ascontiguousarray(array, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] != len(obs_names):
            raise MihdError(f"cache entry {key}: array shape {array.shape} does not match {len(obs_names)} spots")
        spots_json = json.dumps([str(s) for s in obs_names])
        spots_hash = hashlib.blake2b(spots_json.encode(), digest_size=12).hexdigest()
        self._store.set(f"spots|{spots_hash}", spots_json)
        data_key = f"data|{key.slice}|{key.modality}|{key.name}|{key.variant}|{_token()}"
        buf = memoryview(array).cast("B")
        self._store.set(data_key, bytes(buf))
        meta = {
            "slice": key.slice,
            "modality": key.modality,
            "name": key.name,
            "variant": key.variant,
            "shape": list(array.shape),
            "dtype": "float32",
            "nbytes": array.nbytes,
            "crc32": zlib.crc32(buf),
            "data_key": data_key,
            "spots_hash": spots_hash,
            "created": time.time(),
            "version": __version__,
            "transforms": [],
            **meta_fields,
        }
        old = self._safe_meta(key)
        self._store.set(key.meta_key, json.dumps(meta, default=str))
        if old and old.get("data_key") != data_key:
            self._store.delete(old["data_key"])
        return meta

    def _safe_meta(self, key: CacheKey) -> dict | None:
        try:
            return self.meta(key)
        except CacheCorrupt:
            return None

    def remove(self, key: CacheKey) -> bool:
        old = self._safe_meta(key)
        existed = self._store.delete(key.meta_key)
        if old:
            self._store.delete(old["data_key"])
        return existed

    def orphans(self, grace: float = ORPHAN_GRACE) -> list[tuple[str, int]]:
        """(data key, bytes) of blobs no entry refers to and older than `grace` seconds.

        Blobs of an entry whose metadata cannot be read are never counted (it might refer to them);
        blobs from before write times were recorded count as old."""
        referenced, unreadable = set(), set()
        for k in self._store.iterkeys():
            if isinstance(k, str) and k.startswith("meta|"):
                try:
                    referenced.add(json.loads(self._store.get(k))["data_key"])
                except (TypeError, ValueError, KeyError):
                    unreadable.add(k[len("meta|"):])
        now, out = time.time(), []
        for k in self._store.iterkeys():
            if not (isinstance(k, str) and k.startswith("data|")) or k in referenced:
                continue
            entry, token = k[len("data|"):].rsplit("|", 1)
            written = _token_time(token)
            if entry in unreadable or (written is not None and now - written < grace):
                continue
            out.append((k, self._size(k)))
        return out

    def collect_orphans(self, grace: float = ORPHAN_GRACE) -> tuple[int, int]:
        """Delete `orphans(grace)`; returns (blobs removed, bytes freed)."""
        found = self.orphans(grace)
        removed = [(k, n) for k, n in found if self._store.delete(k)]
        return len(removed), sum(n for _, n in removed)

    def _size(self, key: str) -> int:
        """Bytes of a blob without reading it: a file's size, or the length of a small value kept inline."""
        value = self._store.get(key, read=True)
        if value is None or isinstance(value, bytes):
            return len(value or b"")
        with value:
            return os.fstat(value.fileno()).st_size

    def verify(self) -> tuple[int, list[str]]:
        """Read every entry in full (checksums included); returns (entries checked, problems)."""
        problems, checked = [], 0
        for meta in self.entries():
            checked += 1
            key = CacheKey(meta["slice"], meta["modality"], meta["name"], meta["variant"])
            if "corrupt" in meta:
                problems.append(f"cache entry {key}: {meta['corrupt']}")
                continue
            try:
                self._load(key, meta, check_crc=True)
            except (CacheCorrupt, KeyError, ValueError, TypeError) as exc:
                problems.append(str(exc) if isinstance(exc, CacheCorrupt) else f"cache entry {key}: bad metadata ({exc})")
        return checked, problems


def read_entries(root: Path, slice_id: str | None = None) -> list[dict]:
    """Every entry's metadata, for a reader (listing, dashboard): a workspace without a cache has none,
    and reading does not create one."""
    if not embeddings_dir(root).is_dir():
        return []
    cache = EmbeddingCache(root)
    try:
        return cache.entries(slice_id)
    finally:
        cache.close()


def entry_flags(meta: dict) -> list[str]:
    """What a listing must say about an entry beside its name: random weights, reduced precision."""
    config = meta.get("config") or {}
    flags = ["random init"] if meta.get("random_init") or config.get("random_init") else []
    return flags + (["bf16"] if config.get("precision") == "bf16" else [])


def _token() -> str:
    return f"{int(time.time() * 1000):x}-{uuid.uuid4().hex}"


def _token_time(token: str) -> float | None:
    """The write time a data key's token records, or None for tokens written before it was recorded."""
    stamp, sep, _ = token.partition("-")
    try:
        return int(stamp, 16) / 1000 if sep else None
    except ValueError:
        return None
