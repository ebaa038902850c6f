"""The run dir protocol (DESIGN.md): file names, the events log, and reading a run's state back.

A run writes only into its run dir. `events.jsonl` is appended one JSON object a line, flushed after
each line, so a reader polling the file always sees whole events (a torn last line is skipped). The
run's own events are also written as human-readable lines to stderr, which a launched run's supervisor
appends to `run.log` (the live log): each cell and stage as it starts, a long stage's steps every
LINE_INTERVAL_S (with the training loss when given), each cell's score as it is made.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from .jsonio import read_json, write_json_atomic
from .owners import owner_name
from .run_scores import current_scores, write_scores

SPEC = "spec.json"
PROC = "proc.json"      # the supervisor's identity (pid, create time, session, host), written once it runs
HANDLE = "handle.json"  # the backend's handle (e.g. a Slurm job id), written by launch
USAGE = "usage.json"    # CPU/RSS/GPU of the run's processes, rewritten by the supervisor
LOG = "run.log"
EVENTS = "events.jsonl"
RESULT = "result.json"
EXIT = "exit.json"
RESERVE = ".reserve"    # space the supervisor holds from the start, so a full disk still lets it write exit.json
BATCH_SCRIPT = "job.sbatch"       # a Slurm run's batch script, written by its submit
BATCH_OUTPUT = "slurm-%j.out"     # what Slurm itself prints for the job (%j: the job id)

EVENT_KINDS = ("start", "stage", "metric", "cache", "end", "overrun", "kill", "cell", "lost")
LINE_INTERVAL_S = 10.0  # a long stage's progress goes to the live log at most this often


class EventLog:
    """Appends events to `events.jsonl`; a no-op when there is no run dir (plain API use)."""

    def __init__(self, run_dir: Path | None):
        self.run_dir = Path(run_dir) if run_dir else None
        self._fh = None
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.run_dir / EVENTS, "a", buffering=1)
        self._last_stage_emit: dict[str, float] = {}
        self._last_line: dict[str, float] = {}
        self._cell: tuple[str, float] = ("", 0.0)  # "2/7" and when that cell began

    def emit(self, kind: str, **fields: Any) -> dict:
        event = {"t": round(time.time(), 3), "kind": kind, **fields}
        if self._fh is not None:
            try:
                self._fh.write(json.dumps(event, default=str) + "\n")
                self._fh.flush()
                line = self._line(event)
                if line:
                    print(time.strftime("[%H:%M:%S] ", time.localtime(event["t"])) + line, file=sys.stderr, flush=True)
            except OSError as exc:
                self._give_up(exc)
        return event

    def _give_up(self, exc: OSError) -> None:
        """A write failed (a full disk): write no more events, so a torn line stays the file's last (which
        readers leave aside) rather than one before others; the run goes on, its end is said by exit.json."""
        fh, self._fh = self._fh, None
        for step in (fh.close, lambda: print(f"mihd: {EVENTS}: cannot be written ({exc.strerror or exc}); "
                                             "no more events", file=sys.stderr, flush=True)):
            try:
                step()
            except OSError:
                pass

    def _line(self, ev: dict) -> str | None:
        """The live-log line of one of the run's own events (None: not worth a line now)."""
        kind = ev["kind"]
        if kind == "start":
            return f"start: {ev.get('slice', '')} {ev.get('cells', '?')} cell{'s' * (ev.get('cells') != 1)}"
        if kind == "cell":
            cell = ev.get("cell") or {}
            self._cell, self._last_line = (f"{ev.get('index', 0) + 1}/{ev.get('of', '?')}", ev["t"]), {}
            vision = f"+{cell['vision']}" if cell.get("vision") else ""
            return f"cell {self._cell[0]} {cell.get('gene')}{vision} {cell.get('fusion')} {cell.get('cluster')}"
        if kind == "stage":
            done, total, stage = ev["done"], ev["total"], ev["stage"]
            if total <= 1 or (done not in (0, total) and ev["t"] - self._last_line.get(stage, 0.0) < LINE_INTERVAL_S):
                return stage if total <= 1 and done == 0 else None
            self._last_line[stage] = ev["t"]
            loss = f" loss {ev['loss']:.4g}" if isinstance(ev.get("loss"), (int, float)) else ""
            return f"{stage} {done}/{total}{loss}"
        if kind == "cache":
            return f"{ev.get('modality')} {ev.get('name')}: {ev.get('status')} ({ev.get('seconds') or 0:.1f} s)"
        if kind == "metric":
            took = f"({ev['t'] - self._cell[1]:.1f} s)"
            if ev.get("error"):
                return f"cell {self._cell[0]} failed {took}: {ev['error']}"
            ari = "-" if ev.get("ari") is None else f"{ev['ari']:.3f}"
            seeds = f" (mean of {ev['n']} seeds)" if isinstance(ev.get("n"), int) and ev["n"] > 1 else ""
            return f"cell {self._cell[0]} ARI {ari}{seeds} {took}"
        if kind == "end":
            return f"end: {ev.get('status')}" + (f": {ev['error']}" if ev.get("error") else "")
        return None

    def stage(self, stage: str, done: int, total: int, min_interval: float = 0.5, **fields: Any) -> None:
        """Progress of a stage; rate-limited so a tight loop does not flood the file."""
        now = time.monotonic()
        if done < total and now - self._last_stage_emit.get(stage, 0.0) < min_interval and done != 0:
            return
        self._last_stage_emit[stage] = now
        self.emit("stage", stage=stage, done=int(done), total=int(total), **fields)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_events(run_dir: Path, offset: int = 0) -> tuple[list[dict], int]:
    """Events from byte `offset` on, and the offset to continue from (only whole lines are consumed)."""
    path = Path(run_dir) / EVENTS
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    events = []
    for line in data[: end + 1].splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events, offset + end + 1


