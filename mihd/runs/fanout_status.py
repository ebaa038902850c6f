"""Watching a fanned-out grid (fanout.py): its parts asked of their backends (refresh_grid), a CellView per
cell, the critical-path ETA, the grid's merged result.json. Its registry row is aggregated from its parts'
(run_row.aggregate); killing it, or one of its cells, is kill.py's.

The grid row's status follows its parts: queued until a part starts, running while any part (or the
local runner) is active, then done when every cell is done, killed when the grid was killed, else failed
("2 of 14 cells failed: ..."). Everything is read from the part dirs, so a rebuilt index says the same.
ETA: with M slots, the running cells' remaining seconds and the waiting cells' expected seconds packed
into M lanes (longest first, each into the least loaded lane); the grid ends with its longest lane. Trusted
(`medium`) when every cell has a history or every running cell's ETA is its own measured rate.
Overrun is judged per cell, against that cell's own history.
"""

from __future__ import annotations

import heapq
import json
import os
import statistics
from pathlib import Path

from ..errors import MihdError
from ..jsonio import read_json
from ..rundir import EXIT, HANDLE, RESULT, read_events, read_plan, write_result
from .fanout import CELLS, EXTRACT, cell_dir, parts, read_fanout
from .grid_view import CellView, GridProgress
from .run_end import record_lost, signalled_job
from .run_files import ACTIVE
from .run_row import describe_part, row_handle


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
            record_lost(grid_dir, state.reason or "the grid's runner is gone without exit.json")
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
            record_lost(d, st.reason or "none of its processes runs and it left no exit.json")
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


def cell_late(events: list[dict]) -> str | None:
    """Why a running cell will not end in time, from its latest `late` event (its supervisor judges it against
    its own Slurm time limit, self_watch.py); None when never flagged or on time again (a null reason)."""
    said = next((e for e in reversed(events) if e.get("kind") == "late"), {})
    return said.get("reason") if isinstance(said.get("reason"), str) else None


def late_cell(cells: list[CellView]) -> str | None:
    """`cell 3 will hit its time limit ...`: a grid's first running cell that its own supervisor flagged late (its
    Slurm task's time limit), so the grid reads late where its cells are not shown (the runs table)."""
    return next((f"cell {c.index} {c.late}" for c in cells if c.late and c.status in ACTIVE), None)


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
    views, known, costs, own, measured = [], [], [], [], []
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
        late = None
        if status in ("running", "orphaned") and started:
            fusion = stored[0].get("fusion") if stored else None
            tracker = ProgressTracker(1, cell_plans([fusion], [sig], history),
                                      Expected(exp, "history", n_hist) if exp else Expected(None), started)
            events = read_events(d)[0]
            tracker.feed(events)
            late = cell_late(events)
            est = tracker.estimate(now)
            progress, eta = est.fraction, est.eta_s
            measured.append(est.confidence in ("medium", "high"))
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
            slice=stored[0].get("slice") if stored else None, late=late))
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
        confidence = "high" if min(known) >= MIN_HISTORY else "medium" if min(known) > 0 or (
            measured and all(measured)) else "low"  # no history: paced by its running cells' own rates
    expected = critical_path([], [w for w, _ in counted], lanes) if all(guess) else None
    if not active and row["status"] != "done":  # killed or lost: its cells that never finished are work undone
        undone = [(w, v) for w, v in zip(weight, views) if v.status != "failed"]
        fraction = sum(w for w, v in undone if v.status == "done") / sum(w for w, _ in undone) if undone else None
    return GridProgress(fraction if active else (1.0 if row["status"] == "done" else fraction), eta if active else None,
                        confidence if active else "unknown", expected, any(v.overrun for v in views), views)


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
