"""The grid `mihd` computes for the dashboard: one state per (fusion method x vision column) cell, and
what launching a cell, a row, a column or the whole grid means as RunSpecs.

For one slice, gene encoder, clusterer and patch variant the grid has a row per fusion method and a
column per vision encoder, per custom vision cache name found for that slice (e.g. `scan_uni2`), and a
`none` column (gene-only baselines). A cell keeps two things apart, so neither hides the other:
- its latest result: the newest score of the cell over every run (the ARI, flagged when an input had
  random weights), with the history of its scores;
- its latest attempt: the newest run that computes the cell, in that cell's own outcome (queued,
  running with its %, overrunning, orphaned; done; failed with the cell's one-line reason; killed; lost;
  corrupt). A grid run killed half way keeps the outcomes of the cells it finished (from its events).
A cell that was never attempted is `ready` (inputs cached), `never` (can run, computes its inputs) or
`no weights` (an input is not cached and its encoder has no weights here: it cannot run). The slice
ALL_SLICES shows each combination over a cohort of slices instead (grid_study.py), and launches there are
studies. Pure logic over
RunViews, the registry's scores and the cache inventory, unit-tested without a terminal; how a state reads
on screen is the dashboard's (mihd_tui/wording.py). No heavy imports.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

from .cache import GENE_VARIANT
from .cluster import CLUSTERERS as _CLUSTERERS
from .data.registry import registered
from .encoders import GENE_ENCODERS, VISION_ENCODERS
from .encoders.vision_models import VISION_MODELS
from .errors import MihdError
from .fusion import FUSIONS
from .inventory import cached_inputs, inputs_cached
from .plan import DEFAULT_CLUSTER, DEFAULT_VARIANT, Cell, RunSpec, grid_cells
from .rundir import RunFileError, load_events, read_result, read_spec
from .runs.cells import run_signature, sig_string, signature
from .runs.eta import CELL_KEY, Expected, expected_duration
from .workspace import run_path

NONE = "none"  # the column of cells without a vision embedding
ALL_SLICES = "all slices"  # the slice switcher's last choice: each combination over every slice (a study)
# fusion name -> does it need a vision embedding; clusterers with the default first (both registries
# import without numpy, so the dashboard reads them directly)
FUSION_NEEDS_VISION = {name: m.needs_vision for name, m in FUSIONS.items()}
CLUSTERERS = (DEFAULT_CLUSTER, *(c for c in _CLUSTERERS if c != DEFAULT_CLUSTER))
ARI_BANDS = (0.2, 0.4, 0.6, 0.8)  # band i = number of these thresholds the ARI reaches
WEIGHTS_TTL = 30.0  # seconds a weights look-up is believed (files dropped in later show up by then)

# states, in the order a legend lists them
NEVER, READY, NO_WEIGHTS, QUEUED, RUNNING, OVERRUN, ORPHANED, DONE, FAILED, KILLED, LOST, CORRUPT, NA = (
    "never", "ready", "no weights", "queued", "running", "overrun", "orphaned", "done", "failed", "killed",
    "lost", "corrupt", "n/a")
LATE = "late"  # running, but its trustworthy projection ends past its expected time (mihd.runs.late)
ACTIVE_STATES = (QUEUED, RUNNING, LATE, OVERRUN, ORPHANED)
IN_GRIDS = "in grids"  # Expected.source of a lone cell with no whole-run history, scored inside grids
RECORD = ("ari", "nmi", "random_init", "ari_sd", "error")  # what the grid keeps of a run's cell
ENDED = ("done", FAILED, KILLED, LOST, CORRUPT)  # run statuses after which the run dir no longer changes


@dataclass(frozen=True)
class GridSpec:
    """Which slice of the experiment space the grid shows."""

    slice: str
    gene: str = "pca"
    cluster: str = DEFAULT_CLUSTER
    variant: str = DEFAULT_VARIANT
    cohort: tuple[str, ...] = ()  # the slices ALL_SLICES stands for (with_slice fills it)

    @property
    def slices(self) -> tuple[str, ...]:
        return self.cohort if self.slice == ALL_SLICES else (self.slice,)

    def with_slice(self, name: str, choices: list[str]) -> "GridSpec":
        """The spec switched to slice `name` of the switcher's `choices` (ALL_SLICES: every other choice)."""
        cohort = tuple(c for c in choices if c != ALL_SLICES) if name == ALL_SLICES else ()
        return replace(self, slice=name, cohort=cohort)

    def cell(self, fusion: str, column: str, slice_id: str | None = None) -> Cell:
        vision = None if column == NONE else column
        return Cell(slice_id or self.slice, self.gene, vision, fusion, self.cluster, self.variant if vision else None)

    def cells(self, fusion: str, column: str) -> list[Cell]:
        """The grid cell (fusion, column) on each slice it stands for."""
        return [self.cell(fusion, column, s) for s in self.slices]


