"""Watching a fanned-out grid (fanout.py): one registry row aggregated from its parts, a CellView per cell,
the critical-path ETA, the grid's merged result.json, and killing the grid or one of its cells.

The grid row's status follows its parts: queued until a part starts, running while any part (or the
local runner) is active, then done when every cell is done, killed when the grid was killed, else failed
("2 of 14 cells failed: ..."). Everything is read from the part dirs, so a rebuilt index says the same.
ETA: with M slots, the running cells' remaining seconds and the waiting cells' expected seconds packed
into M lanes (longest first, each into the least loaded lane); the grid ends with its longest lane.
Overrun is judged per cell, against that cell's own history.
"""

from __future__ import annotations

import heapq
import json
import os
import signal as _signal
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import MihdError
from ..jsonio import read_json
from ..rundir import EXIT, HANDLE, PROC, RESULT, read_events, read_plan, write_result
from .fanout import CELLS, EXTRACT, cell_dir, mark_never_started, parts, read_fanout
from .grid_index import PARTS
from .grid_index import described as described_parts

ACTIVE = ("queued", "running", "orphaned")


@dataclass
class CellView:
    """One cell of a fanned-out grid, as `mihd runs show GRID` and the dashboard list it."""

    index: int
    label: str
    status: str               # queued | running | orphaned | done | failed | killed | lost | corrupt
    reason: str | None        # why queued (Slurm's pending reason, waiting for a worker / an extraction)
    job_id: str | None        # Slurm: ARRAY_TASK
    run_dir: str
    started: float | None
    ended: float | None
    elapsed: float | None
    expected_s: float | None
    eta_s: float | None
    progress: float | None
    overrun: bool
    ari: float | None
    nmi: float | None
    error: str | None
    slice: str | None = None  # a study's cells are on several slices
    random_init: bool = False  # its score was made with random-init weights

    def to_dict(self) -> dict:
        return dict(self.__dict__)  # its fields are plain values: asdict's deep copy cost a listing of 36,000 cells 1 s


@dataclass
class GridProgress:
    fraction: float | None
    eta_s: float | None
    confidence: str
    expected_s: float | None   # the whole grid, packed into its lanes
    overrun: bool
    cells: list[CellView]


# -- the registry row ---------------------------------------------------------------------------------
def describe_part(part_dir: Path, gone: bool = False) -> tuple[dict, list[dict]]:
    """A part's row and cell rows (registry.describe); a part whose run dir was deleted under the grid
    fails alone, saying so, rather than reading as running forever. A part whose files did not change is
    answered from the index where it holds it (grid_index.known, within grid_index.reusing)."""
    from .grid_index import known
    from .registry import describe

    kept = None if gone else known(part_dir)
    if kept is not None:
        return kept
    row, cells = describe(part_dir, gone=gone, part=True)
    if not Path(part_dir).is_dir():
        return {**row, "status": "failed", "error": f"{part_dir.parent.name}/{part_dir.name}: its run dir is gone",
                "started": None, "ended": None}, []
    return row, cells


def aggregate(grid_dir: Path, row: dict) -> tuple[dict, list[dict]]:
    """The grid's row and cell rows from its parts' files (registry.describe calls this for a fanned-out grid)."""
    from .reasons import failure_reason

    try:
        fan = read_fanout(grid_dir)
    except MihdError as exc:
        return {**row, "status": "corrupt", "error": str(exc)}, []
    named = [(name, describe_part(d)) for name, d in parts(grid_dir, fan)]
    described = [part for _, part in named]
    cells = described[len(fan["extract"]):]
    statuses = [r["status"] for r, _ in described]
    runner_active = row["status"] in ACTIVE and (Path(grid_dir) / PROC).exists()
    started = min([t for t in [row["started"], *(r["started"] for r, _ in described)] if t], default=None)
    out = {**row, "started": started, "ended": None, PARTS: described_parts(named)}
    if runner_active or any(s in ACTIVE for s in statuses):
        out["status"] = "running" if started else "queued"
    else:
        failed = [(i, r) for i, (r, _) in enumerate(cells) if r["status"] != "done"]
        if row["kill_signal"] or row["status"] == "killed":
            out["status"] = "killed"
        elif failed:
            i, first = failed[0]
            why = failure_reason(first) or first["status"]
            out.update(status="failed", error=f"{len(failed)} of {len(cells)} cells failed; cell {i}: {why}")
        else:
            out.update(status="done", error=None)
        out["ended"] = max([t for t in [row["ended"]] + [r["ended"] for r, _ in described] if t], default=None)
    cell_rows = [{**crows[0], "run_id": row["id"], "idx": i} for i, (_, crows) in enumerate(cells) if crows]
    return out, cell_rows


