"""Which processes belong to a run, told apart from everything else on the machine (standard library only).

A pid alone is reused by unrelated processes; a pid with its create time can still collide on another
host or after a reboot (the clock of /proc restarts). So an identity is (pid, create time, host, boot id),
and it is all or nothing: a field missing or null never matches, and nothing is signalled on a doubt.

A run's processes are found three ways, so that none is missed: the supervisor's session, the command's
process group, and a marker in the environment (`MIHD_RUN_MARKER`, a random token the supervisor gives
the command), which every descendant inherits, even one that double-forks into a session of its own.
A run stays killable as long as its processes keep that variable (they must not clear their environment).
"""

from __future__ import annotations

import functools
import os
import socket

MARKER_VAR = "MIHD_RUN_MARKER"
CTIME_TOLERANCE = 0.1  # seconds; both sides compute create time from the same /proc fields
_BOOT_ID = "/proc/sys/kernel/random/boot_id"


@functools.cache  # a process never outlives its boot: read once, not at every liveness check
def boot_id() -> str | None:
    try:
        with open(_BOOT_ID) as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def _stat(pid: int) -> list[bytes] | None:
    """/proc/PID/stat fields after "pid (comm)": state(0) ppid(1) pgrp(2) session(3) ... starttime(19)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


@functools.cache
def _btime() -> float | None:
    try:
        with open("/proc/stat", "rb") as fh:
            return next(float(line.split()[1]) for line in fh if line.startswith(b"btime"))
    except (OSError, StopIteration, ValueError):
        return None


def proc_create_time(pid: int, fields: list[bytes] | None = None) -> float | None:
    """The process create time as psutil computes it (boot time + start ticks), without psutil; `fields`:
    its /proc/PID/stat, when already read."""
    fields, btime = fields or _stat(pid), _btime()
    if fields is None or btime is None:
        return None
    return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def process_identity(pid: int | None = None) -> dict:
    """This process's (or `pid`'s) identity as a run dir records it."""
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "create_time": proc_create_time(pid), "sid": os.getsid(pid), "host": socket.gethostname(),
            "boot_id": boot_id(), "uid": os.getuid()}


def elsewhere(ident: dict) -> str | None:
    """Why the processes of `ident` cannot be this machine's now ("host X", "before a reboot",
    "no host recorded"), or None when they may be."""
    host = ident.get("host")
    if not host:
        return "no host recorded"
    if host != socket.gethostname():
        return f"host {host}"
    boot = ident.get("boot_id")
    if not boot:
        return "no boot id recorded"
    return None if boot == boot_id() else "before this machine's last reboot"


def alive(pid: int | None, create_time: float | None) -> bool:
    """Whether `pid` is alive, not a zombie, and created at `create_time` (None never matches)."""
    if not pid or create_time is None:
        return False
    fields = _stat(pid)
    if fields is None or fields[0] == b"Z":
        return False
    actual = proc_create_time(pid, fields)
    return actual is not None and abs(actual - create_time) <= CTIME_TOLERANCE


def _has_marker(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return needle in fh.read().split(b"\0")
    except OSError:
        return False


def run_members(sid: int | None = None, pgid: int | None = None, marker: str | None = None,
                exclude: tuple[int, ...] = ()) -> dict[int, str]:
    """{pid: how found ("session", "group", "marker")} of the live processes in session `sid`, in process
    group `pgid`, or carrying `marker` in their environment; pids in `exclude` left out."""
    needle = f"{MARKER_VAR}={marker}".encode() if marker else None
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in exclude:
            continue
        pid = int(name)
        fields = _stat(pid)
        if fields is None or fields[0] == b"Z":
            continue
        if sid is not None and int(fields[3]) == sid:
            found[pid] = "session"
        elif pgid is not None and int(fields[2]) == pgid:
            found[pid] = "group"
        elif needle is not None and _has_marker(pid, needle):
            found[pid] = "marker"
    return found