class Scored(NamedTuple):
    """One score of a cell in its history: which run, the ARI, and whether an input had random weights."""

    run_id: str
    ari: float
    random_init: bool = False


@dataclass(frozen=True)
class CellState:
    fusion: str
    column: str
    state: str                      # the latest attempt's outcome for this cell (or never/ready/no weights/n/a)
    ari: float | None = None        # the latest result, whichever run scored it
    nmi: float | None = None
    random_init: bool = False
    ari_sd: float | None = None     # sd of the ARI over the seeds of the run that scored it (--seeds)
    scored_by: str | None = None    # the run of the latest result
    run_id: str | None = None       # the latest attempt's run (else the run of the latest result)
    progress: float | None = None   # 0..1 of this cell, while running
    reason: str | None = None       # one line: why it failed / was lost / is corrupt / cannot run
    history: tuple = ()             # Scored of every score of the cell, oldest first
    runs: tuple = ()                # ids of the runs that computed the cell, newest first
    slices: tuple = ()              # ALL_SLICES: (slice, ARI) of each slice that has a score; ari/ari_sd over them
    cohort: int = 0                 # ALL_SLICES: the slices of the cohort (a running cell reads `1/2` scored)

    @property
    def band(self) -> int | None:
        return ari_band(self.ari) if self.scored_by is not None else None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def runnable(self) -> bool:
        return self.state not in (NA, NO_WEIGHTS)


@dataclass
class Grid:
    spec: GridSpec
    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], CellState] = field(default_factory=dict)

    def __getitem__(self, key: tuple[str, str]) -> CellState:
        return self.cells[key]

    def first_runnable(self) -> tuple[str, str] | None:
        """Where a cursor starts: the first cell ready to run, else the first that can run at all."""
        order = [(f, c) for f in self.rows for c in self.columns]
        for wanted in ((READY,), None):
            for key in order:
                cs = self.cells[key]
                if (cs.state in wanted) if wanted else cs.runnable:
                    return key
        return None


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


# -- which encoders can run here ---------------------------------------------------------------------
def _hf_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface" / "hub"


def weights_found(modality: str, name: str) -> bool:
    """Whether `name` can compute an embedding here without being told where its weights are: it needs
    none, or they lie where mihd.encoders looks ($MIHD_WEIGHTS/<name>/, the local Hugging Face cache of
    the model's repository). Names no encoder has (custom cache names) never compute: False."""
    spec = {"gene": GENE_ENCODERS, "vision": VISION_ENCODERS}[modality].get(name)
    if spec is None:
        return False
    if not spec.needs_weights:
        return True
    from .encoders.vision import weights_in_folder  # numpy only; the file names vision.py accepts

    folders = []
    if os.environ.get("MIHD_WEIGHTS"):
        folders.append(Path(os.environ["MIHD_WEIGHTS"]).expanduser() / name)
    model = VISION_MODELS.get(name) if modality == "vision" else None
    if model is not None and model.hf_repo:
        snapshots = _hf_cache() / f"models--{model.hf_repo.replace('/', '--')}" / "snapshots"
        folders += sorted(snapshots.iterdir()) if snapshots.is_dir() else []
    if modality == "gene":  # scgpt: a checkpoint folder
        return any((f / "best_model.pt").is_file() for f in folders)
    return any(f.is_dir() and weights_in_folder(f) is not None for f in folders)


class WeightsCheck:
    """weights_found, remembered for WEIGHTS_TTL seconds (the grid asks on every refresh)."""

    def __init__(self, ttl: float = WEIGHTS_TTL):
        self.ttl, self._seen = ttl, {}

    def __call__(self, modality: str, name: str) -> bool:
        now = time.monotonic()
        got = self._seen.get((modality, name))
        if got is None or now - got[1] > self.ttl:
            got = self._seen[(modality, name)] = (weights_found(modality, name), now)
        return got[0]


def missing_weights(cell: Cell, cached: set, found=weights_found) -> str | None:
    """Why the cell cannot run here ("no weights for uni2"), or None when it can: every input is cached or
    its encoder computes it (needs no weights or has them)."""
    wanted = [("gene", cell.gene, GENE_VARIANT)] + ([("vision", cell.vision, cell.variant)] if cell.vision else [])
    for modality, name, variant in wanted:
        if (cell.slice, modality, name, variant) not in cached and not found(modality, name):
            known = name in (GENE_ENCODERS if modality == "gene" else VISION_ENCODERS)
            return f"no weights for {name}" if known else f"{name} is not cached for {cell.slice}"
    return None


