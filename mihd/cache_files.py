"""The cache's keys and the bytes of its files: names, the checked reading of an entry's .json, blob header
and spot list, and hashing. Every reader treats a file as untrusted bytes: whatever a damaged file holds, it
reads as a problem of that entry (`corrupt`, or `unreadable (owner X)` when permissions forbid it), never
as an exception of another kind, and never as a hit with other data.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import CacheCorrupt, MihdError
from .owners import owner_name

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
GENE_VARIANT = "-"
SEP = "~"  # never in a valid name, so file names split back into key parts
CHUNK = 1 << 22  # bytes read (and hashed) at a time on a hit
GONE = (errno.ENOENT, errno.ESTALE)
DENIED = (errno.EACCES, errno.EPERM)


class CacheUnreadable(CacheCorrupt):
    """An entry's file exists but this user may not read it: another user's, not a damaged one. It is
    reported with its owner and never recomputed over."""


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


def key_of_stem(slice_id: str, stem: str) -> CacheKey | None:
    """The key of the entry file `<stem>.json` in `slice_id`'s folder; None for a name no key makes."""
    parts = stem.split(SEP)
    if len(parts) != 3:
        return None
    try:
        key = CacheKey(slice_id, *parts)
    except MihdError:
        return None
    return key if key.variant == GENE_VARIANT or is_valid_name(key.variant) else None


def key_of_row(row: dict) -> CacheKey | None:
    """The key of a listing row (a problem row's parts come from its file name); None when they make none."""
    return key_of_stem(str(row.get("slice")), SEP.join(str(row.get(f)) for f in ("modality", "name", "variant")))


# -- an entry's metadata ----------------------------------------------------------------------------
_META_TYPES = {"slice": str, "modality": str, "name": str, "variant": str, "shape": list, "nbytes": int,
               "xxh3_64": str, "blob": str, "spots_hash": str, "created": (int, float)}
_OPTIONAL_TYPES = {"compute_seconds": (int, float), "config": dict, "transforms": list, "random_init": bool,
                   "encoder": str, "version": str, "dtype": str}


def parse_meta(raw: bytes | None) -> dict | None:
    """The entry metadata in `raw`, or None unless it is a JSON object with every field of the type a
    reader relies on (a flipped bit that still parses as JSON must not reach a listing as a string where
    a number belongs)."""
    try:
        meta = json.loads(raw)
    except (TypeError, ValueError, RecursionError):
        return None
    if not isinstance(meta, dict):
        return None
    for field, kind in _META_TYPES.items():
        if not isinstance(meta.get(field), kind) or isinstance(meta.get(field), bool):
            return None
    for field, kind in _OPTIONAL_TYPES.items():
        if field in meta and not isinstance(meta[field], kind):
            return None
    shape = meta["shape"]
    if len(shape) != 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape):
        return None
    return meta


def is_meta(raw: bytes) -> bool:
    return parse_meta(raw) is not None


def meta_matches(meta: dict, key: CacheKey) -> bool:
    """Whether the metadata names the entry its file name says (a damaged name field is a damaged entry)."""
    return (meta["slice"], meta["modality"], meta["name"], meta["variant"]) == \
        (key.slice, key.modality, key.name, key.variant)


# -- reading files ------------------------------------------------------------------------------------
RETRY_PAUSE = 0.005  # seconds before a read is asked again (then 4x, 9x): 70 ms in all for a file that stays bad


def read_file(path: Path, valid: Callable[[bytes], bool] = lambda raw: True, tries: int = 4) -> bytes | None:
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
            if exc.errno not in GONE:
                raise
            if last or not path.parent.is_dir():
                return None
        time.sleep(RETRY_PAUSE * (attempt + 1) ** 2)
    return None


def read_bytes(path: Path, valid: Callable[[bytes], bool]) -> bytes | None:
    try:
        return read_file(path, valid)
    except OSError:
        return None


def unreadable(path: Path, exc: OSError, what: str = "") -> CacheCorrupt:
    """The problem an OSError reading an entry's file is: another user's file (permissions), or damage."""
    what = f"{what}: " if what else ""
    if exc.errno in DENIED:
        return CacheUnreadable(f"{what}unreadable (owner {owner_name(path)})")
    return CacheCorrupt(f"{what}unreadable ({exc.strerror or exc})")


# -- the blob -----------------------------------------------------------------------------------------
def npy_header(array) -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(array))
    return buf.getvalue()


def check_header(fh, key: CacheKey, shape: tuple) -> None:
    """The blob's .npy header must say what its metadata says. numpy parses the header as Python literal
    text, so damaged bytes can fail in any of several ways (ValueError, tokenize.TokenError, SyntaxError,
    ...): every one is a damaged header."""
    import numpy as np

    try:
        np.lib.format.read_magic(fh)
        got_shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    except OSError:
        raise
    except Exception:  # noqa: BLE001 - untrusted bytes through a literal parser
        raise CacheCorrupt(f"cache entry {key}: array file header is damaged") from None
    if tuple(got_shape) != shape or fortran or dtype != np.dtype("<f4"):
        raise CacheCorrupt(f"cache entry {key}: array file holds {got_shape} {dtype}, its metadata says {shape} float32")


def spots_hash(raw: bytes) -> str:
    import hashlib

    return hashlib.blake2b(raw, digest_size=12).hexdigest()


def parse_spots(raw: bytes) -> list[str] | None:
    """A spot list's barcodes, or None when the bytes are not a JSON list of strings."""
    try:
        spots = json.loads(raw)
    except (TypeError, ValueError, RecursionError):
        return None
    return spots if isinstance(spots, list) and all(isinstance(s, str) for s in spots) else None


# -- small file helpers ---------------------------------------------------------------------------------
def touch(path: Path) -> bool:
    try:
        os.utime(path)
        return True
    except OSError:
        return False


def subdirs(folder: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")]
    except OSError:
        return []


def names(folder: Path) -> list[str]:
    try:
        return [e.name for e in os.scandir(folder) if e.is_file()]
    except OSError:
        return []


def write_error(root: Path, exc: OSError, what: str, need: int) -> MihdError:
    """The one line a failed write of the cache reads as: a full disk says what was needed and what is free;
    anything else as every other write of the workspace (workspace.write_error)."""
    from .workspace import write_error as workspace_write_error

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = shutil.disk_usage(root).free
        except OSError:
            free = 0
        return MihdError(f"--root {root}: no space left to {what} ({size_text(need)} needed, "
                         f"{size_text(free)} free); nothing was written")
    return workspace_write_error(Path(root), exc, what)


def size_text(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def token() -> str:
    return f"{int(time.time() * 1000):x}-{uuid.uuid4().hex[:12]}"
