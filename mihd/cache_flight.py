"""Single flight: of the processes (on one host or several) that need one missing entry, one computes it
and the others wait, then hit.

The first to create the key's lock file (O_CREAT|O_EXCL, which holds on NFSv3+) computes; it writes its
identity there (host, boot id, pid and create time, run, a token) and touches the file every
LOCK_TIMEOUT/6 s. A waiter takes the lock over:
- at once when the holder is a process of this host that is gone (pid + create time + boot id say so
  beyond doubt: a quit dashboard, a killed `mihd extract`);
- when the holder is on another host, once the lock's mtime has not moved for LOCK_TIMEOUT s of the
  waiter's own clock (no cross-host clock comparison): only its heartbeat tells that it lives;
- when the lock file is damaged (no owner can be read from it) and stays so for DAMAGED_GRACE s.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from .cache_files import SEP, CacheKey, read_file, touch
from .env_values import LOCK_TIMEOUT_ENV, seconds
from .errors import MihdError
from .jsonio import write_atomic
from .identity import alive, boot_id, elsewhere, proc_create_time
from .workspace import is_writable

LOCKS = "locks"  # under the embeddings folder: one single-flight lock file per key being computed
PROGRESS_EVERY = 2.0  # seconds between progress writes into a held lock
LOCK_TIMEOUT = seconds(LOCK_TIMEOUT_ENV, 120.0)  # heartbeat silence that frees a lock
DAMAGED_GRACE = 5.0  # seconds a lock may read without an owner (it is written right after its create)
_OWNER_TYPES = {"host": str, "pid": int, "token": str}


def lock_owner(path: Path) -> dict:
    """A lock file's owner (host, pid, run, token, ...); {} while it is being written, when it is gone
    or when its bytes are damaged."""
    try:
        return _owner(read_file(path, lambda raw: bool(_owner(raw))) or b"")
    except OSError:
        return {}


def _owner(raw: bytes) -> dict:
    try:
        found = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(found, dict) or not all(isinstance(found.get(f), t) for f, t in _OWNER_TYPES.items()):
        return {}
    return found


def lock_key(file_name: str) -> CacheKey | None:
    """The key a lock file named by `EmbeddingCache.lock_path` stands for; None for any other file."""
    parts = file_name.removesuffix(".lock").split(SEP)
    if not file_name.endswith(".lock") or len(parts) != 4:
        return None
    try:
        return CacheKey(*parts)
    except MihdError:
        return None


def holder_gone(owner: dict) -> bool:
    """Whether the lock's holder is certainly dead: a process of this host and boot, recorded with its
    create time, that no longer runs (a reused pid has another create time)."""
    if not owner or elsewhere(owner) is not None or not isinstance(owner.get("create_time"), (int, float)):
        return False
    return not alive(owner["pid"], owner["create_time"])


def wait_note(owner: dict) -> str:
    """How long a waiter will wait for this holder, and why (for the `waiting for ...` line)."""
    where = elsewhere(owner)
    if where is None and isinstance(owner.get("create_time"), (int, float)):
        return "taken over as soon as that process ends without storing it"
    return (f"{where or 'unknown host'}: taken over only when its heartbeat has stopped for "
            f"{LOCK_TIMEOUT:.0f} s (MIHD_CACHE_LOCK_TIMEOUT)")


class SingleFlight:
    """EmbeddingCache's single-flight half (`dir`, `lookup` and `_write_error` come from EmbeddingCache)."""

    def lock_path(self, key: CacheKey) -> Path:
        return self.dir / LOCKS / f"{key.slice}{SEP}{key.stem}.lock"

    def claim(self, key: CacheKey, run: str | None = None, flags: tuple[str, ...] = ()) -> "Claim | None":
        """Become the one process computing `key` (None when another one is): an O_EXCL lock file on the
        workspace (exclusive create holds on NFSv3+), kept fresh by a heartbeat while held. `flags`: what
        listings say beside the entry (cache.entry_flags), shown while it is computed too."""
        return self.claim_path(self.lock_path(key), str(key), run, flags)

    def claim_path(self, path: Path, what: str, run: str | None = None,
                   flags: tuple[str, ...] = ()) -> "Claim | None":
        pid = os.getpid()
        owner = {"host": socket.gethostname(), "boot_id": boot_id(), "pid": pid, "create_time": proc_create_time(pid),
                 "run": run, "token": uuid.uuid4().hex, "started": time.time(), "flags": list(flags)}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = _create_exclusive(path)
        except FileExistsError:
            return None
        except OSError as exc:
            raise self._write_error(exc, f"lock {what}", 4096) from None
        try:
            try:
                os.write(fd, json.dumps(owner).encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:  # a full disk: the lock is not left behind half written
            path.unlink(missing_ok=True)
            raise self._write_error(exc, f"lock {what}", 4096) from None
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
        """Remove a lock whose holder is gone. Moved aside first, so of several waiters only one removes
        it; a lock renewed meanwhile (another token) is put back."""
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
                flags: tuple[str, ...] = (), on_wait: Callable[[dict], None] | None = None, want_hit: bool = True,
                poll: float = 0.5) -> tuple["object | None", "Claim | None"]:
        """Single flight: (a hit, None) when another process computed `key` while this one waited, or
        (None, claim) when this process must compute it. `on_wait(holder)` is called once, when waiting
        on a live holder starts; a dead one is taken over at once (see the module docstring)."""
        announced = False
        last_seen, silent_since = None, time.monotonic()
        while True:
            claim = self.claim(key, run, flags)
            if claim is not None:
                found = self.lookup(key, fingerprint) if want_hit else None
                if found is not None and found.status == "hit":  # computed just before we claimed
                    claim.release()
                    return found, None
                return None, claim
            holder = self.holder(key)
            if holder is None:
                continue
            if holder_gone(holder):
                self.break_lock(key, holder)
                continue
            if not announced and on_wait is not None and holder.get("token"):  # else: being written
                on_wait(holder)
                announced = True
            beat = (holder.get("token"), holder.get("mtime"))
            if beat != last_seen:
                last_seen, silent_since = beat, time.monotonic()
            elif time.monotonic() - silent_since > (LOCK_TIMEOUT if holder.get("token") else DAMAGED_GRACE):
                self.break_lock(key, holder)
                continue
            time.sleep(poll)
            if want_hit:
                found = self.lookup(key, fingerprint)
                if found.status == "hit":
                    return found, None