def write_result(run_dir: Path, result: dict) -> None:
    """result.json, then its scores.json (run_scores: what the run index reads of it)."""
    write_json_atomic(Path(run_dir) / RESULT, result)
    write_scores(Path(run_dir) / RESULT, result)


def read_result(run_dir: Path) -> dict | None:
    return read_json(Path(run_dir) / RESULT)


def read_exit(run_dir: Path) -> dict | None:
    return read_json(Path(run_dir) / EXIT)


def write_spec(run_dir: Path, plan, *, run_id: str, argv: list[str], cached, direct: bool = False) -> None:
    """spec.json: the RunSpec under "plan", and how it was started: the exact command, whether each cell's
    inputs were cached at launch (part of the ETA signature), who and when; `direct` for a `mihd run`
    that is its own supervisor."""
    import getpass
    import socket

    data = {"plan": plan.to_dict(), "id": run_id, "argv": list(argv), "cached": list(cached),
            "created": round(time.time(), 3), "by": f"{getpass.getuser()}@{socket.gethostname()}"}
    write_json_atomic(Path(run_dir) / SPEC, {**data, **({"direct": True} if direct else {})})


def read_spec(run_dir: Path) -> dict | None:
    """spec.json as one view over its current and its older form (top-level "cells" dicts, "mihd_args"):
    {"plan": RunSpec or None, "cells": [each cell's fields + "cached" (+ "n_seeds" when several)], "id", "name",
    "backend" ("direct" for a direct run), "expect", "options", "argv", "created", "by", "direct"}. None when
    there is none."""
    return spec_view(read_json(Path(run_dir) / SPEC))


def spec_view(data: Any) -> dict | None:
    """read_spec's view of spec.json's content already read (None when it is not an object)."""
    if not isinstance(data, dict):
        return None
    return _spec_view(data) if "plan" in data else _old_spec_view(data)


def read_plan(run_dir: Path):
    """The RunSpec a run dir was asked to compute, from either form of spec.json; None when unknown."""
    return (read_spec(run_dir) or {}).get("plan")


def _plan(data: Any) -> tuple:
    """(RunSpec.from_dict of a spec's plan, its cells as dicts); raises MihdError as from_dict does."""
    return _plan_of(json.dumps(data, default=str))


@functools.lru_cache(maxsize=4096)
def _plan_of(text: str) -> tuple:
    """Kept by the plan's text (a RunSpec is frozen): a lab's index reads 50,000 specs of a few hundred plans."""
    from .plan import RunSpec

    plan = RunSpec.from_dict(json.loads(text), "plan")
    return plan, tuple(c.to_dict() for c in plan.cells)


def _spec_view(data: dict) -> dict:
    from .errors import MihdError

    try:
        plan, plan_cells = _plan(data["plan"])
    except MihdError:
        plan, plan_cells = None, ()
    cached = data.get("cached") if isinstance(data.get("cached"), list) else []
    seeds = {"n_seeds": len(plan.seeds)} if plan is not None and len(plan.seeds) > 1 else {}
    cells = [{**c, "cached": cached[i] if i < len(cached) else None, **seeds} for i, c in enumerate(plan_cells)]
    direct = bool(data.get("direct"))
    return {"plan": plan, "cells": cells, "id": data.get("id"), "name": plan and plan.name,
            "backend": "direct" if direct else (plan and plan.backend), "expect": plan and plan.expect,
            "options": plan.backend_options if plan else {}, "argv": data.get("argv"), "created": data.get("created"),
            "by": data.get("by"), "direct": direct}


