"""The supervisor: `python -m mihd.runs.supervise [--detach] RUN_DIR -- argv...`.

It owns one run: it becomes a session leader (so the run outlives the terminal, SSH link or dashboard
that started it), starts the command in a process group of its own with stdout+stderr appended to
`run.log`, forwards TERM/INT/HUP to that group, waits, and writes `exit.json`. Its identity (pid and
process create time) goes to `proc.json` so any later watcher can find and check it. While it waits it
keeps `usage.json` (CPU, RSS, GPU memory and their peaks; see usage.py) every few seconds.

`--detach` forks once more and lets the first process exit at once, so the launcher (a long-lived
dashboard, say) never has to reap it and never keeps a zombie. A Slurm batch script runs it without
`--detach`. This module stays light: standard library only, no psutil, no SQLite (NVML only if a GPU answers).
"""

from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..jsonio import write_json_atomic
from ..rundir import EXIT, LOG
from .gpu import Gpu
from .usage import EVERY, GroupUsage, live_processes

PROC = "proc.json"  # supervisor identity, written by the supervisor once it runs
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def proc_create_time(pid: int) -> float | None:
    """The process create time as psutil computes it (boot time + start ticks), without psutil."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        with open("/proc/stat", "rb") as fh:
            btime = next(float(line.split()[1]) for line in fh if line.startswith(b"btime"))
    except (OSError, StopIteration, ValueError):
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _session_pids() -> list[int]:
    """Live processes of our session but us: what the run started and left behind."""
    me = os.getpid()
    return [pid for pid, fields in live_processes() if pid != me and int(fields[3]) == me]  # fields[3]: session


def _stop_leftovers(grace: float = 5.0) -> int:
    """When the command has ended, end what it left running too (TERM, then KILL after `grace`)."""
    if os.getsid(0) != os.getpid():
        return 0  # not our own session (e.g. a batch script kept its own): leave it alone
    pids = _session_pids()
    found = len(pids)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            time.sleep(0.05)
            pids = _session_pids()
    return found


def _open_log(run_dir: Path) -> None:
    """Point fds 0/1/2 at /dev/null and run.log, so the command (and we) write there."""
    log_fd = os.open(run_dir / LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    for fd in (log_fd, null_fd):
        if fd > 2:
            os.close(fd)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)


def _wait_measuring(child: subprocess.Popen, run_dir: Path) -> int:
    """Wait for the command, writing its process group's usage.json every EVERY seconds and at the end."""
    usage, rc, failed = None, None, False
    while True:
        try:
            usage = usage or GroupUsage(child.pid, gpu=Gpu())
            usage.write(run_dir, ended=rc is not None)
        except Exception as exc:  # measuring (a full disk, an odd /proc) must never end the run it measures
            if not failed:
                print(f"[mihd supervise] cannot measure usage: {type(exc).__name__}: {exc}", flush=True)
            failed = True
        if rc is not None:
            return rc
        try:
            rc = child.wait(timeout=EVERY)
        except subprocess.TimeoutExpired:
            continue


def supervise(run_dir: Path, argv: list[str]) -> int:
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
        "uid": os.getuid(),
        "user": getpass.getuser(),
        "started": round(time.time(), 3),
        "argv": argv,
    }
    forwarded: list[str] = []
    child: subprocess.Popen | None = None

    def forward(signum, _frame):
        forwarded.append(signal.Signals(signum).name)
        if child is not None:
            try:
                os.killpg(child.pid, signum)
            except ProcessLookupError:
                pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    write_json_atomic(run_dir / PROC, ident)
    print(f"[mihd supervise] {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(argv)}", flush=True)
    try:
        child = subprocess.Popen(argv, process_group=0, close_fds=True)
    except OSError as exc:
        print(f"[mihd supervise] cannot start {argv[0]!r}: {exc}", flush=True)
        write_json_atomic(run_dir / EXIT, {"code": 127, "signal": None, "error": str(exc),
                                           "ended": round(time.time(), 3), "forwarded": []})
        return 127
    write_json_atomic(run_dir / PROC, {**ident, "child_pid": child.pid,
                                       "child_create_time": proc_create_time(child.pid)})
    if forwarded:  # a signal arrived before the child existed
        os.killpg(child.pid, signal.Signals[forwarded[-1]])
    rc = _wait_measuring(child, run_dir)
    left = _stop_leftovers()
    if left:
        print(f"[mihd supervise] stopped {left} leftover processes of the run", flush=True)
    ended = round(time.time(), 3)
    sig_name = signal.Signals(-rc).name.removeprefix("SIG") if rc < 0 else None
    write_json_atomic(run_dir / EXIT, {"code": rc if rc >= 0 else None, "signal": sig_name,
                                       "ended": ended, "forwarded": forwarded})
    how = f"signal {sig_name}" if sig_name else f"exit code {rc}"
    print(f"[mihd supervise] {time.strftime('%Y-%m-%d %H:%M:%S')} ended with {how}", flush=True)
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