def write_grid_result(grid_dir: Path, spec=None) -> dict:
    """The grid's result.json, merged from its cells' (a cell that did not finish is listed with its error),
    and each cell's fused embedding linked as the grid's fused/<index>.npy; returns it. A study's cells
    carry their "slice" (the top-level one is its first) and its spots are left to each cell's own result.
    `spec`: the grid's RunSpec as its runner holds it (else read from spec.json; a MihdError if damaged)."""
    from .reasons import failure_reason

    grid_dir = Path(grid_dir)
    spec = spec or read_plan(grid_dir)
    if spec is None:
        raise MihdError(f"{grid_dir / 'spec.json'}: missing or damaged; no plan to merge the cells' results by")
    cells, failed, spots = [], 0, None
    for i, cell in enumerate(spec.cells):
        res = read_json(cell_dir(grid_dir, i) / RESULT)
        res = res if isinstance(res, dict) else {}
        spots = spots or res.get("spots")
        own = {"slice": cell.slice} if spec.is_study else {}  # a study's cells say their slice
        if res.get("status") == "ok" and res.get("cells"):
            cells.append({**res["cells"][0], **own})
            _link(cell_dir(grid_dir, i) / "fused" / "0.npy", grid_dir / "fused" / f"{i}.npy")
            continue
        failed += 1
        row = describe_part(cell_dir(grid_dir, i))[0]
        cells.append({**own, "gene": cell.gene, "vision": cell.vision, "variant": cell.variant, "fusion": cell.fusion,
                      "cluster": cell.cluster, "n_clusters": spec.n_clusters, "refine": spec.refine,
                      "error": res.get("error") or failure_reason(row) or row["status"], "ari": None, "nmi": None})
    if spec.is_study:  # spots differ by slice: each cell's own result.json has them
        spots = None
    result = {"slice": spec.slice, **({"slices": list(spec.slices)} if spec.is_study else {}),
              "status": "failed" if failed else "ok",
              "error": f"{failed} of {len(cells)} cells failed" if failed else None,
              "spots": spots or {"barcodes": [], "x": [], "y": [], "truth": None}, "cells": cells}
    write_result(grid_dir, result)
    return result


def _link(src: Path, dst: Path) -> None:
    if not src.exists() or dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        import shutil

        shutil.copyfile(src, dst)


# -- watching -----------------------------------------------------------------------------------------
def refresh_grid(registry, row: dict) -> dict:
    """Bring an active grid's row up to date: its runner and its parts asked of their backends (a part gone
    without a word is recorded `lost` in its own dir), then the row re-read from the files. Returns the
    parts' backend states by part name ("cells/3"), for the cells' reasons."""
    from .backends import GONE, QUEUED, RunState, get_backend
    from .registry import row_handle
    from .status import RunWatcher, signalled_job

    grid_dir = Path(row["run_dir"])
    try:
        fan = read_fanout(grid_dir)
    except MihdError:  # damaged: one corrupt row (describe says why); its runner goes on with its own copy
        row.update(registry.ingest(grid_dir))
        return {}
    handle = row_handle(row)
    runner_gone = False
    if handle.get("backend") == "local" and not (grid_dir / EXIT).exists():
        state = get_backend("local").poll({row["id"]: handle})[row["id"]]
        runner_gone = state.state == GONE
        if runner_gone:
            RunWatcher._record_lost(grid_dir, state.reason or "the grid's runner is gone without exit.json")
    by_backend: dict[str, dict[str, dict]] = {}
    states = {}
    for name, d in parts(grid_dir, fan):
        if (d / EXIT).exists() and not signalled_job({**handle, "run_dir": d}) or not d.is_dir():  # ended, or gone
            continue
        part_handle = read_json(d / HANDLE)
        if isinstance(part_handle, dict):
            by_backend.setdefault(part_handle.get("backend") or "local", {})[name] = {**part_handle, "run_dir": str(d)}
        elif runner_gone or (grid_dir / EXIT).exists():
            states[name] = RunState(GONE, reason="its grid's runner ended before starting it")
        else:
            states[name] = RunState(QUEUED, reason=_waiting(grid_dir, fan, name))
    for backend, handles in by_backend.items():
        try:
            states.update(get_backend(backend).poll(handles))
        except MihdError as exc:
            states.update({n: RunState("unknown", reason=str(exc)) for n in handles})
    for name, st in states.items():
        d = grid_dir / name
        if st.state == GONE and describe_part(d, gone=True)[0]["status"] == "lost":
            RunWatcher._record_lost(d, st.reason or "none of its processes runs and it left no exit.json")
    row.update(registry.ingest(grid_dir))
    if row["status"] not in ACTIVE and row["status"] != "corrupt" and not (grid_dir / RESULT).exists():
        write_grid_result(grid_dir)  # a Slurm grid has no runner to write it
        row.update(registry.ingest(grid_dir))
    return states


