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

The index (diskcache, in `workspace.host_index_dir`) only speeds up listing: it keeps each .json's
metadata keyed by (mtime, size, inode) and rereads only new or changed files. It is rebuildable at will;
when it cannot be used (a full or read-only local disk) listing reads the .json files directly.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from . import __version__
from .errors import CacheCorrupt, MihdError
from .jsonio import write_atomic, write_json_atomic
from .workspace import embeddings_dir, host_index_dir, is_writable, read_cache_from, warn_once

if TYPE_CHECKING:
    import numpy as np

    from .embedding import Embedding

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
GENE_VARIANT = "-"
SEP = "~"  # never in a valid name, so file names split back into key parts
LOCKS = "locks"  # under the embeddings folder: one single-flight lock file per key being computed
ORPHAN_GRACE = 600.0  # seconds: a file younger than this may be a write in flight or a replaced blob in use
CHUNK = 1 << 22  # bytes read (and hashed) at a time on a hit
SETTLE = 1.1  # seconds: the coarsest mtime granularity expected (1 s on some NFS/Lustre servers) + margin
LOCK_TIMEOUT = float(os.environ.get("MIHD_CACHE_LOCK_TIMEOUT", 120))  # heartbeat silence that frees a lock


def is_valid_name(name: str) -> bool:
    return isinstance(name, str) and bool(_NAME_RE.match(name)) and ".." not in name


def validate_name(name: str, what: str = "--cache-name") -> str:
    """Cache and slice names become key parts and file names: a fixed character set, no `..`."""
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
    def stem(self) -> str:
        """The entry's file name stem inside its slice folder."""
        return SEP.join((self.modality, self.name, self.variant))

    def __str__(self) -> str:
        return f"{self.slice}/{self.modality}/{self.name}/{self.variant}"


@dataclass
class Lookup:
    status: str  # hit | miss | stale | corrupt
    embedding: "Embedding | None" = None
    reason: str = ""


