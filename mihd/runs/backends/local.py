"""The local backend: the supervisor runs detached on this machine; /proc and psutil watch and stop it.

Everything is read from the run dir's `proc.json` (identity.py): the supervisor and the command each by
(pid, create time, host, boot id), all or nothing. A run whose supervisor died while its command goes on
is `orphaned`, still watched and still killable. A kill keeps every process it signalled and signals
them all again when it escalates to KILL, so a process that left the session or the tree since is not
forgotten; what is still alive at the end is counted and named.
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
from ...rundir import EXIT, PROC, SPEC, RunFileError, load_file
from ...identity import CTIME_TOLERANCE, alive, elsewhere, run_members
from ..fanout import parallel_option
from .base import GONE, ORPHANED, QUEUED, RUNNING, UNKNOWN, Option, RunState

SUBMIT_WAIT = 2.0      # how long submit waits for the supervisor to record itself
START_TIMEOUT = 30.0   # a supervisor not recorded by then never started: the run is lost


def _submitted(handle: dict) -> float:
    """When the run was handed over; a watcher may see the run dir before launch has written handle.json,
    and then the spec's write time stands in (never 0, which would read as 'never started')."""
    if handle.get("submitted"):
        return handle["submitted"]
    try:
        return (Path(handle["run_dir"]) / SPEC).stat().st_mtime
    except OSError:
        return time.time()
KILL_ROUNDS = 20       # KILL rounds after escalation, for processes forking while being killed
IDENTS_KEPT = 4096     # proc.json files kept read (a run's is small): forgotten all at once past this


def _alive(procs) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:  # is_running compares create times
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _name(p: psutil.Process) -> str:
    try:
        return f"{p.pid} {p.name()}"
    except psutil.NoSuchProcess:
        return str(p.pid)