def _waiting(grid_dir: Path, fan: dict, name: str) -> str:
    if name.startswith(CELLS):
        waiting = [k for k in fan["cells"][int(name.split("/")[1])]["needs"]
                   if not (grid_dir / EXTRACT / k / EXIT).exists()]
        if waiting:
            return f"waiting for extraction {', '.join(waiting)}"
    return "waiting for a free worker"


def _expected(sig: str, history: dict) -> tuple[float | None, int]:
    from .eta import CELL_KEY

    samples = history.get(sig) or history.get(CELL_KEY + sig) or []
    return (statistics.median(samples), len(samples)) if samples else (None, 0)


def _guesses(views: list[CellView], costs: list[float]) -> list[float | None]:
    """Each cell's expected seconds: its history's, else its cost (stages.default_cost) times the seconds per
    unit of cost of the cells this grid finished (how fast it goes here and now), else of those a history
    times, else of the running cells' projected totals (a training's measured rate); None when nothing gives
    a scale."""
    finished = [(v.elapsed, c) for v, c in zip(views, costs) if v.status == "done" and v.elapsed]
    timed = [(v.expected_s, c) for v, c in zip(views, costs) if v.expected_s]
    projected = [(v.elapsed + v.eta_s, c) for v, c in zip(views, costs)
                 if v.status == "running" and v.elapsed is not None and v.eta_s is not None]
    pairs = finished or timed or projected
    unit = sum(s for s, _ in pairs) / sum(c for _, c in pairs) if pairs else None
    return [v.expected_s or (c * unit if unit is not None else None) for v, c in zip(views, costs)]


def critical_path(running: list[float], waiting: list[float], lanes: int) -> float:
    """When the last lane ends: each running cell holds a lane for its remaining seconds, and the waiting
    cells go longest first into the least loaded lane."""
    loads = list(running) + [0.0] * max(lanes - len(running), 0)
    if not loads:
        loads = [0.0]
    heapq.heapify(loads)
    for secs in sorted(waiting, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + secs)
    return max(loads)


