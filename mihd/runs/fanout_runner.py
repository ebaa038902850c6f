"""The local runner of a fanned-out grid (`python -m mihd.cli.fanout_entry local GRID_DIR --root R`, the grid's
supervised command): N worker slots, each running one part at a time under its own supervisor, with
MIHD_THREADS = allowed cores // N and, when several GPUs are visible, one GPU per slot.

No part's fault costs another part its work: a waiting part whose run dir is damaged or gone is not started
and fails alone, saying why (in its exit.json, and the grid's run.log); a part whose supervisor died while its
command runs on is `orphaned` and keeps its slot until the command ends (never two trainings on one slot),
then its exit.json is written on its behalf from what it left (its result, else why there is none).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Callable

from ..errors import MihdError
from ..jsonio import read_json, write_json_atomic
from ..rundir import EXIT, HANDLE, PROC, RESULT, SPEC, EventLog, RunFileError, load_file, read_plan
from .fanout import (CELLS, ENTRY, EXTRACT, EXTRACT_SPEC, POLL_S, mark_never_started, parts, read_fanout,
                     start_order, visible_gpus)

BY = "its grid's runner"


def warm_up(preload: tuple[str, ...]) -> None:
    """Import once what every part needs (`preload`, module names its entry gives: a fork of this process then
    starts a part in milliseconds, not the seconds these imports take), with the runtimes' thread pools sized as
    the CLI sizes them."""
    import importlib

    from ..compute import quiet_waiting

    quiet_waiting()
    for name in preload:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional part (torch on a slim install): the part imports it, or says why
            pass


def part_entry(argv: list[str], cell_main: Callable[[list[str], dict | None], int], fan: dict | None = None):
    """The in-process equivalent of a part's command `python -m MODULE ARGS...`, run with its share of threads
    (MIHD_THREADS of its environment): `mihd ...` run as the interpreter would run it, a cell's command
    (fanout.ENTRY) as `cell_main(ARGS, fan)`, its entry's main handed the runner's layout (what fanout.json said
    at the start), so a fanout.json damaged meanwhile costs it nothing."""
    module, args = argv[2], argv[3:]

    def entry() -> int:
        from ..compute import configure_torch, quiet_waiting

        quiet_waiting()  # this part's thread counts in its environment, as its own interpreter would set them
        try:
            configure_torch()  # the pools were sized for the runner; this part's share is MIHD_THREADS
        except ImportError:
            pass
        except MihdError as exc:
            print(f"mihd: error: {exc}", file=sys.stderr)
            return 2
        if module == ENTRY:
            return cell_main(args, fan)
        import runpy

        sys.argv = [sys.argv[0], *args]
        runpy.run_module(module, run_name="__main__", alter_sys=True)  # `python -m mihd` ends in sys.exit
        return 0

    return entry


def part_argv(name: str, run_dir: Path) -> list[str]:
    """The command part `name` runs, from its own files; a MihdError says why it cannot run (its run dir is
    gone, its spec.json or extract.json is damaged)."""
    if not run_dir.is_dir():
        raise MihdError(f"{name}: its run dir is gone")
    if name.startswith(EXTRACT):
        what = read_json(run_dir / EXTRACT_SPEC)
        argv = what.get("argv") if isinstance(what, dict) else None
        where = EXTRACT_SPEC
    else:
        argv = (load_file(run_dir, SPEC) or {}).get("argv")
        where = SPEC
    if not (isinstance(argv, list) and len(argv) > 2 and all(isinstance(a, str) for a in argv)):
        raise MihdError(f"{name}/{where}: missing or has no command to run")
    return argv


def settle(run_dir: Path, why: str) -> dict:
    """exit.json on behalf of a part whose supervisor is gone (`why`) and whose command ended: its result says
    how it went (code 0 when ok); without one, `error` says that nothing says (no exit code to trust)."""
    result = read_json(run_dir / RESULT)
    status = result.get("status") if isinstance(result, dict) else None
    ended = {"code": {"ok": 0, "failed": 1}.get(status), "signal": None, "ended": round(time.time(), 3),
             "forwarded": [], "written_by": BY,
             "error": None if status else f"{why}, and its command ended without a result"}
    write_json_atomic(run_dir / EXIT, ended)
    return ended


class Orphan:
    """A part's command running on after its supervisor died: it holds its slot until it ends."""

    def __init__(self, ident: dict, why: str):
        self.pid, self.ctime, self.pgid = ident["child_pid"], ident.get("child_create_time"), ident.get("child_pgid")
        self.why, self.returncode = why, None

    def poll(self) -> int | None:
        from ..identity import alive

        return None if alive(self.pid, self.ctime) else 0

    def send(self, signum: int) -> None:
        try:
            os.killpg(self.pgid, signum) if self.pgid else os.kill(self.pid, signum)
        except ProcessLookupError:
            pass


