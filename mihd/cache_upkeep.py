"""Keeping the cache sound: `verify` reads every entry in full, `gc` finds and removes what no entry refers
to (blobs of killed, racing or replaced writes, partial temporary files, unused spot lists, dead locks) and
the half-written temporaries a killed write left in the workspace (the demo slice, slices.json). Opening a
workspace of the old single-store layout converts it first (cache_legacy), so no other cache code knows that layout.

In a lab's shared workspace the files belong to several users: `gc` removes only this user's unless told
`force`, and says whose it left.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import NamedTuple

from .cache_files import SEP, CacheKey, is_meta, names, parse_meta, read_bytes, subdirs
from .cache_flight import LOCK_TIMEOUT, LOCKS
from .errors import MihdError
from .owners import user_name
from .workspace import demo_dir

ORPHAN_GRACE = 600.0  # seconds: a file younger than this may be a write in flight or a replaced blob in use


class Verified(NamedTuple):
    checked: int
    corrupt: list[str]     # damaged entries: a run recomputes them
    unreadable: list[str]  # another user's entries this user may not read: reported with the owner, left alone


class Collected(NamedTuple):
    removed: int
    freed: int
    left: dict[str, tuple[int, int]]  # owner -> (files, bytes) of other users' files spared (no `force`)


class Upkeep:
    """EmbeddingCache's conversion, verify and gc (its `dir`, `root`, `entries`, `_lookup_own` come from EmbeddingCache)."""

    def convert_old_layout(self) -> None:
        """Move the entries of an old single-store layout into the file layout, once (see cache_legacy)."""
        if (self.dir / "cache.db").exists():
            from .cache_legacy import migrate

            migrate(self)

    def orphans(self, grace: float = ORPHAN_GRACE) -> list[tuple[str, int]]:
        """(path under embeddings/, bytes) of every file no entry refers to, older than `grace` seconds.

        A file's age is its mtime (a write in flight keeps it fresh; a replaced blob is touched at the
        switch). Files of an entry whose metadata cannot be read are spared: it might refer to them."""
        now, out = time.time(), []
        referenced_spots = set()
        for folder in subdirs(self.dir / "entries"):
            found = names(folder)
            referenced, spare_stems = set(), set()
            for name in found:
                if name.endswith(".json") and not name.startswith("."):
                    meta = parse_meta(read_bytes(folder / name, is_meta))
                    if meta is None:
                        spare_stems.add(name[: -len(".json")])
                        continue
                    referenced.add(meta["blob"])
                    referenced_spots.add(f"{meta['spots_hash']}.json")
            for name in found:
                if (name.endswith(".json") and not name.startswith(".")) or name in referenced \
                        or SEP.join(name.lstrip(".").split(SEP)[:3]) in spare_stems:
                    continue
                _add_if_old(out, folder / name, now, grace, self.dir)
        for name in names(self.dir / "spots"):
            if name not in referenced_spots:
                _add_if_old(out, self.dir / "spots" / name, now, grace, self.dir)
        for name in names(self.dir / LOCKS):
            _add_if_old(out, self.dir / LOCKS / name, now, max(grace, LOCK_TIMEOUT), self.dir)
        for folder in (self.root, demo_dir(self.root)):  # what a killed atomic write left (write_atomic's names)
            for name in names(folder):
                if name.startswith(".") and name.endswith(".tmp"):
                    _add_if_old(out, folder / name, now, grace, self.dir)
        return out

    def collect_orphans(self, grace: float = ORPHAN_GRACE, force: bool = False) -> Collected:
        """Delete `orphans(grace)`: this user's only, unless `force`; says whose files it left."""
        self.check_writable("remove unreferenced files")
        count = freed = 0
        left: dict[str, tuple[int, int]] = {}
        me = os.getuid()
        for rel, size in self.orphans(grace):
            path = Path(os.path.normpath(self.dir / rel))  # `../demo/...` even before embeddings/ exists
            try:
                st = path.stat()
                if time.time() - st.st_mtime < grace:  # reused meanwhile (a spot list, a lock)
                    continue
                if st.st_uid != me and not force:
                    files, total = left.get(user_name(st.st_uid), (0, 0))
                    left[user_name(st.st_uid)] = (files + 1, total + size)
                    continue
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise MihdError(f"--root {self.root}: cannot remove {path}: {exc.strerror or exc}") from None
            count, freed = count + 1, freed + size
        return Collected(count, freed, left)

    def verify(self) -> Verified:
        """Read every entry in full (checksums included)."""
        corrupt, unreadable, checked = [], [], 0
        for meta in self.entries():
            checked += 1
            key = CacheKey(meta["slice"], meta["modality"], meta["name"], meta["variant"]) \
                if "corrupt" not in meta and "unreadable" not in meta else None
            if key is None:
                what = f"cache entry {meta['slice']}/{meta['modality']}/{meta['name']}/{meta['variant']}"
                if "unreadable" in meta:
                    unreadable.append(f"{what}: {meta['unreadable']}")
                else:
                    corrupt.append(f"{what}: {meta['corrupt']}")
                continue
            found = self._lookup_own(key, None)
            if found.status == "unreadable":
                unreadable.append(found.reason)
            elif found.status != "hit":
                corrupt.append(found.reason or f"cache entry {key}: removed while verifying")
        return Verified(checked, corrupt, unreadable)


def _add_if_old(out: list, path: Path, now: float, grace: float, base: Path) -> None:
    try:
        st = path.stat()
    except OSError:
        return
    if now - st.st_mtime >= grace:
        out.append((os.path.relpath(path, base), st.st_size))

