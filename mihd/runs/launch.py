"""Launching a run: write its run dir and spec, hand it to a backend, index it, return its id at once.

The launched command is `python -m mihd exec-plan --run-dir RUN_DIR --root ROOT`, run by the supervisor:
it reads the RunSpec from the run dir's spec.json, writes events.jsonl and result.json into its own run
dir and outlives the launcher. Nothing is turned into command-line text and parsed back.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from ..errors import MihdError
from ..jsonio import write_json_atomic
from ..plan import RunSpec, device_users
from ..jsonio import read_json
from ..rundir import EXIT, HANDLE, PROC, SPEC, read_spec, write_spec
from ..workspace import resolve_root, runs_dir, write_error
from . import fanout, fanout_submit
from .backends import get_backend, resolve_options
from .forecast import KEY, forecast
from .registry import Registry
from .stages import ShareBook
from .supervise import RESERVE_BYTES, boot_id, proc_create_time


NOTHING_MADE = "no run dir is left"
START_ROOM = 4 * RESERVE_BYTES  # free space a run must find: the supervisor's reserve, its spec, events and log


def new_run_id(now: float | None = None) -> str:
    """`20250101-093012-345-a1b2c3`: sorts by creation time (ms), unique by its random tail."""
    now = time.time() if now is None else now
    secs, ms = divmod(int(round(now * 1000)), 1000)
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(secs)) + f"-{ms:03d}-{secrets.token_hex(3)}"


def _check_room(root: Path, folder: Path) -> None:
    """Refuse a run its disk cannot hold from start to end (its files and the supervisor's reserve for a
    failure's exit.json): started there, it could not even say why it failed and would read `lost`."""
    while not folder.exists() and folder != folder.parent:  # a direct run's runs/ may not be made yet
        folder = folder.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return  # not made yet or not readable: the writes that follow say what is wrong
    free = st.f_bavail * st.f_frsize
    if free < START_ROOM:
        raise MihdError(f"--root {root}: cannot start a run: no space left on its disk ({free >> 10} kB free, "
                        f"a run needs {START_ROOM >> 10} kB to start); {NOTHING_MADE}")


def _make_run_dir(root: Path) -> tuple[str, Path]:
    """A new, empty run dir; a full or read-only workspace is one line naming --root, and nothing is made."""
    base = runs_dir(root)
    try:
        base.mkdir(parents=True, exist_ok=True)
        _check_room(root, base)
        while True:
            run_id = new_run_id()
            try:
                (base / run_id).mkdir()
                return run_id, base / run_id
            except FileExistsError:
                continue
    except OSError as exc:
        raise write_error(root, exc, "start a run", NOTHING_MADE) from None


@contextmanager
def _until_started(root: Path, run_dir: Path, made: bool = True):
    """Until the run is handed to its backend, a failure (a full disk, Ctrl-C) removes the run dir this process
    `made`: nothing half-written is left, which no listing would show and `runs rm` could not find. A failure the
    backend recorded in the run's exit.json (sbatch refused the job) stays, a failed run that says why."""
    try:
        yield
    except BaseException as exc:
        if made and not (run_dir / EXIT).exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        if isinstance(exc, OSError):
            raise write_error(root, exc, "start a run", NOTHING_MADE) from None
        raise


def _cached(root: Path, spec: RunSpec, cached) -> tuple:
    """Whether each cell's inputs are cached now (part of the signature the ETA history uses): as the
    caller knows it (the dashboard), else looked up once in the cache's metadata."""
    if cached is not None:
        if len(cached) != len(spec.cells):
            raise MihdError(f"launch: {len(cached)} cached flags for {len(spec.cells)} cells")
        return tuple(cached)
    from ..inventory import cells_cached

    return cells_cached(root, spec.cells)


def _check_device(spec: RunSpec, backend, options: dict, flags) -> None:
    """`--device cuda` for work that runs on a device, where the run would find no GPU: one line now, not a run
    that fails later. A backend that places GPUs by request (Slurm's --gres) must be asked for one; a local run
    needs one visible here. Methods that use no device never make `cuda` an error."""
    users = device_users(spec, flags) if spec.device == "cuda" else []
    if not users:
        return
    if any(o.name == "gres" for o in backend.options):
        if not any("gpu" in str(v).lower() for v in options.values()):
            raise MihdError(f"--device cuda: {users[0]} runs on the GPU, but the job asks for none "
                            "(give --gres gpu:1, or --device auto)")
    elif not fanout.visible_gpus():
        raise MihdError(f"--device cuda: {users[0]} runs on the GPU, but no CUDA GPU is visible here "
                        "(use --device cpu or auto)")


def _record_forecast(root: Path, run_dir: Path, fan: bool) -> None:
    """Add to spec.json what the run is expected to take, from this host's history (forecast.py), so its own
    supervisor can judge it late or overrunning without an index. A fanned-out grid's cells run in parts of
    their own: their stage shares (read from earlier runs' events) are not looked up for it."""
    view = read_spec(run_dir) or {}
    reg = Registry(root)
    try:
        shares = (lambda sig: None) if fan else ShareBook(reg).get
        told = forecast(view.get("cells") or [], view.get("backend") or "local", view.get("expect"),
                        reg.durations(), shares)
    finally:
        reg.close()
    write_json_atomic(run_dir / SPEC, {**read_json(run_dir / SPEC), KEY: told})


def launch(root, spec: RunSpec, *, raw_argv: list[str] | None = None, cached=None) -> str:
    """Start `spec` as a detached run on its backend; return the run id.

    `raw_argv` runs that command line instead of `mihd exec-plan` (tests, tools), with `{run_dir}` and
    `{root}` substituted; `spec` then says what it computes (its slices go unchecked). `cached`: per cell,
    whether its inputs are cached (looked up when not given).
    """
    root = resolve_root(root)
    if not isinstance(spec, RunSpec):
        raise MihdError(f"launch: expected a RunSpec, got {type(spec).__name__}")
    if raw_argv is not None and not raw_argv:
        raise MihdError("launch: empty command")
    be = get_backend(spec.backend)
    options = resolve_options(root, spec.backend, spec.backend_options)  # refused here: no run dir left behind
    flags = _cached(root, spec, cached)
    _check_device(spec, be, options, flags)
    if raw_argv is None:  # a slice wrong inside, or one the plan cannot use: one line now, no run dir
        from ..data import check_plan_slices

        check_plan_slices(root, spec)
    fan = raw_argv is None and fanout_submit.fans_out(spec, options)  # its cells side by side (fanout.py)
    run_id, run_dir = _make_run_dir(root)
    if raw_argv is not None:
        command = [t.replace("{run_dir}", str(run_dir)).replace("{root}", str(root)) for t in raw_argv]
    elif fan:
        command = fanout_submit.grid_command(root, run_dir, spec)
    else:
        command = [sys.executable, "-m", "mihd", "exec-plan", "--run-dir", str(run_dir), "--root", str(root)]
    with _until_started(root, run_dir):
        write_spec(run_dir, spec, run_id=run_id, argv=command, cached=flags)
        _record_forecast(root, run_dir, fan)
        handle = fanout_submit.submit(root, run_dir, spec, options, flags) if fan else \
            be.submit(run_dir, command, options)
    try:
        write_json_atomic(run_dir / HANDLE, handle)
    except OSError as exc:  # started all the same: it lists by its own files and `runs kill` stops it
        raise MihdError(f"run {run_id} started, but {write_error(root, exc, 'write its handle.json')} "
                        f"(stop it with mihd runs kill {run_id})") from None
    reg = Registry(root)
    try:
        reg.ingest(run_dir)
    finally:
        reg.close()
    return run_id


def begin_direct(root, run_dir: Path, spec: RunSpec, argv: list[str]) -> None:
    """For a direct `mihd run` (no launch): write spec.json and this process's identity, so watchers show
    it running and can tell lost from running. Call `registry.ingest` at the end."""
    root = resolve_root(root)
    run_dir = Path(run_dir)
    cached = _cached(root, spec, None)
    _check_room(root, run_dir.parent)
    with _until_started(root, run_dir, made=not run_dir.exists()):
        run_dir.mkdir(parents=True, exist_ok=True)
        write_spec(run_dir, spec, run_id=run_dir.name, argv=argv, cached=cached, direct=True)
        pid = os.getpid()
        ident = {"pid": pid, "create_time": proc_create_time(pid), "sid": os.getsid(0), "host": socket.gethostname(),
                 "boot_id": boot_id(), "uid": os.getuid(), "started": round(time.time(), 3),
                 "child_pid": pid, "child_create_time": proc_create_time(pid)}
        write_json_atomic(run_dir / PROC, ident)
