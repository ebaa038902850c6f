"""The supervisor: `python -m mihd.runs.supervise [--detach] RUN_DIR -- argv...`.

It owns one run: it becomes a session leader (so the run outlives the terminal, SSH link or dashboard
that started it), starts the command in a process group of its own with stdout+stderr appended to
`run.log`, forwards TERM/INT/HUP to that group, waits, and writes `exit.json`. Its identity and the
command's (pid, create time, host, boot id; session, process group and environment marker: identity.py)
go to `proc.json`, so any later watcher can find and check both, even after the supervisor died. While it waits it
keeps `usage.json` (CPU, RSS, GPU memory and their peaks; see usage.py) every few seconds. Under Slurm its whole end
(the command, what it left running, exit.json) fits in the time Slurm leaves between its TERM and its KILL
(end_window.py), so a run cancelled or timed out by Slurm still says how it ended.

`--detach` forks once more and lets the first process exit at once, so the launcher (a long-lived
dashboard, say) never has to reap it and never keeps a zombie. A Slurm batch script runs it without
`--detach`. A warm worker (a fanned-out grid's local runner, which has imported numpy, torch and scanpy
once) calls `supervise(run_dir, argv, entry)` in a fork of itself: the command is then a fork running
`entry()` rather than a fresh interpreter running argv (argv stays the record of what it is), so a
one-second cell does not pay five seconds of imports.
This module stays light: standard library only, no psutil, no SQLite (NVML only if a GPU answers).
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from ..jsonio import write_json_atomic
from ..rundir import EXIT, LOG, PROC, RESERVE, RESULT
from .end_window import EndWindow, slurm_kill_wait
from .gpu import Gpu
from ..identity import MARKER_VAR, boot_id, proc_create_time, run_members
from .notify import notify_end
from .self_watch import JUDGE_EVERY, SelfWatch
from .usage import EVERY, GroupUsage

# handed on to the command's process group; USR1/USR2 too, which Slurm's `scancel --signal` and the batch
# script pass on, and whose default would end the supervisor without exit.json
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
RESERVE_BYTES = 64 << 10  # the end's run.log line and exit.json, with room to spare on any block size


def _reserve(run_dir: Path) -> Path | None:
    """Hold RESERVE_BYTES of the run dir's file system (written, not sparse) until the command ends, so a
    command that fills the disk still gets its end written. None when even that does not fit."""
    path = run_dir / RESERVE
    try:
        with open(path, "wb") as fh:
            fh.write(b"\0" * RESERVE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
        return path
    except OSError:
        path.unlink(missing_ok=True)
        return None


def _say(text: str) -> None:
    """A line in run.log that a full disk may refuse: then it is lost, never a traceback."""
    try:
        print(f"[mihd supervise] {time.strftime('%Y-%m-%d %H:%M:%S')} {text}", flush=True)
    except OSError:
        pass


def _end(run_dir: Path, reserve: Path | None, rc: int, forwarded: list[str], outcome: dict | None = None) -> None:
    """Release the reserve, then write exit.json and say how the command ended (`outcome`: who ended it, where
    the supervisor knows: Slurm's time limit, end_window.py). A command that failed
    without a result while the disk was full gets that said in exit.json's error (its own words may not
    have reached run.log). A run dir that cannot take exit.json (made read-only meanwhile) gets the end
    said in run.log, whole, instead: never a traceback."""
    try:
        free = shutil.disk_usage(run_dir).free
    except OSError:
        free = RESERVE_BYTES
    if reserve is not None:
        try:
            reserve.unlink(missing_ok=True)
        except OSError:  # its folder is read-only: the reserve is left, the end is said below
            pass
    sig_name = signal.Signals(-rc).name.removeprefix("SIG") if rc < 0 else None
    ended = {"code": rc if rc >= 0 else None, "signal": sig_name, "ended": round(time.time(), 3),
             "forwarded": forwarded, **({"outcome": outcome} if outcome else {})}
    if rc != 0 and free < RESERVE_BYTES and not (run_dir / RESULT).exists():
        ended["error"] = f"no result: the file system of its run dir is full ({free} bytes free)"
    how = f"signal {sig_name}" if sig_name else f"exit code {rc}"
    _say(f"ended with {how}" + "".join(f"; {w}" for w in (ended.get("error"), (outcome or {}).get("note")) if w))
    try:
        write_json_atomic(run_dir / EXIT, ended)
    except OSError as exc:
        _say(f"cannot write {EXIT} ({exc.strerror or exc}); it would say {json.dumps(ended)}")
    notify_end(run_dir, ended)  # after exit.json: the hooks read a settled run dir


def _stop_leftovers(marker: str, window: EndWindow) -> int:
    """When the command has ended, end what it left running too (TERM, then KILL when `window` says): the
    members of our session (when it is ours) and every process carrying the run's marker."""
    me = os.getpid()
    sid = me if os.getsid(0) == me else None  # a batch script's session is not ours to empty

    def members() -> list[int]:
        return list(run_members(sid=sid, marker=marker, exclude=(me,)))

    pids = members()
    found = len(pids)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        started = time.monotonic()
        while pids and time.monotonic() < window.until(started, killing=sig == signal.SIGKILL):
            time.sleep(0.05)
            pids = members()
    return found


def _open_log(run_dir: Path) -> None:
    """Point fds 0/1/2 at /dev/null and run.log, so the command (and we) write there."""
    log_fd = os.open(run_dir / LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)  # umask decides (a lab group)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    for fd in (log_fd, null_fd):
        if fd > 2:
            os.close(fd)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)


