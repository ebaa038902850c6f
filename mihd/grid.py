"""The grid `mihd` computes for the dashboard: one state per (fusion method x vision column) cell, and
what launching a cell, a row, a column or the whole grid means as RunSpecs.

For one slice, gene encoder, clusterer and patch variant the grid has a row per fusion method and a
column per vision encoder, per custom vision cache name found for that slice (e.g. `scan_uni2`), and a
`none` column (gene-only baselines). Each cell's state comes from, newest first: an active run that
computes it (queued / running with its % / overrunning), the latest finished run that computed it
(its ARI, flagged when an input had random weights; failed; killed; lost), else the cache (inputs
cached: it can run now) or nothing (never run). Pure logic over RunViews, the registry's scores and
the cache inventory, so it is unit-tested without a terminal; how a state reads on screen is the
dashboard's (mihd_tui/wording.py). No heavy imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from .cluster import CLUSTERERS as _CLUSTERERS
from .data.registry import registered
from .encoders import GENE_ENCODERS, VISION_ENCODERS
from .errors import MihdError
from .fusion import FUSIONS
from .inventory import cached_inputs, inputs_cached
from .plan import DEFAULT_CLUSTER, DEFAULT_VARIANT, Cell, RunSpec, grid_cells
from .rundir import read_result, read_spec
from .runs.cells import run_signature, sig_string, signature
from .runs.eta import Expected, expected_duration

NONE = "none"  # the column of cells without a vision embedding
# fusion name -> does it need a vision embedding; clusterers with the default first (both registries
# import without numpy, so the dashboard reads them directly)
FUSION_NEEDS_VISION = {name: m.needs_vision for name, m in FUSIONS.items()}
CLUSTERERS = (DEFAULT_CLUSTER, *(c for c in _CLUSTERERS if c != DEFAULT_CLUSTER))
ARI_BANDS = (0.2, 0.4, 0.6, 0.8)  # band i = number of these thresholds the ARI reaches

# states, in the order a legend lists them
NEVER, READY, QUEUED, RUNNING, OVERRUN, DONE, FAILED, KILLED, LOST, NA = (
    "never", "ready", "queued", "running", "overrun", "done", "failed", "killed", "lost", "n/a")


@dataclass(frozen=True)
class GridSpec:
    """Which slice of the experiment space the grid shows."""

    slice: str
    gene: str = "pca"
    cluster: str = DEFAULT_CLUSTER
    variant: str = DEFAULT_VARIANT

    def cell(self, fusion: str, column: str) -> Cell:
        vision = None if column == NONE else column
        return Cell(self.slice, self.gene, vision, fusion, self.cluster, self.variant if vision else None)


@dataclass(frozen=True)
class CellState:
    fusion: str
    column: str
    state: str
    ari: float | None = None
    nmi: float | None = None
    random_init: bool = False
    ari_sd: float | None = None     # sd of the ARI over the seeds of the run that scored it (--seeds)
    run_id: str | None = None       # the run behind the state (active, or the one that scored it)
    progress: float | None = None   # 0..1 of this cell, while running
    previous_ari: float | None = None  # the last score while a new run is active

    @property
    def band(self) -> int | None:
        return ari_band(self.ari) if self.state == DONE else None


@dataclass
class Grid:
    spec: GridSpec
    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], CellState] = field(default_factory=dict)

    def __getitem__(self, key: tuple[str, str]) -> CellState:
        return self.cells[key]


def ari_band(ari: float | None) -> int | None:
    """0 (poor) .. 4 (excellent): what colour a score gets."""
    if ari is None:
        return None
    return sum(ari >= t for t in ARI_BANDS)


def stored_key(cell: dict) -> tuple | None:
    """The Cell.key of a stored cell (a result.json cell, a score's signature); None when incomplete."""
    try:
        return Cell.from_dict(signature(cell)).key
    except MihdError:
        return None


def is_valid(fusion: str, column: str) -> bool:
    return column != NONE or not FUSION_NEEDS_VISION.get(fusion, True)


# -- choices ---------------------------------------------------------------------------------------
def slice_choices(root: Path, entries: list[dict]) -> list[str]:
    """Registered slices, slices with cache entries, and `demo` (made on first use); demo first."""
    names = set(registered(Path(root))) | {e.get("slice") for e in entries}
    names.discard(None)
    names.add("demo")
    return ["demo"] + sorted(names - {"demo"})


def gene_choices(entries: list[dict], slice_id: str) -> list[str]:
    return _names(GENE_ENCODERS, entries, slice_id, "gene")


def vision_columns(entries: list[dict], slice_id: str) -> list[str]:
    """Vision encoders, then custom cache names found for the slice, then `none`."""
    return _names(VISION_ENCODERS, entries, slice_id, "vision") + [NONE]


def _names(registry: dict, entries: list[dict], slice_id: str, modality: str) -> list[str]:
    custom = sorted({e["name"] for e in entries if e.get("slice") == slice_id and e.get("modality") == modality
                     and e.get("name") and e["name"] not in registry})
    return list(registry) + custom


# -- the grid --------------------------------------------------------------------------------------
class GridState:
    """Computes Grids; remembers each run's cells, random-init flags and ARI sds (run dirs are final on those)."""

    def __init__(self):
        self._run_cells: dict[str, list[tuple]] = {}
        self._stored: dict[str, dict[tuple, tuple[bool, float | None]]] = {}

    def run_cells(self, run_id: str, run_dir: str) -> list[tuple]:
        """The cell keys a run computes, in order (from its spec.json, else its result.json)."""
        if run_id not in self._run_cells:
            spec = read_spec(Path(run_dir))
            if spec is not None and spec["plan"] is not None:
                keys = [c.key for c in spec["plan"].cells]
            else:
                keys = [stored_key(c) for c in (read_result(Path(run_dir)) or {}).get("cells") or []]
                if not keys and spec is None:
                    return []  # spec not written yet: ask again next time
            self._run_cells[run_id] = keys
        return self._run_cells[run_id]

    def stored(self, run_id: str, run_dir: str | None, key: tuple) -> tuple[bool, float | None]:
        """What the run's result.json says of this cell besides its mean scores: whether it used a randomly
        initialised encoder, and the sd of its ARI over seeds (None for one seed)."""
        if run_id not in self._stored:
            flags: dict[tuple, tuple[bool, float | None]] = {}
            if run_dir:
                for c in (read_result(Path(run_dir)) or {}).get("cells") or []:
                    sd = c.get("ari_sd")
                    flags[stored_key(c)] = (bool(c.get("random_init")), sd if isinstance(sd, (int, float)) else None)
            self._stored[run_id] = flags
        return self._stored[run_id].get(key, (False, None))

    def compute(self, spec: GridSpec, views: list, scores: dict[str, dict], entries: list[dict],
                run_dirs: dict[str, str] | None = None) -> Grid:
        """`views`: RunViews (active + recent); `scores`: RunWatcher.latest_scores(); `entries`: cache meta.

        `run_dirs` maps run ids to run dirs for scored runs not among `views` (random-init lookup).
        """
        rows = list(FUSION_NEEDS_VISION)
        columns = vision_columns(entries, spec.slice)
        cached = cached_inputs(entries)
        run_dirs = {**(run_dirs or {}), **{v.id: v.run_dir for v in views}}
        active: dict[tuple, CellState] = {}
        ended: dict[tuple, tuple[str, str]] = {}  # key -> (run id, status) of failed/killed/lost runs
        for v in sorted(views, key=lambda v: v.id):
            keys = self.run_cells(v.id, v.run_dir)
            if v.active:
                for i, key in enumerate(keys):
                    active[key] = _active_state(v, i)
            elif v.status in (FAILED, KILLED, LOST):
                for key in keys:
                    ended[key] = (v.id, v.status)
        latest: dict[tuple, dict] = {}
        for s in scores.values():
            key = stored_key(s["sig"])
            if key not in latest or s["run_id"] > latest[key]["run_id"]:
                latest[key] = s
        grid = Grid(spec, rows, columns)
        for fusion in rows:
            for column in columns:
                cell = spec.cell(fusion, column)
                key = cell.key
                grid.cells[(fusion, column)] = self._state(
                    fusion, column, cell, key, active.get(key), ended.get(key), latest.get(key), cached, run_dirs)
        return grid

    def _state(self, fusion, column, cell, key, act, end, score, cached, run_dirs) -> CellState:
        if not is_valid(fusion, column):
            return CellState(fusion, column, NA)
        prev = score["ari"] if score else None
        if act is not None:
            return replace(act, fusion=fusion, column=column, previous_ari=prev)
        if score is not None and (end is None or score["run_id"] >= end[0]):
            if score["ari"] is None and end is not None and end[0] == score["run_id"]:
                return CellState(fusion, column, end[1], run_id=end[0])
            random_init, ari_sd = self.stored(score["run_id"], run_dirs.get(score["run_id"]), key)
            return CellState(fusion, column, DONE, ari=score["ari"], nmi=score["nmi"], run_id=score["run_id"],
                             random_init=random_init, ari_sd=ari_sd)
        if end is not None:
            return CellState(fusion, column, end[1], run_id=end[0], previous_ari=prev)
        return CellState(fusion, column, READY if inputs_cached(cell, cached) else NEVER)


def _active_state(view, index: int) -> CellState:
    """A cell of an active run: its score once the run has scored it (a grid shows each ARI as it comes),
    else queued, or running (cells before the current one are complete)."""
    if view.status == QUEUED:
        return CellState("", "", QUEUED, run_id=view.id)
    scored = view.cell_results.get(index)
    if scored is not None:
        return CellState("", "", FAILED if scored.get("error") else DONE, ari=scored.get("ari"), nmi=scored.get("nmi"),
                         random_init=bool(scored.get("random_init")), run_id=view.id)
    current = view.cell_index or 0
    if index > current:
        return CellState("", "", QUEUED, run_id=view.id)
    frac = 1.0 if index < current else min(max(view.cell_progress or 0.0, 0.0), 1.0)
    return CellState("", "", OVERRUN if view.overrun else RUNNING, run_id=view.id, progress=frac)


# -- launching -------------------------------------------------------------------------------------
def plan_launches(spec: GridSpec, grid: Grid, fusions: list[str], columns: list[str]) -> list[tuple[list[str], list[str]]]:
    """Split a selection (a row, a column, the grid) into runnable (fusions, columns) groups."""
    out = []
    visions = [c for c in columns if c != NONE]
    vf = [f for f in fusions if visions and any(is_valid(f, c) for c in visions)]
    if visions and vf:
        out.append((vf, visions))
    if NONE in columns:
        nf = [f for f in fusions if is_valid(f, NONE)]
        if nf and (len(columns) == 1 or len(fusions) == 1):  # the whole grid stays one run: its vision part
            out.append((nf, [NONE]))
    return out


def launch_plans(spec: GridSpec, groups: list[tuple[list[str], list[str]]], **options) -> list[RunSpec]:
    """One RunSpec per (fusions, columns) group of `plan_launches`: a `run` for one cell, a `grid` for several.

    Cells that cannot run (a vision-needing fusion in the `none` column) are left out; `options` are
    RunSpec fields shared by every run (n_clusters, override, refine, backend, backend_options, expect).
    """
    plans = []
    for fusions, columns in groups:
        visions = [c for c in columns if c != NONE]
        if visions and len(visions) != len(columns):
            raise ValueError("launch_plans: `none` and vision columns go in separate runs")
        fusions = [f for f in fusions if all(is_valid(f, c) for c in columns)]
        if not fusions:
            raise ValueError("launch_plans: no runnable cell")
        cells = grid_cells(spec.slice, [spec.gene], visions, fusions, [spec.cluster], spec.variant)
        plans.append(RunSpec(cells, kind="run" if len(cells) == 1 else "grid", **options))
    return plans


def expected_for(spec: GridSpec, fusions: list[str], columns: list[str], entries: list[dict],
                 history: dict[str, list[float]], backend: str = "local", expect: float | None = None) -> Expected:
    """Expected running time of launching these cells now, from the history of the same signatures.

    Whether the inputs are cached now is part of the signature (a cold cell also extracts); a local
    launch also learns from direct `mihd run`s of the same cell, which run the same way.
    """
    cached = cached_inputs(entries)
    cells = [spec.cell(f, c) for f in fusions for c in columns if is_valid(f, c)]
    flags = [inputs_cached(c, cached) for c in cells]
    for be in ([backend, "direct"] if backend == "local" else [backend]):
        strings = [sig_string(signature(c, be, flag)) for c, flag in zip(cells, flags)]
        got = expected_duration(run_signature(cells, be, flags), history, expect, strings)
        if got.seconds is not None:
            return got
    return Expected(None)