class EmbeddingCache:
    """One workspace's cache, plus read-only caches to look in when this one misses (`--cache-from`)."""

    def __init__(self, root: Path, sources: list[Path] | None = None, *, as_source: bool = False):
        self.root = Path(root)
        self.dir = embeddings_dir(self.root)
        self._index = None
        self._spots: dict[str, list[str]] = {}
        self.sources = [] if as_source else [
            EmbeddingCache(s, as_source=True) for s in [*(sources or []), *cache_from_config(self.root)]]
        if not as_source and (self.dir / "cache.db").exists():
            from .cache_legacy import migrate

            migrate(self)

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

    def lock_path(self, key: CacheKey) -> Path:
        return self.dir / LOCKS / f"{key.slice}{SEP}{key.stem}.lock"

    # -- metadata ---------------------------------------------------------------------------
    def meta(self, key: CacheKey) -> dict | None:
        try:
            raw = _read_file(self.meta_path(key), _is_meta)
        except OSError as exc:
            raise CacheCorrupt(f"cache entry {key}: metadata unreadable ({exc.strerror})") from None
        if raw is None:
            return None
        meta = _parse_meta(raw)
        if meta is None:
            raise CacheCorrupt(f"cache entry {key}: unreadable metadata")
        return meta

    def entries(self, slice_id: str | None = None) -> list[dict]:
        """Metadata of every entry (no arrays read); corrupt metadata shows as a row with `corrupt`."""
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
        known = _index_get(index, slice_id) or {}
        if known.get("dir") == dir_sig:
            first_seen = known["first_seen"]
            if first_seen <= now and known["listed_at"] - first_seen > SETTLE:
                return [meta for _, meta in known["files"].values()]
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
            if cached is not None and tuple(cached[0]) == sig:
                meta = cached[1]
            else:
                raw = _read_bytes(Path(e.path), _is_meta)
                if raw is None:  # removed meanwhile
                    continue
                meta = _parse_meta(raw)
                if meta is None:
                    mod, name, variant = (e.name[: -len(".json")].split(SEP) + ["?", "?"])[:3]
                    meta = {"slice": slice_id, "modality": mod, "name": name, "variant": variant,
                            "corrupt": "unreadable metadata"}
            fresh[e.name] = (sig, meta)
            rows.append(meta)
        _index_set(index, slice_id, {"dir": dir_sig, "first_seen": first_seen, "listed_at": now, "files": fresh})
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

    # -- arrays -------------------------------------------------------------------------------
    def lookup(self, key: CacheKey, fingerprint: str | None = None) -> Lookup:
        """Hit, miss, stale (the slice changed since) or corrupt (reported, never returned as data).
        On anything but a hit, the read-only `sources` are asked in turn."""
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
                return Lookup("corrupt", reason=str(exc))
            if meta is None:
                return Lookup("miss")
            if fingerprint is not None and meta.get("fingerprint") != fingerprint:
                return Lookup("stale", reason=f"cache entry {key}: the slice changed since it was computed")
            if meta.get("blob") == seen:
                break
            seen = meta.get("blob")
            try:
                return Lookup("hit", self._load(key, meta))
            except FileNotFoundError:
                continue
            except CacheCorrupt as exc:
                return Lookup("corrupt", reason=str(exc))
        return Lookup("corrupt", reason=f"cache entry {key}: its array is missing")

    def _load(self, key: CacheKey, meta: dict) -> "Embedding":
        """The entry's array, checked against its xxh3_64 in the same pass as the read."""
        import numpy as np
        import xxhash

        from .embedding import Embedding

        try:
            shape = tuple(int(n) for n in meta["shape"])
            blob, expected = str(meta["blob"]), meta["xxh3_64"]
        except (KeyError, TypeError, ValueError):
            raise CacheCorrupt(f"cache entry {key}: metadata lacks shape, blob or checksum") from None
        if Path(blob).name != blob or not blob.endswith(".npy"):
            raise CacheCorrupt(f"cache entry {key}: blob name {blob!r} is not a file of its folder")
        path = self.slice_dir(key.slice) / blob
        array = np.empty(shape, dtype=np.float32)
        view = memoryview(array).cast("B")
        digest = xxhash.xxh3_64()
        try:
            with open(path, "rb", buffering=0) as fh:
                _check_header(fh, key, shape)
                pos = 0
                while pos < len(view):
                    got = fh.readinto(view[pos: pos + CHUNK])
                    if not got:
                        break
                    digest.update(view[pos: pos + got])
                    pos += got
                extra = fh.read(1)
        except OSError as exc:
            if exc.errno in _GONE:  # replaced or removed meanwhile: the caller reads the .json again
                raise FileNotFoundError(exc.errno, exc.strerror, str(path)) from None
            raise CacheCorrupt(f"cache entry {key}: array unreadable ({exc.strerror})") from None
        if pos != len(view) or extra:
            raise CacheCorrupt(f"cache entry {key}: array has the wrong size (truncated or overwritten)")
        if digest.hexdigest() != expected:
            raise CacheCorrupt(f"cache entry {key}: array checksum mismatch (the file changed after it was written)")
        spots = self._read_spots(key, meta.get("spots_hash", ""))
        return Embedding(array=array, meta=meta, obs_names=np.asarray(spots, dtype=object))

    def _read_spots(self, key: CacheKey, spots_hash: str) -> list[str]:
        if spots_hash not in self._spots:
            try:
                raw = _read_file(self._spots_path(spots_hash), lambda raw: _spots_hash(raw) == spots_hash)
            except OSError:
                raw = None
            if raw is None:
                raise CacheCorrupt(f"cache entry {key}: its spot list is missing")
            if _spots_hash(raw) != spots_hash:
                raise CacheCorrupt(f"cache entry {key}: its spot list changed after it was written")
            self._spots[spots_hash] = json.loads(raw)
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
        spots_hash = _spots_hash(spots_raw)
        folder = self.slice_dir(key.slice)
        blob = f"{key.stem}{SEP}{_token()}.npy"
        meta = {
            "slice": key.slice, "modality": key.modality, "name": key.name, "variant": key.variant,
            "shape": list(array.shape), "dtype": "float32", "nbytes": array.nbytes,
            "xxh3_64": xxhash.xxh3_64_hexdigest(memoryview(array).cast("B")),
            "blob": blob, "spots_hash": spots_hash, "created": time.time(), "version": __version__,
            "transforms": [], **meta_fields,
        }
        need = array.nbytes + len(spots_raw) + 8192
        written: list[Path] = []
        try:
            folder.mkdir(parents=True, exist_ok=True)
            spots_path = self._spots_path(spots_hash)
            if not _touch(spots_path):  # reused: refreshed so `gc` spares it until the .json is in
                spots_path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(spots_path, [spots_raw])  # whole, and maybe shared already: left to `gc`
            write_atomic(folder / blob, [_npy_header(array), memoryview(array).cast("B")])
            written.append(folder / blob)
            old = self._safe_meta(key)
            if old and old.get("blob"):
                _touch(folder / old["blob"])  # its grace before `gc` counts from the switch
            write_json_atomic(self.meta_path(key), meta)
        except OSError as exc:
            for path in written:
                path.unlink(missing_ok=True)
            raise self._write_error(exc, f"store {key}", need) from None
        self._spots[spots_hash] = json.loads(spots_raw)
        return meta

    def _safe_meta(self, key: CacheKey) -> dict | None:
        try:
            return self.meta(key)
        except CacheCorrupt:
            return None

    def remove(self, key: CacheKey) -> bool:
        self.check_writable(f"remove {key}")
        old = self._safe_meta(key)
        try:
            self.meta_path(key).unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self._write_error(exc, f"remove {key}", 0) from None
        if old and old.get("blob") and Path(old["blob"]).name == old["blob"]:
            (self.slice_dir(key.slice) / old["blob"]).unlink(missing_ok=True)
        return True

    # -- what no entry refers to --------------------------------------------------------------
    def orphans(self, grace: float = ORPHAN_GRACE) -> list[tuple[str, int]]:
        """(path under embeddings/, bytes) of every file no entry refers to, older than `grace` seconds:
        blobs of killed, racing or replaced writes, partial temporary files, unused spot lists, dead locks.

        A file's age is its mtime (a write in flight keeps it fresh; a replaced blob is touched at the
        switch). Files of an entry whose metadata cannot be read are spared: it might refer to them."""
        now, out = time.time(), []
        referenced_spots = set()
        entries = self.dir / "entries"
        for folder in _subdirs(entries):
            names = _names(folder)
            referenced, spare_stems = set(), set()
            for name in names:
                if name.endswith(".json") and not name.startswith("."):
                    meta = _parse_meta(_read_bytes(folder / name, _is_meta))
                    if meta is None:
                        spare_stems.add(name[: -len(".json")])
                        continue
                    referenced.add(meta.get("blob"))
                    referenced_spots.add(f"{meta.get('spots_hash')}.json")
            for name in names:
                if (name.endswith(".json") and not name.startswith(".")) or name in referenced \
                        or SEP.join(name.lstrip(".").split(SEP)[:3]) in spare_stems:
                    continue
                _add_if_old(out, folder / name, now, grace, self.dir)
        for name in _names(self.dir / "spots"):
            if name not in referenced_spots:
                _add_if_old(out, self.dir / "spots" / name, now, grace, self.dir)
        for name in _names(self.dir / LOCKS):
            _add_if_old(out, self.dir / LOCKS / name, now, max(grace, LOCK_TIMEOUT), self.dir)
        return out

    def collect_orphans(self, grace: float = ORPHAN_GRACE) -> tuple[int, int]:
        """Delete `orphans(grace)`; returns (files removed, bytes freed)."""
        self.check_writable("remove unreferenced files")
        count = freed = 0
        for rel, size in self.orphans(grace):
            path = self.dir / rel
            try:
                if time.time() - path.stat().st_mtime < grace:  # reused meanwhile (a spot list, a lock)
                    continue
                path.unlink()
            except FileNotFoundError:
                continue
            count, freed = count + 1, freed + size
        return count, freed

    def verify(self) -> tuple[int, list[str]]:
        """Read every entry in full (checksums included); returns (entries checked, problems)."""
        problems, checked = [], 0
        for meta in self.entries():
            checked += 1
            try:
                key = CacheKey(meta["slice"], meta["modality"], meta["name"], meta["variant"])
            except (KeyError, MihdError):
                problems.append(f"cache entry {meta.get('slice')}/{meta.get('modality')}/{meta.get('name')}: bad key")
                continue
            if "corrupt" in meta:
                problems.append(f"cache entry {key}: {meta['corrupt']}")
                continue
            found = self._lookup_own(key, None)
            if found.status != "hit":
                problems.append(found.reason or f"cache entry {key}: removed while verifying")
        return checked, problems

    # -- writability --------------------------------------------------------------------------
    def check_writable(self, what: str) -> None:
        if not is_writable(self.root):
            raise MihdError(f"--root {self.root}: the workspace is read-only; cannot {what} "
                            "(read from it with --cache-from and write to a --root of your own)")

    def _write_error(self, exc: OSError, what: str, need: int) -> MihdError:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            try:
                free = shutil.disk_usage(self.root).free
            except OSError:
                free = 0
            return MihdError(f"--root {self.root}: no space left to {what} ({_size(need)} needed, "
                             f"{_size(free)} free); nothing was written")
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return MihdError(f"--root {self.root}: cannot {what}: {exc.strerror}")
        return MihdError(f"--root {self.root}: cannot {what}: {exc.strerror or exc}")

    # -- single flight ----------------------------------------------------------------------------
    def claim(self, key: CacheKey, run: str | None = None) -> "Claim | None":
        """Become the one process computing `key` (None when another one is): an O_EXCL lock file on the
        workspace (exclusive create holds on NFSv3+), kept fresh by a heartbeat while held."""
        return self.claim_path(self.lock_path(key), str(key), run)

    def claim_path(self, path: Path, what: str, run: str | None = None) -> "Claim | None":
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "run": run, "token": uuid.uuid4().hex,
                 "started": time.time()}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = _create_exclusive(path)
        except FileExistsError:
            return None
        except OSError as exc:
            raise self._write_error(exc, f"lock {what}", 4096) from None
        try:
            os.write(fd, json.dumps(owner).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return Claim(path, owner)

    def holder(self, key: CacheKey) -> dict | None:
        """Who holds `key`'s lock (host, pid, run), or None; `mtime` is its last heartbeat."""
        path = self.lock_path(key)
        try:
            st = path.stat()
        except OSError:
            return None
        return {**lock_owner(path), "mtime": st.st_mtime_ns}

    def break_lock(self, key: CacheKey, stale: dict) -> None:
        """Remove a lock whose heartbeat stopped (its computer died). Moved aside first, so of several
        waiters only one removes it; a lock renewed meanwhile (another token) is put back."""
        path = self.lock_path(key)
        aside = path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(path, aside)
        except OSError:
            return
        if lock_owner(aside).get("token") not in (None, stale.get("token")) and not path.exists():
            os.rename(aside, path)
        else:
            aside.unlink(missing_ok=True)

    def acquire(self, key: CacheKey, fingerprint: str | None, *, run: str | None = None,
                on_wait: Callable[[dict], None] | None = None, want_hit: bool = True,
                poll: float = 0.5) -> tuple[Lookup | None, "Claim | None"]:
        """Single flight: (a hit, None) when another process computed `key` while this one waited, or
        (None, claim) when this process must compute it. `on_wait(holder)` is called once, when waiting
        starts. A holder whose heartbeat is silent for LOCK_TIMEOUT seconds (this host's clock) is
        taken over."""
        announced = False
        last_seen, silent_since = None, time.monotonic()
        while True:
            claim = self.claim(key, run)
            if claim is not None:
                found = self.lookup(key, fingerprint) if want_hit else None
                if found is not None and found.status == "hit":  # computed just before we claimed
                    claim.release()
                    return found, None
                return None, claim
            holder = self.holder(key)
            if holder is None:
                continue
            if not announced and on_wait is not None and holder.get("token"):  # else: being written
                on_wait(holder)
                announced = True
            beat = (holder.get("token"), holder.get("mtime"))
            if beat != last_seen:
                last_seen, silent_since = beat, time.monotonic()
            elif time.monotonic() - silent_since > LOCK_TIMEOUT:
                self.break_lock(key, holder)
                continue
            time.sleep(poll)
            if want_hit:
                found = self.lookup(key, fingerprint)
                if found.status == "hit":
                    return found, None


class Claim:
    """A held single-flight lock: its mtime is touched every LOCK_TIMEOUT/6 seconds until released."""

    def __init__(self, path: Path, owner: dict):
        self.path, self.owner = path, owner
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="mihd-cache-lock", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(max(LOCK_TIMEOUT / 6, 0.1)):
            _touch(self.path)

    def release(self) -> None:
        self._stop.set()
        self._beat.join()
        if lock_owner(self.path).get("token") == self.owner["token"]:
            self.path.unlink(missing_ok=True)


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
    for folder in [entries, *sorted(_subdirs(entries))]:
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


# -- file helpers ---------------------------------------------------------------------------------
_GONE = (errno.ENOENT, errno.ESTALE)


def _read_file(path: Path, valid: Callable[[bytes], bool] = lambda raw: True, tries: int = 4) -> bytes | None:
    """The file's bytes (checked by `valid`), or None when it does not exist. On a network file system a
    name that another process is renaming over can answer ENOENT or ESTALE, or a read cut short at the
    client's cached size, for a moment (seen through sshfs; NFS clients do the like), so either is asked
    again, briefly, before it is believed; what is still not `valid` then is returned for the caller
    to report."""
    for attempt in range(tries):
        last = attempt == tries - 1
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
            if valid(raw) or last:
                return raw
        except OSError as exc:
            if exc.errno not in _GONE:
                raise
            if last or not path.parent.is_dir():
                return None
        time.sleep(0.005 * (attempt + 1) ** 2)
    return None


def _parse_meta(raw: bytes | None) -> dict | None:
    try:
        meta = json.loads(raw)
    except (TypeError, ValueError):
        return None
    return meta if isinstance(meta, dict) and "shape" in meta else None


def lock_owner(path: Path) -> dict:
    """A lock file's owner (host, pid, run, token); {} while it is being written or when it is gone."""
    def owner(raw: bytes) -> dict:
        try:
            found = json.loads(raw)
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}

    try:
        return owner(_read_file(path, lambda raw: "token" in owner(raw)) or b"")
    except OSError:
        return {}