def grid_progress(row: dict, states: dict, history: dict, factor: float, now: float) -> GridProgress:
    """Each cell's view, the grid's share done, its critical-path ETA and expected time, and whether a
    cell overruns its own expected time."""
    from .cells import sig_string, signature, stored_label
    from .eta import MIN_HISTORY, Expected, ProgressTracker, cell_plans
    from .overrun import is_overrun
    from .reasons import failure_reason
    from .stages import default_cost, task_startup

    grid_dir = Path(row["run_dir"])
    fan = read_fanout(grid_dir)
    n = len(fan["cells"])
    lanes = int(fan.get("lanes") or n)
    views, known, costs, own = [], [], [], []
    for i in range(n):
        d = cell_dir(grid_dir, i)
        r, crows = describe_part(d)
        stored = json.loads(r["cells"] or "[]")
        sig = sig_string(signature(stored[0], row["backend"])) if stored else ""
        exp, n_hist = _expected(sig, history)
        known.append(n_hist)
        st = states.get(f"{CELLS}/{i}")
        status = r["status"]
        if st is not None and (status, st.state) in (("queued", "running"), ("running", "orphaned")):
            status = st.state  # its supervisor is gone while its command runs on: orphaned, still holding its slot
        started = r["started"]
        elapsed = ((r["ended"] or now) - started) if started and (status in ACTIVE or r["ended"]) else None
        progress, eta = (1.0, 0.0) if status == "done" else (None, None)
        if status in ("running", "orphaned") and started:
            fusion = stored[0].get("fusion") if stored else None
            tracker = ProgressTracker(1, cell_plans([fusion], [sig], history),
                                      Expected(exp, "history", n_hist) if exp else Expected(None), started)
            tracker.feed(read_events(d)[0])
            est = tracker.estimate(now)
            progress, eta = est.fraction, est.eta_s
            if eta is None and exp is not None:
                eta = max(exp - elapsed, 0.0)
        elif status == "queued":
            progress, eta = 0.0, exp
        over = status in ("running", "orphaned") and exp is not None and \
            is_overrun(elapsed, Expected(exp, "history", n_hist), factor)
        costs.append(default_cost(stored[0].get("fusion") if stored else None))
        own.append(crows[0]["seconds"] if crows and status == "done" else None)
        views.append(CellView(
            index=i, label=stored_label(stored), status=status,
            reason=(st.reason if st else None) if status in ACTIVE else r["note"] if status == "killed" else None,
            job_id=r["job_id"], run_dir=str(d), started=started, ended=r["ended"], elapsed=elapsed,
            expected_s=exp, eta_s=eta, progress=progress, overrun=bool(over),
            ari=crows[0]["ari"] if crows else None, nmi=crows[0]["nmi"] if crows else None,
            random_init=bool(crows and crows[0]["random_init"]),
            error=failure_reason(r) if status not in ("done",) + ACTIVE else None,
            slice=stored[0].get("slice") if stored else None))
    guess = _guesses(views, costs)
    weight = [v.expected_s or g or 1.0 for v, g in zip(views, guess)]
    counted = [(w, v) for w, v in zip(weight, views) if v.status in ACTIVE or v.status == "done"]
    total = sum(w for w, _ in counted)
    fraction = sum(w * (v.progress or 0.0) for w, v in counted) / total if total else None
    active = [(v, g) for v, g in zip(views, guess) if v.status in ACTIVE]
    running = [v.eta_s if v.eta_s is not None else g for v, g in active if v.status != "queued"]
    startup = task_startup([(v.elapsed, s) for v, s in zip(views, own)])  # a history leaves it out
    waiting = [v.expected_s + startup if v.expected_s else g for v, g in active if v.status == "queued"]
    if any(x is None for x in running + waiting):
        eta, confidence = None, "unknown"
    else:
        eta = critical_path(running, waiting, lanes)
        confidence = "high" if min(known) >= MIN_HISTORY else "medium" if min(known) > 0 else "low"
    expected = critical_path([], [w for w, _ in counted], lanes) if all(guess) else None
    if not active and row["status"] != "done":  # killed or lost: its cells that never finished are work undone
        undone = [(w, v) for w, v in zip(weight, views) if v.status != "failed"]
        fraction = sum(w for w, v in undone if v.status == "done") / sum(w for w, _ in undone) if undone else None
    return GridProgress(fraction if active else (1.0 if row["status"] == "done" else fraction), eta if active else None,
                        confidence if active else "unknown", expected, any(v.overrun for v in views), views)


