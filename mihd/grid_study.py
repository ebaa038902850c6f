"""The grid on `all slices` (grid.ALL_SLICES): each combination's mean ARI over the slices of the cohort that
have a score for it, for the dashboard's study view.

Per slice a cell's score is its latest run's (a run of several seeds scores their mean), so the grid's
number is the mean over slices of per-slice means, as `mihd results --across-slices` computes it (mihd.study);
`slices` keeps each slice's score for the line under the grid. Scores of labelled spots only
(`--drop-unlabelled`) and of every spot are two measures: a mean takes the newest run's. A combination that a
run still computes on some slice shows `running` with how many of the cohort's slices are scored (`1/2`, never
a %); one no slice has a score for is `ready` when every slice has its inputs cached, `no weights` when a slice
lacks one that cannot be computed here, else `never`. Pure logic over the registry's scores, unit-tested without
a terminal. No heavy imports.
"""

from __future__ import annotations

from .grid import (DONE, FUSION_NEEDS_VISION, NA, NEVER, NO_WEIGHTS, NONE, READY, RUNNING, CellState, Grid, GridSpec,
                   is_valid, stored_key, vision_columns)
from .grid_weights import missing_weights
from .fusion import FUSIONS
from .inventory import cached_inputs, inputs_cached
from .results import Stat


def _column(spec: GridSpec, key: tuple) -> str | None:
    """The grid column of a cell key (slice, gene, vision, variant, fusion, cluster) under `spec`, or None
    when the cell is of another slice, gene, clusterer or variant."""
    slice_id, gene, vision, variant, _, cluster = key
    if slice_id not in spec.slices or gene != spec.gene or cluster != spec.cluster:
        return None
    if vision and variant != spec.variant:
        return None
    return vision or NONE


def _one_measure(state, per_slice: dict[str, tuple[str, float | None]]) -> tuple[dict, bool]:
    """The slices' latest scores of one measure, the newest run's: labelled spots only (`--drop-unlabelled`) or
    every spot. A slice whose latest run measured the other is left out of the mean, never pooled in it."""
    if not per_slice:
        return per_slice, False
    flags = {run_id: state.labelled_only(run_id) for run_id, _ in per_slice.values()}
    newest = flags[max(flags)]
    return {s: v for s, v in per_slice.items() if flags[v[0]] == newest}, newest


def study_grid(state, spec: GridSpec, views: list, scores: dict[str, dict], entries: list[dict]) -> Grid:
    """The Grid of `spec` (slice ALL_SLICES) from the latest scores of every slice; `state` (a GridState)
    knows which cells the active runs compute."""
    latest: dict[tuple[str, str], dict[str, tuple[str, float | None]]] = {}
    for s in scores.values():
        key = stored_key(s["sig"])
        column = _column(spec, key) if key else None
        if column is None:
            continue
        per_slice = latest.setdefault((key[4], column), {})
        if key[0] not in per_slice or per_slice[key[0]][0] < s["run_id"]:
            per_slice[key[0]] = (s["run_id"], s["ari"])
    running: dict[tuple[str, str], list[str]] = {}
    for v in views:
        if v.active:
            for key in state.run_cells(v.id, v.run_dir):
                column = _column(spec, key) if key else None
                if column is not None:
                    running.setdefault((key[4], column), []).append(v.id)
    cached = cached_inputs(entries)
    grid = Grid(spec, list(FUSION_NEEDS_VISION), vision_columns(entries, spec.slice))
    for fusion in grid.rows:
        for column in grid.columns:
            where = (fusion, column)
            if not is_valid(fusion, column):
                grid.cells[where] = CellState(fusion, column, NA)
                continue
            per_slice, labelled_only = _one_measure(state, latest.get(where, {}))
            scored = tuple((s, per_slice[s][1]) for s in spec.slices if s in per_slice and per_slice[s][1] is not None)
            stat = Stat.of(a for _, a in scored)
            every = sorted((r for r, _ in latest.get(where, {}).values()), reverse=True)  # both measures' runs
            runs = tuple(dict.fromkeys([*running.get(where, ()), *every]))
            cells = spec.cells(fusion, column)
            why = None
            if where in running:
                what = RUNNING
            elif per_slice:
                what = DONE
            elif all(inputs_cached(c, cached) for c in cells) and not FUSIONS[fusion].missing:
                what = READY
            else:
                why = FUSIONS[fusion].missing or next(
                    filter(None, (missing_weights(c, cached, state.weights) for c in cells)), None)
                what = NO_WEIGHTS if why else NEVER
            grid.cells[where] = CellState(
                fusion, column, what, ari=stat.mean, ari_sd=stat.sd, runs=runs, slices=scored, cohort=len(spec.slices),
                labelled_only=labelled_only, refined=bool(per_slice) and all(state.refined(r) for r, _ in per_slice.values()),
                reason=why, scored_by=max((r for r, _ in per_slice.values()), default=None) if scored else None)
    return grid