# -- choices ---------------------------------------------------------------------------------------
def slice_choices(root: Path, entries: list[dict]) -> list[str]:
    """Registered slices, slices with cache entries, and `demo` (made on first use); demo first; then, when
    there are several, ALL_SLICES."""
    names = set(registered(Path(root))) | {e.get("slice") for e in entries}
    names.discard(None)
    names.add("demo")
    choices = ["demo"] + sorted(names - {"demo"})
    return choices + [ALL_SLICES] if len(choices) > 1 else choices


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
        return self._run_cells[run_id]

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
            from .grid_study import study_grid

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
        """A shown cell's scores as Scored, each with its random-init flag: from the run's outcome when the
        run is among the views (every active run is), else from the ended run's records (read once)."""
        flags = {o.run_id: o.random_init for o in outcomes}
        return tuple(Scored(run_id, ari, flags[run_id] if run_id in flags else bool(
            (self.cell_records(run_id, self._run_dir(run_id, run_dirs)).get(key) or {}).get("random_init")))
            for run_id, ari in scores)

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
            result = dict(ari=r.ari, nmi=r.nmi, random_init=r.random_init, ari_sd=r.ari_sd, scored_by=r.run_id)
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
    """A fanned-out grid's cell (fanout_status.CellView) as the cell's outcome; `random_init` from its
    own result.json (an input had random weights)."""
    state = OVERRUN if part.overrun and part.status == RUNNING else part.status
    scored = part.status == DONE
    progress = min(max(part.progress or 0.0, 0.0), 1.0) if state in (RUNNING, OVERRUN, ORPHANED) else None
    return _Outcome(run_id, state, part.ari, part.nmi, random_init, scored=scored, progress=progress,
                    reason=part.error if part.status in (FAILED, CORRUPT, LOST) else None)


def _sd(rec: dict) -> float | None:
    sd = rec.get("ari_sd")
    return sd if isinstance(sd, (int, float)) else None


# -- launching -------------------------------------------------------------------------------------
def skipped_columns(grid: Grid, fusions: list[str], columns: list[str]) -> list[str]:
    """Columns of a selection none of whose valid cells can run here (no weights, nothing cached)."""
    return [c for c in columns if not any(grid[(f, c)].runnable for f in fusions if is_valid(f, c))
            and any(is_valid(f, c) for f in fusions)]


def plan_launches(spec: GridSpec, grid: Grid, fusions: list[str], columns: list[str]) -> list[tuple[list[str], list[str]]]:
    """Split a selection (a row, a column, the grid) into runnable (fusions, columns) groups: the vision
    columns in one run, the `none` column in another; columns that cannot run (skipped_columns) left out."""
    skip = set(skipped_columns(grid, fusions, columns))
    columns = [c for c in columns if c not in skip]
    out = []
    visions = [c for c in columns if c != NONE]
    vf = [f for f in fusions if visions and any(is_valid(f, c) for c in visions)]
    if visions and vf:
        out.append((vf, visions))
    if NONE in columns:
        nf = [f for f in fusions if is_valid(f, NONE)]
        if nf:
            out.append((nf, [NONE]))
    return out


def launch_plans(spec: GridSpec, groups: list[tuple[list[str], list[str]]], **options) -> list[RunSpec]:
    """One RunSpec per (fusions, columns) group of `plan_launches`: a `run` for one cell, a `grid` for several
    (on ALL_SLICES a study: the cells on every slice of the cohort).

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
        cells = tuple(c for s in spec.slices for c in grid_cells(s, [spec.gene], visions, fusions, [spec.cluster],
                                                                   spec.variant))
        plans.append(RunSpec(cells, kind="run" if len(cells) == 1 else "grid", **options))
    return plans


def expected_for(spec: GridSpec, fusions: list[str], columns: list[str], entries: list[dict],
                 history: dict[str, list[float]], backend: str = "local", expect: float | None = None,
                 n_seeds: int = 1) -> Expected:
    """Expected running time of launching these cells now, from the history of the same signatures.

    Whether the inputs are cached now and how many seeds each cell runs are part of the signature (a cold
    cell also extracts; five seeds are five times the fusing); a local launch also learns from direct
    `mihd run`s of the same cell, which run the same way.
    """
    cached = cached_inputs(entries)
    cells = [cell for f in fusions for c in columns if is_valid(f, c) for cell in spec.cells(f, c)]
    flags = [inputs_cached(c, cached) for c in cells]
    inside = 0
    for be in ([backend, "direct"] if backend == "local" else [backend]):
        strings = [sig_string(signature(c, be, flag, n_seeds)) for c, flag in zip(cells, flags)]
        got = expected_duration(run_signature(cells, be, flags, n_seeds), history, expect, strings)
        if got.seconds is not None:
            return got
        inside += len(history.get(CELL_KEY + strings[0], ())) if len(strings) == 1 else 0
    # a lone cell scored only inside grids has runs, but none that times a run of it alone (start-up, load)
    return Expected(None, IN_GRIDS, inside) if inside else Expected(None)