def _old_spec_view(data: dict) -> dict:
    from .errors import MihdError
    from .plan import Cell, RunSpec

    cells = [c for c in data.get("cells") or [] if isinstance(c, dict)]
    args = data.get("mihd_args") or []
    try:
        plan = RunSpec(tuple(Cell.from_dict(c) for c in cells), kind="grid" if args[:1] == ["grid"] or len(cells) > 1
                       else "run", backend="local" if data.get("direct") else data.get("backend") or "local",
                       backend_options=data.get("options") or {}, expect=data.get("expect"), name=data.get("name"))
    except (MihdError, TypeError):
        plan = None
    keys = ("id", "name", "backend", "expect", "argv", "created", "by")
    return {"plan": plan, "cells": cells, **{k: data.get(k) for k in keys}, "options": data.get("options") or {},
            "direct": bool(data.get("direct"))}


def iter_run_dirs(runs_root: Path) -> Iterable[Path]:
    try:
        entries = sorted(os.scandir(runs_root), key=lambda e: e.name)
    except OSError:
        return []
    return [Path(e.path) for e in entries if e.is_dir() and not e.name.startswith(".")]


# -- validated reading: a run dir file that exists is checked for its shape, not just its JSON syntax ------
from .errors import MihdError  # noqa: E402


class RunFileError(MihdError):
    """A run dir file that is there but unusable; str() is the one line `<file>: <why>`."""


class RunFileUnreadable(RunFileError):
    """A run dir file (or the run dir) this user may not read: another lab member's, `unreadable (owner X)`."""