def _is_meta(raw: bytes) -> bool:
    return _parse_meta(raw) is not None


def _read_bytes(path: Path, valid: Callable[[bytes], bool]) -> bytes | None:
    try:
        return _read_file(path, valid)
    except OSError:
        return None


def _npy_header(array) -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(array))
    return buf.getvalue()


def _check_header(fh, key: CacheKey, shape: tuple) -> None:
    import numpy as np

    try:
        np.lib.format.read_magic(fh)
        got_shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    except ValueError:
        raise CacheCorrupt(f"cache entry {key}: array file header is damaged") from None
    if tuple(got_shape) != shape or fortran or dtype != np.dtype("<f4"):
        raise CacheCorrupt(f"cache entry {key}: array file holds {got_shape} {dtype}, its metadata says {shape} float32")


def lock_key(file_name: str) -> CacheKey | None:
    """The key a lock file named by `EmbeddingCache.lock_path` stands for; None for any other file."""
    parts = file_name.removesuffix(".lock").split(SEP)
    if not file_name.endswith(".lock") or len(parts) != 4:
        return None
    try:
        return CacheKey(*parts)
    except MihdError:
        return None


def _create_exclusive(path: Path, patience: float = 2.0) -> int:
    """O_EXCL create. SFTP mounts (sshfs) answer one whose file another host made a moment ago with EPERM
    rather than EEXIST: while the folder is writable that is retried for `patience` seconds, by which time
    the file is seen (EEXIST) or gone (created here)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EACCES) or time.monotonic() > deadline:
                raise
            if os.path.lexists(path):
                raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
            if not is_writable(path.parent):
                raise
            time.sleep(0.1)


def _touch(path: Path) -> bool:
    try:
        os.utime(path)
        return True
    except OSError:
        return False


def _subdirs(folder: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")]
    except OSError:
        return []


def _names(folder: Path) -> list[str]:
    try:
        return [e.name for e in os.scandir(folder) if e.is_file()]
    except OSError:
        return []


def _add_if_old(out: list, path: Path, now: float, grace: float, base: Path) -> None:
    try:
        st = path.stat()
    except OSError:
        return
    if now - st.st_mtime >= grace:
        out.append((str(path.relative_to(base)), st.st_size))


def _spots_hash(raw: bytes) -> str:
    import hashlib

    return hashlib.blake2b(raw, digest_size=12).hexdigest()


def _index_get(index, slice_id: str):
    if index is None:
        return None
    try:
        return index.get(f"slice|{slice_id}")
    except Exception:
        return None


def _index_set(index, slice_id: str, listing: dict) -> None:
    if index is None:
        return
    try:
        index.set(f"slice|{slice_id}", listing)
    except Exception:  # a full or read-only local disk: the next listing reads the files again
        pass


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _token() -> str:
    return f"{int(time.time() * 1000):x}-{uuid.uuid4().hex[:12]}"