# -- killing ------------------------------------------------------------------------------------------
def kill(watcher, view, signal: str, grace: float, index: int | None = None) -> dict:
    """Kill the whole grid (its runner first, so it starts nothing more, then every part still active, then
    Slurm's array and extraction jobs as wholes), or only cell `index`; each part's kill is recorded in its
    own dir, the grid's in the grid's."""
    from .backends import get_backend
    from .identity import alive
    from .kill import record_kill

    grid_dir = Path(view.run_dir)
    fan = read_fanout(grid_dir)
    n = len(fan["cells"])
    handle = read_json(grid_dir / HANDLE) or {}
    if index is not None:
        if not 0 <= index < n:
            raise MihdError(f"run {view.id}/{index}: no such cell (the grid has cells 0 to {n - 1})")
        status = next((c.status for c in view.cells if c.index == index), None)
        if status not in ACTIVE:
            raise MihdError(f"run {view.id}/{index}: not running ({status}); nothing to kill")
        targets = [(f"{CELLS}/{index}", cell_dir(grid_dir, index))]
    else:
        if view.status not in ACTIVE:
            raise MihdError(f"run {view.id}: not running ({view.status}); nothing to kill")
        targets = parts(grid_dir, fan)
    out = {"id": view.id if index is None else f"{view.id}/{index}", "signal": signal, "escalated": False,
           "survivors": 0, "left": [], "outside": []}

    def merge(res: dict) -> None:
        out["escalated"] = out["escalated"] or bool(res.get("escalated"))
        out["survivors"] += res.get("survivors") or 0
        out["left"] += res.get("left") or []
        out["outside"] += res.get("outside") or []

    if index is None and handle.get("backend") == "slurm":  # first what has not started: a slot freed below starts nothing
        slurm = get_backend("slurm")
        for job in [handle.get("job_id"), *(handle.get("extract_jobs") or [])]:
            if job:
                slurm.commands.scancel(str(job), pending_only=True)
    runner = _runner(grid_dir) if index is None and handle.get("backend") == "local" else None
    if runner:  # the runner alone: it starts nothing more (TERM: passes it on, marks the parts it never started)
        os.kill(runner[0], getattr(_signal, f"SIG{signal}"))
    who = f"kill of grid {view.id}" if index is None else None
    for _, d in targets:
        if (d / EXIT).exists():
            continue
        part_handle = read_json(d / HANDLE)
        if not isinstance(part_handle, dict):  # never started: waiting for a worker
            mark_never_started(d, signal, who or "mihd runs kill")
            continue
        if part_handle.get("backend") == "local":
            deadline = time.monotonic() + 3.0  # started just now: its supervisor is recording itself
            while not (d / PROC).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        try:
            res = get_backend(part_handle.get("backend") or "local").kill({**part_handle, "run_dir": str(d)}, signal,
                                                                         grace)
        except MihdError:
            if index is not None:
                raise
            continue  # nothing of it runs any more (it ended just now, or its supervisor died): not ours to say
        record_kill(d, res, signal, grace)
        merge(res)
    if runner:  # its parts are gone: it ends at once; what would not is killed with its supervisor's session
        deadline = time.monotonic() + grace + 5.0
        while alive(*runner) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(*runner):
            merge(get_backend("local").kill({**handle, "run_dir": str(grid_dir)}, "KILL", 0))
        sup = read_json(grid_dir / PROC) or {}
        deadline = time.monotonic() + 10.0  # its supervisor writes exit.json once it ended: wait for that
        while alive(sup.get("pid"), sup.get("create_time")) and time.monotonic() < deadline:
            time.sleep(0.05)
    if index is None:
        if handle.get("backend") == "slurm":  # whatever a task or extraction job still holds
            slurm = get_backend("slurm")
            for job in [handle.get("job_id"), *(handle.get("extract_jobs") or [])]:
                if job:
                    slurm.commands.scancel(str(job))
        record_kill(grid_dir, {**out, "ended": True} if handle.get("backend") == "slurm" else {**out, "ended": False},
                    signal, grace)
    row = watcher.registry.ingest(grid_dir)
    if index is None:
        return {**out, "status": row["status"]}
    from .registry import describe

    return {**out, "status": describe(cell_dir(grid_dir, index))[0]["status"]}


def _runner(grid_dir: Path) -> tuple[int, float] | None:
    """(pid, create time) of a local grid's runner while it runs, from the grid's proc.json."""
    from .identity import alive

    ident = read_json(Path(grid_dir) / PROC)
    if not isinstance(ident, dict) or (Path(grid_dir) / EXIT).exists():
        return None
    pid, ctime = ident.get("child_pid"), ident.get("child_create_time")
    return (pid, ctime) if alive(pid, ctime) else None


def cells_summary(cells: list[CellView]) -> str:
    """A fanned-out grid's cells at a glance: `2 running · 5 queued (pending: Dependency) · 6 done · 1 failed`."""
    counts: dict[str, int] = {}
    reasons: dict[str, str] = {}
    for c in cells:
        counts[c.status] = counts.get(c.status, 0) + 1
        if c.status == "queued" and c.reason:
            reasons.setdefault("queued", c.reason)
    order = ("running", "orphaned", "queued", "done", "failed", "killed", "lost", "corrupt")
    return " · ".join(f"{counts[s]} {s}" + (f" ({reasons[s]})" if s in reasons else "") for s in order if s in counts)


def by_slice(cells: list[CellView]) -> list[tuple[str | None, str, list[CellView]]]:
    """A study's cells slice by slice, in the order the slices come: (slice, its cells_summary, its cells)."""
    groups: dict[str | None, list[CellView]] = {}
    for c in cells:
        groups.setdefault(c.slice, []).append(c)
    return [(s, cells_summary(group), group) for s, group in groups.items()]
