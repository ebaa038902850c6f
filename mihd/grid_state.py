"""The grid's cell states (GridState.compute): what the views of active and recent runs, the registry's
scores and the cache inventory say of each (fusion x vision column) cell of one slice; the slice ALL_SLICES
is a study's grid (grid_study). GridState remembers what ended runs say of their cells (their run dirs no
longer change). The states and the Grid they fill are mihd.grid's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import MihdError
from .fusion import FUSIONS
from .grid import (ALL_SLICES, CORRUPT, DONE, ENDED, FAILED, FUSION_NEEDS_VISION, LATE, LOST, NA, NEVER, NO_WEIGHTS,
                   ORPHANED, OVERRUN, QUEUED, READY, RECORD, RUNNING, CellState, Grid, GridSpec, Scored, is_valid,
                   stored_key, vision_columns)
from .grid_study import study_grid
from .grid_weights import WeightsCheck, missing_weights
from .inventory import cached_inputs, inputs_cached
from .rundir import RunFileError, load_events, read_result, read_spec
from .workspace import run_path


@dataclass(frozen=True)
class _Outcome:
    """What one run says of one cell."""

    run_id: str
    state: str
    ari: float | None = None
    nmi: float | None = None
    random_init: bool = False
    ari_sd: float | None = None
    scored: bool = False
    progress: float | None = None
    reason: str | None = None


class GridState:
    """Computes Grids; remembers what ended runs say of their cells (their run dirs no longer change)."""

    def __init__(self, weights=None, root: Path | None = None):
        self.root = root  # where run dirs of scores older than the views are found (their random-init flag)
        self._run_cells: dict[str, list[tuple]] = {}
        self._how: dict[str, tuple[bool, bool]] = {}  # run id -> (labelled spots only, refined), from its plan
        self._ended: dict[str, dict[tuple, dict]] = {}
        self._history: tuple[list | None, dict] = (None, {})
        self.weights = weights or WeightsCheck()

    def run_cells(self, run_id: str, run_dir: str) -> list[tuple]:
        """The cell keys a run computes, in order (from its spec.json, else its result.json)."""
        if run_id not in self._run_cells:
            try:
                spec = read_spec(Path(run_dir))
            except (MihdError, OSError, ValueError):  # a corrupt spec.json: its cells are unknown
                spec = None
            if spec is not None and spec["plan"] is not None:
                keys = [c.key for c in spec["plan"].cells]
            else:
                keys = [stored_key(c) for c in (read_result(Path(run_dir)) or {}).get("cells") or []]
                if not keys and spec is None:
                    return []  # spec not written yet: ask again next time
            self._run_cells[run_id] = keys
            plan = spec["plan"] if spec else None
            self._how[run_id] = (bool(plan and plan.drop_unlabelled), bool(plan and plan.refine))
        return self._run_cells[run_id]

    def labelled_only(self, run_id: str, run_dir: str | None = None) -> bool:
        """Whether a run scored only the spots with a truth label (`--drop-unlabelled`, said by its spec, read
        once with its cells): its scores are never pooled with those over every spot."""
        return self._scored_how(run_id, run_dir)[0]

    def refined(self, run_id: str, run_dir: str | None = None) -> bool:
        """Whether a run refined its labels spatially (`--refine`, said by its spec, read once with its cells): a
        score shown in the grid says so, as the run's launch did."""
        return self._scored_how(run_id, run_dir)[1]

    def _scored_how(self, run_id: str, run_dir: str | None) -> tuple[bool, bool]:
        run_dir = run_dir or self._run_dir(run_id, {})
        if run_id not in self._run_cells and run_dir:
            self.run_cells(run_id, run_dir)
        return self._how.get(run_id, (False, False))

    def cell_records(self, run_id: str, run_dir: str | None) -> dict[tuple, dict]:
        """What an ended run wrote of each cell it finished: result.json's cells, else (killed before it wrote
        one) its `metric` events; {key: {ari, nmi, random_init, ari_sd, error}} (only these: a grid's records
        stay small however many runs it remembers)."""
        if run_id not in self._ended:
            out: dict[tuple, dict] = {}
            if run_dir:
                cells = (read_result(Path(run_dir)) or {}).get("cells")
                if cells:
                    for c in cells:
                        out[stored_key(c)] = {k: c.get(k) for k in RECORD}
                else:
                    keys = self.run_cells(run_id, run_dir)
                    try:
                        events = load_events(Path(run_dir))
                    except RunFileError:
                        events = []
                    for ev in events:
                        i = ev.get("index")
                        if ev.get("kind") == "metric" and isinstance(i, int) and 0 <= i < len(keys):
                            out[keys[i]] = {k: ev.get(k) for k in RECORD}
            self._ended[run_id] = out
        return self._ended[run_id]

    def compute(self, spec: GridSpec, views: list, scores: dict[str, dict], entries: list[dict],
                run_dirs: dict[str, str] | None = None, all_scores: list[dict] | None = None) -> Grid:
        """`views`: RunViews (active + recent); `scores`: RunWatcher.latest_scores(); `entries`: cache meta.

        `run_dirs` maps run ids to run dirs for scored runs not among `views` (random-init lookup);
        `all_scores` ({run_id, ari, sig} of every run's every cell) gives each cell its history of scores.
        """
        if spec.slice == ALL_SLICES:
            return study_grid(self, spec, views, scores, entries)
        rows = list(FUSION_NEEDS_VISION)
        columns = vision_columns(entries, spec.slice)
        cached = cached_inputs(entries)
        run_dirs = {**(run_dirs or {}), **{v.id: v.run_dir for v in views}}
        outcomes: dict[tuple, list[_Outcome]] = {}
        for v in sorted(views, key=lambda v: v.id):
            for i, key in enumerate(self.run_cells(v.id, v.run_dir)):
                outcomes.setdefault(key, []).append(self._outcome(v, i, key))
        for s in scores.values():
            key = stored_key(s["sig"])
            if not any(o.run_id == s["run_id"] for o in outcomes.get(key, ())):
                rec = self.cell_records(s["run_id"], run_dirs.get(s["run_id"])).get(key) or {}
                outcomes.setdefault(key, []).append(_Outcome(
                    s["run_id"], DONE, s["ari"], s["nmi"], bool(rec.get("random_init")), _sd(rec), scored=True))
        history = self.history(all_scores or [])
        grid = Grid(spec, rows, columns)
        for fusion in rows:
            for column in columns:
                cell = spec.cell(fusion, column)
                grid.cells[(fusion, column)] = self._state(
                    fusion, column, cell, sorted(outcomes.get(cell.key, ()), key=lambda o: o.run_id),
                    self._scored(cell.key, history.get(cell.key, ()), outcomes.get(cell.key, ()), run_dirs), cached)
        return grid

    def history(self, all_scores: list[dict]) -> dict[tuple, list]:
        """Each cell's (run id, ARI) over runs, oldest first. Made again only for a new list (a caller keeps
        one until a run ends), keying each distinct signature once: a study holds thousands of scores."""
        if all_scores is not self._history[0]:
            keys: dict[tuple, tuple | None] = {}
            history: dict[tuple, list] = {}
            for s in sorted(all_scores, key=lambda s: s["run_id"]):
                if s.get("ari") is not None:
                    sig = tuple(sorted(s["sig"].items()))
                    key = keys[sig] if sig in keys else keys.setdefault(sig, stored_key(s["sig"]))
                    history.setdefault(key, []).append((s["run_id"], s["ari"]))
            self._history = (all_scores, history)
        return self._history[1]

    def _scored(self, key: tuple, scores, outcomes, run_dirs: dict[str, str]) -> tuple:
        """A shown cell's scores as Scored, each with its random-init flag (from the run's outcome when the
        run is among the views, as every active run is, else from the ended run's records, read once) and
        whether its run scored labelled spots only and refined its labels."""
        flags = {o.run_id: o.random_init for o in outcomes}
        return tuple(Scored(run_id, ari, flags[run_id] if run_id in flags else bool(
            (self.cell_records(run_id, self._run_dir(run_id, run_dirs)).get(key) or {}).get("random_init")),
            *self._scored_how(run_id, self._run_dir(run_id, run_dirs))) for run_id, ari in scores)

    def _run_dir(self, run_id: str, run_dirs: dict[str, str]) -> str | None:
        if run_id in run_dirs or self.root is None:
            return run_dirs.get(run_id)
        return str(run_path(self.root, run_id))

    def _state(self, fusion, column, cell, outcomes: list[_Outcome], history: tuple, cached) -> CellState:
        if not is_valid(fusion, column):
            return CellState(fusion, column, NA)
        runs = tuple(dict.fromkeys(o.run_id for o in reversed(outcomes)))
        scored = [o for o in outcomes if o.scored]
        result = {}
        if scored:
            r = scored[-1]
            result = dict(ari=r.ari, nmi=r.nmi, random_init=r.random_init, ari_sd=r.ari_sd, scored_by=r.run_id,
                          labelled_only=self.labelled_only(r.run_id), refined=self.refined(r.run_id))
        if outcomes:
            last = outcomes[-1]
            return CellState(fusion, column, last.state, run_id=last.run_id, progress=last.progress,
                             reason=last.reason, history=history, runs=runs, **result)
        if inputs_cached(cell, cached) and not FUSIONS[fusion].missing:
            return CellState(fusion, column, READY, history=history)
        why = FUSIONS[fusion].missing or missing_weights(cell, cached, self.weights)
        return CellState(fusion, column, NO_WEIGHTS if why else NEVER, reason=why, history=history)

    def _outcome(self, view, index: int, key: tuple) -> _Outcome:
        """What run `view` says of its cell `index`: in an active run the cell's own progress (a grid shows
        each score as it comes); in an ended one the cell's record, else the run's status. A fanned-out
        grid's cells are runs of their own: each says its state (RunView.cells)."""
        part = next((c for c in getattr(view, "cells", None) or () if c.index == index), None)
        if part is not None:
            rec = self.cell_records(f"{view.id}/{index}", part.run_dir).get(key) if part.status == DONE else None
            return _part_outcome(view.id, part, bool((rec or {}).get("random_init")))
        if view.active:
            if view.status == QUEUED:
                return _Outcome(view.id, QUEUED)
            rec = view.cell_results.get(index)
            if rec is None:
                current = view.cell_index or 0
                if index > current:
                    return _Outcome(view.id, QUEUED)
                frac = 1.0 if index < current else min(max(view.cell_progress or 0.0, 0.0), 1.0)
                state = ORPHANED if view.status == ORPHANED else OVERRUN if view.overrun else \
                    LATE if view.late else RUNNING
                return _Outcome(view.id, state, progress=frac, reason=view.late if state == LATE else None)
        else:
            rec = self.cell_records(view.id, view.run_dir).get(key)
            if rec is None:
                status = view.status if view.status in ENDED else LOST
                reason = view.error if status in (FAILED, CORRUPT) else None
                return _Outcome(view.id, status, reason=reason)
        error = rec.get("error")
        return _Outcome(view.id, FAILED if error else DONE, rec.get("ari"), rec.get("nmi"),
                        bool(rec.get("random_init")), _sd(rec), scored=not error, reason=error or None)


def _part_outcome(run_id: str, part, random_init: bool) -> _Outcome:
    """A fanned-out grid's cell (grid_view.CellView) as the cell's outcome; `random_init` from its
    own result.json (an input had random weights)."""
    state = OVERRUN if part.overrun and part.status == RUNNING else LATE if part.late and part.status == RUNNING \
        else part.status
    scored = part.status == DONE
    progress = min(max(part.progress or 0.0, 0.0), 1.0) if state in (RUNNING, LATE, OVERRUN, ORPHANED) else None
    why = part.error if part.status in (FAILED, CORRUPT, LOST) else part.late if state == LATE else None
    return _Outcome(run_id, state, part.ari, part.nmi, random_init, scored=scored, progress=progress, reason=why)


def _sd(rec: dict) -> float | None:
    sd = rec.get("ari_sd")
    return sd if isinstance(sd, (int, float)) else None