class Claim:
    """A held single-flight lock: its mtime is touched every LOCK_TIMEOUT/6 seconds until released. Its
    computation's progress is written into it (`progress`), so the dashboard shows how far any extraction
    got, whether a run computes it or a direct `mihd extract`."""

    def __init__(self, path: Path, owner: dict):
        self.path, self.owner = path, owner
        self._progress_at = 0.0
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="mihd-cache-lock", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(max(LOCK_TIMEOUT / 6, 0.1)):
            touch(self.path)

    def progress(self, done: int, total: int) -> None:
        """Record how far the computation got, at most every PROGRESS_EVERY seconds: the lock is rewritten
        whole (a new file renamed over it), so a reader sees the old owner or the new one, never half. Advisory:
        a write that fails (a full disk) leaves the lock as it was."""
        if time.monotonic() - self._progress_at < PROGRESS_EVERY:
            return
        self._progress_at = time.monotonic()
        self.owner = {**self.owner, "done": int(done), "total": int(total)}
        try:
            write_atomic(self.path, [json.dumps(self.owner).encode()])
        except OSError:
            pass

    def release(self) -> None:
        self._stop.set()
        self._beat.join()
        if lock_owner(self.path).get("token") == self.owner["token"]:
            self.path.unlink(missing_ok=True)


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
