"""The local backend: the supervisor runs detached on this machine; psutil watches and stops it.

Identity is (pid, create time, host): a pid alone can be reused by an unrelated process after the run
ends, so every check compares the create time too, and nothing is ever signalled on a mismatch.
"""

from __future__ import annotations

import os
import signal as _signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from ...errors import MihdError
from ...jsonio import read_json
from ...rundir import EXIT
from ..supervise import PROC
from .base import GONE, QUEUED, RUNNING, UNKNOWN, RunState

CTIME_TOLERANCE = 0.1  # seconds; both sides compute create time from the same /proc fields
SUBMIT_WAIT = 2.0      # how long submit waits for the supervisor to record itself
START_TIMEOUT = 30.0   # a supervisor not recorded by then never started: the run is lost


def live_process(pid: int | None, create_time: float | None) -> psutil.Process | None:
    """The process with this pid *and* create time, alive and not a zombie; else None."""
    if not pid:
        return None
    try:
        proc = psutil.Process(pid)
        if create_time is not None and abs(proc.create_time() - create_time) > CTIME_TOLERANCE:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _session_members(sid: int, exclude: int) -> list[psutil.Process]:
    """Every process in session `sid` (the supervisor's): children, grandchildren, even re-parented ones."""
    found = []
    for p in psutil.process_iter():
        if p.pid == exclude:
            continue
        try:
            if os.getsid(p.pid) == sid:
                found.append(p)
        except OSError:
            pass
    return found


class Backend:
    name = "local"

    def __init__(self):
        self.host = socket.gethostname()

    def submit(self, run_dir: Path, argv: list[str], options: dict) -> dict:
        env = dict(os.environ)
        pkg_parent = str(Path(__file__).resolve().parents[3])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH")) if p)
        cmd = [sys.executable, "-m", "mihd.runs.supervise", "--detach", str(run_dir), "--", *argv]
        first = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True,
                                 env=env, cwd=options.get("cwd"))
        first.wait()  # exits right after forking the real supervisor: nothing left to reap later
        handle = {"backend": self.name, "run_dir": str(run_dir), "host": self.host,
                  "submitted": round(time.time(), 3)}
        deadline = time.monotonic() + float(options.get("submit_wait", SUBMIT_WAIT))
        while time.monotonic() < deadline:
            ident = read_json(Path(run_dir) / PROC)
            if ident:
                return {**handle, **_ident_fields(ident)}
            time.sleep(0.01)
        return handle

    def _handle_from_dir(self, handle: dict) -> dict:
        ident = read_json(Path(handle["run_dir"]) / PROC)
        return {**handle, **_ident_fields(ident)} if ident else handle

    def poll(self, handles: dict[str, dict]) -> dict[str, RunState]:
        states = {}
        for run_id, handle in handles.items():
            fresh = handle if handle.get("child_pid") else self._handle_from_dir(handle)
            changed = fresh if fresh != handle else None
            if fresh.get("host") not in (None, self.host):
                states[run_id] = RunState(UNKNOWN, reason=f"runs on {fresh['host']}", handle=changed)
            elif not fresh.get("pid"):
                late = time.time() - fresh.get("submitted", time.time()) > START_TIMEOUT
                states[run_id] = RunState(GONE, reason="supervisor never started", handle=changed) if late \
                    else RunState(QUEUED, reason="supervisor starting", handle=changed)
            elif live_process(fresh["pid"], fresh.get("create_time")):
                states[run_id] = RunState(RUNNING, started=fresh.get("started"), handle=changed)
            else:
                states[run_id] = RunState(GONE, started=fresh.get("started"), handle=changed)
        return states

    def process_root(self, handle: dict) -> tuple[int, float] | None:
        if handle.get("host") not in (None, self.host) or not handle.get("pid"):
            return None
        return handle["pid"], handle.get("create_time")

    def _checked(self, pid: int | None, ctime: float | None, what: str) -> psutil.Process | None:
        """The process if it is still ours; None if gone; MihdError if the pid was reused or is not ours."""
        if not pid:
            return None
        try:
            proc = psutil.Process(pid)
            actual = proc.create_time()
            uid = proc.uids().real
        except psutil.NoSuchProcess:
            return None
        if ctime is not None and abs(actual - ctime) > CTIME_TOLERANCE:
            raise MihdError(f"{what} pid {pid}: now belongs to another process (pid reused); not signalling")
        if uid != os.getuid():
            raise MihdError(f"{what} pid {pid}: belongs to another user (uid {uid}); not signalling")
        return None if proc.status() == psutil.STATUS_ZOMBIE else proc

    def kill(self, handle: dict, signal: str, grace: float) -> dict:
        handle = self._handle_from_dir(handle)
        if handle.get("host") not in (None, self.host):
            raise MihdError(f"run on host {handle['host']}: kill it from that machine")
        if not handle.get("pid"):
            raise MihdError(f"run in {handle['run_dir']}: its supervisor has not started yet; try again")
        sig = _signal.Signals[f"SIG{signal}"]
        direct = handle.get("pid") == handle.get("child_pid")  # a direct `mihd run`: no supervisor
        sup = None if direct else self._checked(handle.get("pid"), handle.get("create_time"), "supervisor")
        child = self._checked(handle.get("child_pid"), handle.get("child_create_time"), "run")
        sup_pid = sup.pid if sup else -1

        def targets() -> list[psutil.Process]:
            own_session = sup is not None and handle.get("sid") == sup.pid
            procs = {p.pid: p for p in _session_members(sup.pid, sup.pid)} if own_session else {}
            for root in (sup, child):
                if root is not None:
                    try:
                        procs.update({p.pid: p for p in root.children(recursive=True)})
                    except psutil.NoSuchProcess:
                        pass
            if child is not None:
                procs[child.pid] = child
            procs.pop(sup_pid, None)
            return _alive(list(procs.values()))

        def send(procs, s) -> None:
            if child is not None:
                try:
                    if os.getpgid(child.pid) == child.pid:
                        os.killpg(child.pid, s)  # the run's process group first, then any escapee
                except (ProcessLookupError, PermissionError):
                    pass
            for p in procs:
                try:
                    p.send_signal(s)
                except psutil.NoSuchProcess:
                    pass

        procs = targets()
        send(procs, sig)
        escalated = False
        deadline = time.monotonic() + (0 if sig == _signal.SIGKILL else grace)
        while True:
            procs = _alive(procs) + [p for p in targets() if p not in procs]
            if not procs or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        for _ in range(20):  # KILL until nothing of the run is left (new forks included)
            procs = targets()
            if not procs:
                break
            escalated = True
            send(procs, _signal.SIGKILL)
            time.sleep(0.05)
        survivors = len(targets())
        if sup is not None:  # the supervisor writes exit.json once its child is gone, then exits: wait for both
            exit_file = Path(handle["run_dir"]) / EXIT
            deadline = time.monotonic() + 5
            while _alive([sup]) and time.monotonic() < deadline:
                time.sleep(0.02)
            if _alive([sup]) and not exit_file.exists():
                sup.kill()
        return {"signal": signal, "escalated": escalated, "survivors": survivors}


def _ident_fields(ident: dict) -> dict:
    keys = ("pid", "create_time", "sid", "host", "uid", "started", "child_pid", "child_create_time")
    return {k: ident[k] for k in keys if ident.get(k) is not None}