def _wait_measuring(child: subprocess.Popen | Forked, run_dir: Path, window: EndWindow,
                    watch: SelfWatch | None = None) -> int:
    """Wait for the command, writing its process group's usage.json every EVERY seconds and at the end, and
    judging the run late or overrunning (`watch`, self_watch.py) every JUDGE_EVERY seconds meanwhile; a
    command still running when `window` says its time is up is KILLed."""
    usage, rc, failed = None, None, False
    while True:
        try:
            usage = usage or GroupUsage(child.pid, gpu=Gpu())
            usage.write(run_dir, ended=rc is not None)
        except Exception as exc:  # measuring (a full disk, an odd /proc) must never end the run it measures
            if not failed:
                _say(f"cannot measure usage: {type(exc).__name__}: {exc}")
            failed = True
        if rc is not None:
            return rc
        until = time.monotonic() + EVERY
        while rc is None and time.monotonic() < until:
            try:
                rc = child.wait(timeout=max(min(JUDGE_EVERY, until - time.monotonic(), window.command_left()), 0.01))
            except subprocess.TimeoutExpired:
                if window.hurry(child.pid):
                    _say("KILLed the command: it outlived the time left before Slurm's KILL")
                watch = _judged(watch) if watch is not None else None


def _judged(watch: SelfWatch) -> SelfWatch | None:
    """One judgement of the run; a judgement that fails (a damaged spec.json) is said once and not tried
    again: it must never end the run it judges."""
    try:
        watch.check(time.time())
        return watch
    except Exception as exc:
        _say(f"cannot judge the run late or overrunning: {type(exc).__name__}: {exc}")
        return None


class Forked:
    """A forked child, waited on like a subprocess.Popen (returncode: -N when signal N ended it)."""

    def __init__(self, pid: int):
        self.pid, self.returncode = pid, None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.05)
        return self.returncode


def fork_calling(entry: Callable[[], int], env: dict[str, str], process_group: bool = True) -> Forked:
    """Fork a child that runs `entry()` with `env` as its environment (and, by default, in a process group
    of its own) and exits with its return code; signals are back to their defaults there."""
    pid = os.fork()
    if pid:
        if process_group:  # here too, as shells do: the group exists before anyone may signal it
            try:
                os.setpgid(pid, pid)
            except OSError:
                pass
        return Forked(pid)
    code = 1
    try:
        if process_group:
            os.setpgid(0, 0)
        for sig in FORWARDED:
            signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(env)
        code = entry()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code if isinstance(code, int) else 1)


def supervise(run_dir: Path, argv: list[str], entry: Callable[[], int] | None = None) -> int:
    run_dir = Path(run_dir)
    try:
        os.setsid()
    except OSError:
        pass  # already a session / process group leader: keep it
    _open_log(run_dir)
    pid = os.getpid()
    ident = {
        "pid": pid,
        "create_time": proc_create_time(pid),
        "sid": os.getsid(0),
        "host": socket.gethostname(),
        "boot_id": boot_id(),
        "uid": os.getuid(),
        "user": getpass.getuser(),
        "started": round(time.time(), 3),
        "argv": argv,
        "marker": secrets.token_hex(8),  # in the command's environment: finds its processes wherever they go
    }
    forwarded: list[str] = []
    child: subprocess.Popen | Forked | None = None
    window = EndWindow()

    def forward(signum, _frame):
        forwarded.append(signal.Signals(signum).name)
        if signum == signal.SIGTERM:
            window.termed()
        if child is not None:
            try:
                os.killpg(child.pid, signum)
            except ProcessLookupError:
                pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    reserve = _reserve(run_dir)
    write_json_atomic(run_dir / PROC, ident)
    _say(f"start: {' '.join(argv)}")
    env = {**os.environ, MARKER_VAR: ident["marker"]}
    try:
        child = fork_calling(entry, env) if entry else subprocess.Popen(argv, process_group=0, close_fds=True, env=env)
    except OSError as exc:
        _say(f"cannot start {argv[0]!r}: {exc}")
        if reserve is not None:
            reserve.unlink(missing_ok=True)
        write_json_atomic(run_dir / EXIT, {"code": 127, "signal": None, "error": str(exc),
                                           "ended": round(time.time(), 3), "forwarded": []})
        return 127
    try:
        write_json_atomic(run_dir / PROC, {**ident, "child_pid": child.pid, "child_pgid": child.pid,
                                           "child_create_time": proc_create_time(child.pid)})
    except OSError as exc:  # the command runs regardless: watched through the supervisor alone
        _say(f"cannot record the command in {PROC}: {exc.strerror or exc}")
    if forwarded:  # a signal arrived before the child existed
        os.killpg(child.pid, signal.Signals[forwarded[-1]])
    window.kill_wait = slurm_kill_wait()  # asked while the command already runs: it never delays it
    watch = SelfWatch(run_dir, ident["started"])
    rc = _wait_measuring(child, run_dir, window, watch)
    left = _stop_leftovers(ident["marker"], window)
    if left:
        _say(f"stopped {left} leftover processes of the run")
    _end(run_dir, reserve, rc, forwarded, window.slurm_outcome(time.time() - ident["started"], watch.time_limit_s))
    return rc if rc >= 0 else 128 - rc


def main(args: list[str]) -> int:
    detach = bool(args) and args[0] == "--detach"
    args = args[1:] if detach else args
    if len(args) < 3 or args[1] != "--":
        print("usage: python -m mihd.runs.supervise [--detach] RUN_DIR -- argv...", file=sys.stderr)
        return 2
    if detach and os.fork() > 0:
        os._exit(0)  # the launcher reaps this one at once; the grandchild carries on
    return supervise(Path(args[0]), args[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