def _read_error(run_dir: Path, name: str, exc: OSError) -> RunFileError:
    """The RunFileError an OSError reading `name` is: permissions (naming the owner of the file, else of the run
    dir when that cannot even be entered), or damage."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        path = Path(run_dir) / name
        owner = owner_name(path if os.access(run_dir, os.X_OK) else Path(run_dir))
        return RunFileUnreadable(f"unreadable (owner {owner}): {name}")
    return RunFileError(f"{name}: unreadable ({exc.strerror or exc})")


_NUM = (int, float)
_OPT_NUM, _OPT_INT, _OPT_STR = (int, float, type(None)), (int, type(None)), (str, type(None))
_FIELDS = {  # per file: field -> the types its value may have (a field may be missing; others are ignored)
    EXIT: {"code": _OPT_INT, "signal": _OPT_STR, "ended": _OPT_NUM, "forwarded": list, "error": _OPT_STR},
    PROC: {"pid": int, "create_time": _OPT_NUM, "sid": _OPT_INT, "host": _OPT_STR, "uid": _OPT_INT,
           "started": _OPT_NUM, "child_pid": _OPT_INT, "child_create_time": _OPT_NUM, "boot_id": _OPT_STR,
           "marker": _OPT_STR, "argv": list},
    HANDLE: {"backend": _OPT_STR, "job_id": (str, int, type(None)), "submitted": _OPT_NUM, "host": _OPT_STR,
             "pid": _OPT_INT, "outcome": (dict, type(None))},
    RESULT: {"status": _OPT_STR, "error": _OPT_STR, "cells": list},
    USAGE: {"t": _NUM, "cpu_percent": _OPT_NUM, "rss": _OPT_INT, "nprocs": _OPT_INT, "gpu_mem": _OPT_INT,
            "peak": (dict, type(None))},
    SPEC: {"id": _OPT_STR, "name": _OPT_STR, "argv": (list, type(None)), "cells": (list, type(None)),
           "backend": _OPT_STR, "expect": _OPT_NUM, "options": (dict, type(None)), "created": _OPT_NUM,
           "direct": (bool, type(None)), "plan": dict},
}
_REQUIRED = {PROC: ("pid",), USAGE: ("t",)}
_CELL_FIELDS = {"ari": _OPT_NUM, "nmi": _OPT_NUM, "seconds": (dict, type(None)), "signature": (dict, type(None))}
_PEAK_FIELDS = {"cpu_percent": _OPT_NUM, "rss": _OPT_INT, "gpu_mem": _OPT_INT}
_EVENT_FIELDS = {  # per event kind, the fields watchers use
    None: {"t": _NUM, "kind": str},
    "stage": {"stage": str, "done": _NUM, "total": _NUM},
    "cell": {"index": int, "of": _OPT_INT, "cell": (dict, type(None))},
    "metric": {"index": _OPT_INT, "ari": _OPT_NUM, "nmi": _OPT_NUM},
    "end": {"status": _OPT_STR, "error": _OPT_STR},
    "kill": {"signal": _OPT_STR, "by": _OPT_STR},
    "lost": {"reason": _OPT_STR},
}
_WORDS = {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null", int: "a whole number",
          float: "a number"}


def _kind_name(value: Any) -> str:
    return _WORDS.get(type(value), type(value).__name__)


def _shape_problem(data: Any, fields: dict, required: tuple = ()) -> str | None:
    """Why `data` is not an object with these field types (bool is never a number), or None."""
    if not isinstance(data, dict):
        return f"expected an object, found {_kind_name(data)}"
    for key in required:
        if key not in data:
            return f"{key}: missing"
    for key, types in fields.items():  # JSON's own types, matched exactly: true/false is never a number
        types = types if type(types) is tuple else (types,)
        if key in data and type(data[key]) not in types:
            wanted = " or ".join(_WORDS[t] for t in types if t is not int or float not in types)
            return f"{key}: expected {wanted}, found {_kind_name(data[key])}"
    return None


def event_problem(event: Any) -> str | None:
    """Why one events.jsonl entry cannot be used, or None."""
    problem = _shape_problem(event, _EVENT_FIELDS[None], ("t", "kind"))
    return problem or _shape_problem(event, _EVENT_FIELDS.get(event["kind"], {}))


def load_file(run_dir: Path, name: str) -> dict | None:
    """Run dir file `name` (spec, proc, handle, result, exit, usage) parsed and checked; None when absent.
    Raises RunFileError when it is there but not JSON or not of its shape (spec.json's plan included).
    result.json is read as its scores.json (no per-spot data) while that was made from it (run_scores)."""
    data = current_scores(run_dir, name) if name == RESULT else None
    data = _parsed(run_dir, name) if data is None else data
    return None if data is _ABSENT else _checked(name, data)


_ABSENT = object()


def _parsed(run_dir: Path, name: str) -> Any:
    try:
        with open(f"{os.fspath(run_dir)}/{name}") as fh:
            text = fh.read()
    except FileNotFoundError:
        return _ABSENT
    except OSError as exc:
        raise _read_error(run_dir, name, exc) from None
    except UnicodeDecodeError as exc:
        raise RunFileError(f"{name}: unreadable ({exc})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RunFileError(f"{name}: not JSON ({exc})") from None
    return data


def _checked(name: str, data: Any) -> dict:
    problem = _shape_problem(data, _FIELDS[name], _REQUIRED.get(name, ()))
    if problem is None and name == RESULT:
        problem = next((f"cells[{i}]: {p}" for i, c in enumerate(data.get("cells") or []) if (p := _cell_problem(c))),
                       None)
    if problem is None and name == USAGE and data.get("peak") is not None:
        problem = next((f"peak: {p}" for p in [_shape_problem(data["peak"], _PEAK_FIELDS)] if p), None)
    if problem is None and name == SPEC:
        problem = _spec_problem(data)
    if problem:
        raise RunFileError(f"{name}: {problem}")
    return data


def _cell_problem(cell: Any) -> str | None:
    problem = _shape_problem(cell, _CELL_FIELDS)
    if problem is None and cell.get("seconds"):
        problem = _shape_problem(cell["seconds"], dict.fromkeys(cell["seconds"], _OPT_NUM))
        problem = problem and f"seconds: {problem}"
    return problem


def _spec_problem(data: dict) -> str | None:
    if "plan" in data:
        try:
            _plan(data["plan"])
        except MihdError as exc:
            return str(exc)
        return None
    return next((f"cells[{i}]: expected an object, found {_kind_name(c)}"
                 for i, c in enumerate(data.get("cells") or []) if not isinstance(c, dict)), None)


_decode = json.JSONDecoder().decode


def load_events(run_dir: Path) -> list[dict]:
    """Every whole line of events.jsonl, checked; a torn last line (being written) is left for later.
    Raises RunFileError naming the first bad line."""
    try:
        with open(f"{os.fspath(run_dir)}/{EVENTS}", "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise _read_error(run_dir, EVENTS, exc) from None
    events = []
    for n, line in enumerate(data[: data.rfind(b"\n") + 1].splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = _decode(line.decode("utf-8-sig"))  # json.loads of bytes, without its per-call encoding sniff
        except ValueError:
            raise RunFileError(f"{EVENTS}: line {n}: not JSON") from None
        problem = event_problem(event)
        if problem:
            raise RunFileError(f"{EVENTS}: line {n}: {problem}")
        events.append(event)
    return events