class LocalRunner:
    """Runs a fanned-out grid's parts in `lanes` worker slots, extractions first, each cell once the
    extractions it needs are over. The runner is warm (warm_up): each part is a fork of it, under a
    supervisor of its own as any run. TERM/INT/HUP: start nothing more, pass the signal to the running
    parts (their supervisors, or an orphan's process group), mark the parts never started as killed.
    From the entry that starts it: `cell_main(args, fan)`, what a cell's command (`python -m fanout.ENTRY cell
    ...`) runs, and `preload`, the modules the parts import (warm_up)."""

    def __init__(self, grid_dir: Path, root: Path, cell_main: Callable[[list[str], dict | None], int],
                 preload: tuple[str, ...]):
        from ..compute import allowed_cores
        from ..identity import MARKER_VAR

        self.grid_dir, self.root, self.cell_main, self.preload = Path(grid_dir), Path(root), cell_main, preload
        self.fan = read_fanout(self.grid_dir)  # held from the start, as the plan: a file damaged later costs nothing
        self.plan = read_plan(self.grid_dir)
        if self.plan is None:
            raise MihdError(f"{self.grid_dir / SPEC}: missing or damaged; the grid cannot run")
        self.lanes = max(1, int(self.fan.get("lanes") or 1))
        self.threads = max(1, allowed_cores()[0] // self.lanes)
        gpus = visible_gpus()
        self.gpus = gpus if len(gpus) > 1 else []
        self.env = {k: v for k, v in os.environ.items() if k != MARKER_VAR}  # a part is not the runner's process
        self.stopped: str | None = None
        self.running: dict[int, tuple[str, Path, object]] = {}
        self.unfinished: set[str] = set()  # extractions not over yet (a cell needing one waits)

    def say(self, text: str) -> None:
        print(f"[mihd grid] {time.strftime('%H:%M:%S')} {text}", flush=True)

    def _ready(self, name: str) -> bool:
        if not name.startswith(CELLS):
            return True
        needs = self.fan["cells"][int(name.split("/")[1])]["needs"]
        return not any(f"{EXTRACT}/{k}" in self.unfinished for k in needs)

    def _start(self, slot: int, name: str, run_dir: Path):
        """Start part `name` in `slot` (its process, to poll), or None when it cannot run: then it fails
        alone, saying why, and the slot stays free."""
        import subprocess

        from .supervise import fork_calling, supervise

        try:
            argv = part_argv(name, run_dir)
            write_json_atomic(run_dir / HANDLE, {"backend": "local", "host": socket.gethostname(),
                                                "submitted": round(time.time(), 3), "slot": slot})
        except (MihdError, OSError) as exc:
            why = str(exc) if isinstance(exc, MihdError) else f"{name}: cannot be started ({exc.strerror or exc})"
            self.say(f"{name} not started: {why}")
            try:
                write_json_atomic(run_dir / EXIT, {"code": None, "signal": None, "ended": round(time.time(), 3),
                                                   "forwarded": [], "written_by": BY, "error": f"not started: {why}"})
            except OSError:
                pass  # its run dir is gone (or unwritable): the grid's view says so from what is missing
            return None
        env = {**self.env, "MIHD_THREADS": str(self.threads)}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
        gpu = f", GPU {env['CUDA_VISIBLE_DEVICES']}" if self.gpus else ""
        self.say(f"{name} on worker {slot} ({self.threads} thread{'s' if self.threads != 1 else ''}{gpu})")
        if argv[1:3] not in (["-m", "mihd"], ["-m", ENTRY]):  # not ours to run in process
            return subprocess.Popen([sys.executable, "-m", "mihd.runs.supervise", str(run_dir), "--", *argv],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, close_fds=True, env=env)
        entry = part_entry(argv, self.cell_main, self.fan)
        return fork_calling(lambda: supervise(run_dir, argv, entry), env, process_group=False)

    def _ended(self, slot: int, name: str, run_dir: Path, proc) -> None:
        """Part `name`'s process in `slot` ended: free the slot, unless its supervisor died while its command
        runs on (then the orphan holds the slot); a part left without exit.json gets one on its behalf."""
        if isinstance(proc, Orphan) or (run_dir / EXIT).exists():
            why = proc.why if isinstance(proc, Orphan) else None
        else:
            code = proc.returncode
            how = f"signal {signal.Signals(-code).name.removeprefix('SIG')}" if code < 0 else f"exit code {code}"
            why = f"its supervisor ended ({how})"
            try:
                ident = load_file(run_dir, PROC) or {}
            except RunFileError:
                ident = {}
            orphan = Orphan(ident, why) if ident.get("child_pid") else None
            if orphan and orphan.poll() is None:
                self.running[slot] = (name, run_dir, orphan)
                self.say(f"{name} orphaned: {why}; its command (pid {orphan.pid}) runs on, keeping worker {slot}")
                return
        del self.running[slot]
        self.unfinished.discard(name)
        if why and not (run_dir / EXIT).exists():
            try:
                ended = settle(run_dir, why)
            except OSError as exc:
                self.say(f"{name}: cannot write its exit.json ({exc.strerror or exc})")
            else:
                self.say(f"{name} ended ({ended['error'] or 'its result: exit code %s' % ended['code']})")
                return
        self.say(f"{name} ended ({proc.returncode})")

    def _on_signal(self, signum, _frame) -> None:
        self.stopped = signal.Signals(signum).name.removeprefix("SIG")
        for _, _, proc in list(self.running.values()):
            if isinstance(proc, Orphan):
                proc.send(signum)
                continue
            try:
                os.kill(proc.pid, signum)  # the part's supervisor forwards it to the part's process group
            except ProcessLookupError:
                pass

    def run(self) -> int:
        from .fanout_status import write_grid_result

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        warm_up(self.preload)
        everything = parts(self.grid_dir, self.fan)
        extractions = everything[:len(self.fan["extract"])]
        pending = extractions + [everything[len(extractions) + i] for i in start_order(self.fan)]
        self.unfinished = {name for name, _ in extractions}
        events = EventLog(self.grid_dir)
        events.emit("start", argv=[], cells=len(self.fan["cells"]), lanes=self.lanes)
        while pending or self.running:
            for slot, (name, run_dir, proc) in list(self.running.items()):
                if proc.poll() is not None:
                    self._ended(slot, name, run_dir, proc)
            if self.stopped:
                for _, run_dir in pending:
                    mark_never_started(run_dir, self.stopped, f"{BY}, stopped")
                pending = []
            for slot in range(self.lanes):
                while slot not in self.running and not self.stopped:
                    ready = next((p for p in pending if self._ready(p[0])), None)
                    if ready is None:
                        break
                    pending.remove(ready)
                    proc = None if (ready[1] / EXIT).exists() else self._start(slot, *ready)
                    if proc is None:  # killed before its turn, or it cannot run: the next one takes the slot
                        self.unfinished.discard(ready[0])
                    else:
                        self.running[slot] = (*ready, proc)
            time.sleep(POLL_S)
        try:
            result = write_grid_result(self.grid_dir, self.plan)
            status, error = result["status"], result["error"]
        except (MihdError, OSError) as exc:
            status, error = "failed", f"the grid's result.json cannot be written: {exc}"
            self.say(error)
        events.emit("end", status=status, **({"error": error} if error else {}))
        events.close()
        return 0 if status == "ok" and not self.stopped else 1
