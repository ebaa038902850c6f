"""The registry row a run dir's files say (describe): the run's status, times, outcome and its cells' scores, from
spec.json, handle.json, proc.json, events.jsonl, result.json and exit.json alone, so an index rebuilt from the
run dirs says the same. A fanned-out grid's row is aggregated from its parts' rows (aggregate), each part's
answered from the index while its files did not change (grid_index.known).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..errors import MihdError
from ..jsonio import read_json
from ..rundir import EXIT, HANDLE, PROC, RESULT, SPEC, RunFileUnreadable, read_spec, spec_view
from .backends import outcome as backend_outcome
from .cells import run_signature, sig_string, signature, stored_label
from .fanout import FANOUT, parts, read_fanout
from .grid_index import PARTS, known
from .grid_index import described as described_parts
from .parts_file import keep_parts, kept_part, read_parts
from .run_files import ACTIVE, RUN_COLUMNS, TERMINAL, UNSETTLED, files_stamp, read_run


def describe(run_dir: Path, gone: bool = False, part: bool = False) -> tuple[dict, list[dict]]:
    """The registry row and cell rows that the files of one run dir say. `gone`: its backend found none of
    its processes, so without exit.json the run ended on its own: done/failed by its result, else lost.
    A file of the wrong shape makes a `corrupt` row whose error names it, one this user may not read an
    `unreadable` row naming its owner (run_files.read_run; `part`: a grid's cell); never an exception."""
    run_dir = Path(run_dir)
    stamp = files_stamp(run_dir)  # taken first: a file changed while it is read differs next time
    got = read_run(run_dir, part)
    if got.problem is not None:
        unreadable = isinstance(got.problem, RunFileUnreadable)
        return {**_corrupt_row(run_dir, str(got.problem), "unreadable" if unreadable else "corrupt"),
                "stamp": UNSETTLED if unreadable else stamp}, []
    spec_raw, handle, ident, result, exit_ = (got.files[f] for f in (SPEC, HANDLE, PROC, RESULT, EXIT))
    events = got.events
    spec = spec_view(spec_raw) or {}
    handle, ident, result = handle or {}, ident or {}, result or {}
    first, last = {}, {}
    for e in events:
        first.setdefault(e["kind"], e)
        last[e["kind"]] = e
    start_ev, overrun_ev = first.get("start"), first.get("overrun")
    kill_ev, end_ev, lost_ev = last.get("kill"), last.get("end"), last.get("lost")
    backend = spec.get("backend") or handle.get("backend") or "direct"
    # the backend's last word on the end: kept by a watcher in handle.json, or by the supervisor in exit.json when
    # it knew (Slurm's time limit: a grid ending with that cell is not asked about again)
    said = backend_outcome(handle.get("backend") or backend, handle) or (exit_ or {}).get("outcome")
    said = said if isinstance(said, dict) else {}

    result_cells = result.get("cells") or []
    cells = spec.get("cells") or [c.get("signature") or c for c in result_cells]
    finished = {"ok": "done", "failed": "failed"}.get(result.get("status") or (end_ev or {}).get("status"))
    if exit_ is not None:
        if said.get("status") == "failed" and not kill_ev:
            status = "failed"  # the backend ended it (a time limit, memory, a node): not the researcher's kill
        elif kill_ev or exit_.get("forwarded"):
            status = "killed"
        elif exit_.get("code") == 0 and result.get("status") != "failed":
            status = "done"
        else:
            status = "failed"
    elif gone or lost_ev:
        status = finished or "lost"  # e.g. its supervisor was killed but the command finished
    elif spec.get("direct") or (not spec and not ident):
        status = finished or "running"
    else:
        status = "running" if ident else "queued"
    status = "done" if got.note and status in ACTIVE else status  # a cell's sound result outlives other damage
    started = ident.get("started") or (start_ev or {}).get("t")
    ended = (exit_ or {}).get("ended") or (end_ev or {}).get("t") if status in TERMINAL else None
    created = spec.get("created") or started or _mtime(run_dir)
    error = result.get("error") or (end_ev or {}).get("error") or (exit_ or {}).get("error")
    note = said.get("note") or ((lost_ev or {}).get("reason") if status == "lost" else None) or got.note
    if said.get("status") == "failed":
        error = f"{said.get('note')}: {error}" if error else said.get("note")
    row = {
        "id": run_dir.name, "name": spec.get("name"),
        "label": stored_label(cells, spec.get("name")), "signature": run_signature(cells, backend),
        "cells": json.dumps(cells), "n_cells": len(cells), "backend": backend,
        "handle": json.dumps(handle) if handle else None,
        "pid": ident.get("pid") or handle.get("pid"), "create_time": ident.get("create_time"),
        "job_id": handle.get("job_id"), "host": ident.get("host") or handle.get("host"),
        "run_dir": str(run_dir.resolve()), "created": created, "started": started, "ended": ended,
        "status": status, "exit_code": (exit_ or {}).get("code"), "exit_signal": (exit_ or {}).get("signal"),
        "error": error, "note": note, "expect": spec.get("expect"),
        "overrun": 1 if overrun_ev else 0, "overrun_at": (overrun_ev or {}).get("t"),
        "kill_signal": (kill_ev or {}).get("signal"), "killed_at": (kill_ev or {}).get("t"),
        "killed_by": (kill_ev or {}).get("by"), "updated": time.time(), "stamp": stamp,
    }
    cell_rows = []
    plan = spec.get("plan")
    for i, cell in enumerate(result_cells):
        sig = signature(cell, backend)
        secs = (cell.get("seconds") or {}).get("total")
        cell_rows.append({"run_id": row["id"], "idx": i, "signature": sig_string(sig), "sig": json.dumps(sig),
                          "label": stored_label([cell]), "ari": cell.get("ari"), "nmi": cell.get("nmi"),
                          "random_init": int(bool(cell.get("random_init"))), "seconds": secs,
                          "entry": json.dumps(_indexed_entry(cell, result.get("slice"), plan))})
    if (run_dir / FANOUT).is_file():  # a fanned-out grid: one row over its cells' own run dirs
        return aggregate(run_dir, row)
    return row, cell_rows


def _indexed_entry(cell: dict, slice_id, plan) -> dict:
    """A result.json cell as the index keeps it for `mihd results`: its scores and options without the per-spot
    labels (`labelled` says it had them), with its slice (a study's cells say theirs, else the run's), the first
    seed of its plan (`plan_seed`), k_auto (k was the slice's truth count) and drop_unlabelled (not pooled)."""
    labelled = "labels" in cell or bool(cell.get("labelled"))  # a scores.json cell (run_scores) says it had them
    return {**{k: v for k, v in cell.items() if k != "labels"}, "labelled": labelled,
            "slice": cell.get("slice") or slice_id, "plan_seed": plan.seeds[0] if plan is not None and plan.seeds else None,
            "k_auto": plan is not None and plan.n_clusters is None, "drop_unlabelled": bool(plan and plan.drop_unlabelled)}


def row_handle(row: dict) -> dict:
    """A registry row's backend handle with its run dir: what a backend's poll, kill and process_root take."""
    return {**(json.loads(row["handle"]) if row.get("handle") else {}), "run_dir": str(row["run_dir"])}


def _corrupt_row(run_dir: Path, why: str, status: str = "corrupt") -> dict:
    """The row of a run dir with a bad file (`corrupt`, error `<file>: <why>`) or one this user may not read
    (`unreadable`); what can still be read leniently (its name, cells, handle) is kept to find and kill it."""
    handle = read_json(run_dir / HANDLE)
    handle = handle if isinstance(handle, dict) else {}
    try:
        spec = read_spec(run_dir) or {}
        label = stored_label(spec.get("cells") or [], spec.get("name"))
    except Exception:  # any shape at all: the label is a courtesy, the row must exist
        spec, label = {}, run_dir.name
    backend = spec.get("backend") if isinstance(spec.get("backend"), str) else handle.get("backend")
    return {**{c: None for c in RUN_COLUMNS}, "id": run_dir.name, "name": spec.get("name"), "label": label,
            "signature": "", "cells": "[]", "n_cells": 0, "backend": backend if isinstance(backend, str) else "local",
            "handle": json.dumps(handle) if handle else None, "run_dir": str(run_dir.resolve()),
            "created": spec.get("created") if isinstance(spec.get("created"), (int, float)) else _mtime(run_dir),
            "status": status, "error": why, "overrun": 0, "updated": time.time()}


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def describe_part(part_dir: Path, gone: bool = False, kept=None, grid_run_dir: str = "") -> tuple[dict, list[dict]]:
    """A part's row and cell rows (describe); a part whose run dir was deleted under the grid
    fails alone, saying so, rather than reading as running forever. A part whose files did not change is
    answered from the index where it holds it (grid_index.known, within grid_index.reusing), else from `kept`,
    its entry in the grid's parts.json (parts_file), named under `grid_run_dir`."""
    answer = None if gone else known(part_dir) or (kept and kept_part(kept, part_dir, grid_run_dir))
    if answer:
        return answer
    row, cells = describe(part_dir, gone=gone, part=True)
    if not Path(part_dir).is_dir():
        return {**row, "status": "failed", "error": f"{part_dir.parent.name}/{part_dir.name}: its run dir is gone",
                "started": None, "ended": None}, []
    return row, cells


def aggregate(grid_dir: Path, row: dict) -> tuple[dict, list[dict]]:
    """The grid's row and cell rows from its parts' files (describe calls this for a fanned-out grid)."""
    from .reasons import failure_reason

    try:
        fan = read_fanout(grid_dir)
    except MihdError as exc:
        return {**row, "status": "corrupt", "error": str(exc)}, []
    kept = read_parts(grid_dir)
    named = [(name, describe_part(d, kept=kept.get(name), grid_run_dir=row["run_dir"]))
             for name, d in parts(grid_dir, fan)]
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
        keep_parts(grid_dir, out[PARTS], kept)
    cell_rows = [{**crows[0], "run_id": row["id"], "idx": i} for i, (_, crows) in enumerate(cells) if crows]
    return out, cell_rows