class Backend:
    name = "local"
    options = (Option("parallel", str, metavar="N|auto", validate=parallel_option,
                      help="a grid's cells as N worker processes (default auto: one per GPU when several, else per "
                           "allowed core; 1: the grid as one process)"),)

    def __init__(self):
        self.host = socket.gethostname()
        self._idents: dict[Path, tuple[tuple, dict | None, str | None]] = {}

    def _ident(self, run_dir: Path) -> tuple[dict | None, str | None]:
        """The run's proc.json and why its processes cannot be this machine's (elsewhere), read again only when
        the file changed: it is written at start and once more when the command starts, and a dashboard asks
        for every live run at each refresh. Raises RunFileError as load_file does."""
        path = Path(run_dir) / PROC
        try:
            st = path.stat()
        except OSError:  # absent (not started) or unreadable: load_file says which
            self._idents.pop(path, None)
            ident = load_file(run_dir, PROC)
            return ident, ident and elsewhere(ident)
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        known = self._idents.get(path)
        if known is None or known[0] != stamp:
            ident = load_file(run_dir, PROC)
            if len(self._idents) >= IDENTS_KEPT:
                self._idents.clear()
            known = self._idents[path] = (stamp, ident, ident and elsewhere(ident))
        return known[1], known[2]

    def submit(self, run_dir: Path, argv: list[str], options: dict) -> dict:
        env = dict(os.environ)
        pkg_parent = str(Path(__file__).resolve().parents[3])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH")) if p)
        cmd = [sys.executable, "-m", "mihd.runs.supervise", "--detach", str(run_dir), "--", *argv]
        first = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True, env=env)
        first.wait()  # exits right after forking the real supervisor: nothing left to reap later
        deadline = time.monotonic() + SUBMIT_WAIT
        while not (Path(run_dir) / PROC).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return {"backend": self.name, "host": self.host, "submitted": round(time.time(), 3)}

    # -- state ------------------------------------------------------------------------------------
    def poll(self, handles: dict[str, dict]) -> dict[str, RunState]:
        return {run_id: self._state(handle) for run_id, handle in handles.items()}

    def _state(self, handle: dict) -> RunState:
        try:
            ident, where = self._ident(handle["run_dir"])
        except RunFileError as exc:
            return RunState(UNKNOWN, reason=str(exc))
        if not ident:
            late = time.time() - _submitted(handle) > START_TIMEOUT
            return RunState(GONE, reason="supervisor never started") if late \
                else RunState(QUEUED, reason="supervisor starting")
        if where and where.startswith("host "):
            return RunState(UNKNOWN, reason=f"runs on {where}")
        if where:
            return RunState(GONE, started=ident.get("started"), reason=f"its processes cannot be told here ({where})")
        if alive(ident["pid"], ident.get("create_time")):
            return RunState(RUNNING, started=ident.get("started"))
        if ident.get("child_pid") != ident["pid"] and alive(ident.get("child_pid"), ident.get("child_create_time")):
            return RunState(ORPHANED, started=ident.get("started"),
                            reason=f"its supervisor is gone; the command (pid {ident['child_pid']}) runs on")
        return RunState(GONE, started=ident.get("started"))

    def process_root(self, handle: dict) -> tuple[int, float] | None:
        try:
            ident, where = self._ident(handle["run_dir"])
        except RunFileError:
            return None
        if not ident or where:
            return None
        for pid, ctime in ((ident["pid"], ident.get("create_time")),
                           (ident.get("child_pid"), ident.get("child_create_time"))):
            if alive(pid, ctime):
                return pid, ctime
        return None

    # -- kill -------------------------------------------------------------------------------------
    @staticmethod
    def _own(pid: int | None, ctime: float | None, what: str) -> tuple[psutil.Process | None, str | None]:
        """(the process if it is still this run's, else None; why not, when its pid is taken by another).
        Raises MihdError when the pid is there but cannot be told apart (no create time) or is another user's."""
        if not pid:
            return None, None
        try:
            proc = psutil.Process(pid)
            actual, uid, zombie = proc.create_time(), proc.uids().real, proc.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return None, None
        if zombie:
            return None, None
        if ctime is None:
            raise MihdError(f"{what} pid {pid}: no create time recorded, so it cannot be told from another "
                            "process; not signalling")
        if abs(actual - ctime) > CTIME_TOLERANCE:
            return None, f"{what} pid {pid}: now belongs to another process (pid reused); not signalling"
        if uid != os.getuid():
            raise MihdError(f"{what} pid {pid}: belongs to another user (uid {uid}); not signalling")
        return proc, None

    def kill(self, handle: dict, signal: str, grace: float) -> dict:
        run_dir = Path(handle["run_dir"])
        ident = load_file(run_dir, PROC)
        if not ident:
            raise MihdError(f"run {run_dir.name}: its supervisor has not started yet; try again")
        where = elsewhere(ident)
        if where:
            hint = "kill it from that machine" if where.startswith("host ") else "not signalling"
            raise MihdError(f"run {run_dir.name}: its processes were recorded on {where}; {hint}")
        direct = ident["pid"] == ident.get("child_pid")  # a direct `mihd run`: no supervisor
        sup, sup_why = (None, None) if direct else self._own(ident["pid"], ident.get("create_time"), "supervisor")
        child, child_why = self._own(ident.get("child_pid"), ident.get("child_create_time"), "command")
        if sup is None and child is None:
            raise MihdError(child_why or sup_why or f"run {run_dir.name}: none of its processes runs; nothing to kill")
        sig = _signal.Signals[f"SIG{signal}"]
        sid = ident.get("sid")  # the supervisor's own session only (a direct run's is the user's terminal)
        own_session = not direct and sid == ident["pid"] and (sup is not None or os.getsid(child.pid) == sid)
        sid = sid if own_session else None
        members = dict(sid=sid, pgid=ident.get("child_pgid") if child else None,
                       marker=ident.get("marker"), exclude=(sup.pid,) if sup else ())
        outside: dict[int, str] = {}  # found outside the run's session (a double-forked daemon): named in the report

        def discover() -> dict[int, psutil.Process]:
            found = {}
            for pid in run_members(**members):
                try:
                    found[pid] = psutil.Process(pid)
                except psutil.NoSuchProcess:
                    pass
            for root in (sup, child):
                try:
                    found.update({p.pid: p for p in root.children(recursive=True)} if root else {})
                except psutil.NoSuchProcess:
                    pass
            if child is not None:
                found[child.pid] = child
            found.pop(sup.pid if sup else -1, None)
            for pid, p in found.items():
                try:
                    if sid is not None and os.getsid(pid) != sid:
                        outside.setdefault(pid, _name(p))
                except ProcessLookupError:
                    pass
            return found

        signalled: dict[int, psutil.Process] = {}

        def send(procs: dict[int, psutil.Process], s) -> None:
            for p in procs.values():
                try:
                    p.send_signal(s)  # psutil refuses a pid that now belongs to another process
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            signalled.update(procs)

        send(discover(), sig)
        deadline = time.monotonic() + (0 if sig == _signal.SIGKILL else grace)
        while True:
            new = {pid: p for pid, p in discover().items() if pid not in signalled}
            send(new, sig)  # forked since: they get the same signal
            if not _alive(signalled.values()) or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        escalated = False
        for _ in range(KILL_ROUNDS):  # every process signalled once, and any found since, until none is left
            left = {p.pid: p for p in _alive([*signalled.values(), *discover().values()])}
            if not left:
                break
            escalated = escalated or sig != _signal.SIGKILL
            send(left, _signal.SIGKILL)
            time.sleep(0.05)
        left = _alive({**signalled, **discover()}.values())
        if sup is not None:  # the supervisor writes exit.json once its child is gone, then exits: wait for both
            deadline = time.monotonic() + 5
            while _alive([sup]) and time.monotonic() < deadline:
                time.sleep(0.02)
            if _alive([sup]) and not (run_dir / EXIT).exists():
                sup.kill()
        return {"signal": signal, "escalated": escalated, "survivors": len(left), "left": [_name(p) for p in left],
                "signalled": len(signalled), "outside": list(outside.values())}
