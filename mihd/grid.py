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
studies.

This module holds the grid's words (states, GridSpec, CellState, Grid), its choices and its launches; the
states are computed from RunViews, the registry's scores and the cache inventory by grid_state.GridState,
and whether an encoder has weights here is grid_weights'. Pure logic, unit-tested without a terminal; how a
state reads on screen is the dashboard's (mihd_tui/wording.py). No heavy imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

from .cluster import CLUSTERERS as _CLUSTERERS
from .data.registry import registered
from .encoders import GENE_ENCODERS, VISION_ENCODERS
from .errors import MihdError
from .fusion import FUSIONS
from .inventory import cached_inputs, inputs_cached
from .recommended import RECOMMENDED
from .plan import DEFAULT_CLUSTER, DEFAULT_VARIANT, Cell, RunSpec, grid_cells
from .runs.cells import run_signature, sig_string, signature
from .runs.eta import CELL_KEY, Expected, expected_duration

NONE = "none"  # the column of cells without a vision embedding
ALL_SLICES = "all slices"  # the slice switcher's last choice: each combination over every slice (a study)
# fusion name -> does it need a vision embedding; clusterers with the default first (both registries
# import without numpy, so the dashboard reads them directly)
FUSION_NEEDS_VISION = {name: m.needs_vision for name, m in FUSIONS.items()}
CLUSTERERS = (DEFAULT_CLUSTER, *(c for c in _CLUSTERERS if c != DEFAULT_CLUSTER))
ARI_BANDS = (0.2, 0.4, 0.6, 0.8)  # band i = number of these thresholds the ARI reaches

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
    gene: str = RECOMMENDED.gene  # so the launch dialog's default cell runs the recommended configuration
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
    """One score of a cell in its history: which run, the ARI, whether an input had random weights and whether
    only labelled spots were scored (`--drop-unlabelled`: another measure, never pooled with every spot's)."""

    run_id: str
    ari: float
    random_init: bool = False
    labelled_only: bool = False
    refined: bool = False  # its run refined the labels spatially (--refine)


@dataclass(frozen=True)
class CellState:
    fusion: str
    column: str
    state: str                      # the latest attempt's outcome for this cell (or never/ready/no weights/n/a)
    ari: float | None = None        # the latest result, whichever run scored it
    nmi: float | None = None
    random_init: bool = False
    labelled_only: bool = False     # the result scored only spots with a truth label (--drop-unlabelled)
    refined: bool = False           # the result's labels were spatially refined (--refine)
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
        """Where a cursor starts: on the recommended gene encoder and clusterer, the recommended configuration's
        cell where it can run (Enter launches what `mihd run SLICE` runs); else the first cell ready to run, else
        the first that can run at all."""
        home = (RECOMMENDED.fusion, RECOMMENDED.vision or NONE)
        if ((self.spec.gene, self.spec.cluster) == (RECOMMENDED.gene, RECOMMENDED.cluster) and home in self.cells
                and self.cells[home].runnable):
            return home
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
