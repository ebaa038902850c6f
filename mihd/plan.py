"""The typed experiment plan: one `Cell` and one `RunSpec`, used by the CLI, the pipeline, launch, the
registry and the dashboard alike.

A Cell is one point of the grid (slice x gene x vision (+variant) x fusion x clusterer). A RunSpec is what
one run is asked to compute: its cells and the options they share, plus how it is launched. Both are
frozen, round-trip through JSON (`spec.json` holds a RunSpec under "plan"), and reject a bad shape with
one line naming the field. A grid may span several slices (a study: every cell x slice); a run has one.
Names are checked against the registries only by `check` (the pipeline's
business); this module imports nothing heavy, so the dashboard uses it directly.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .compute import DEVICES
from .errors import MihdError

DEFAULT_CLUSTER = "gmm"
DEFAULT_VARIANT = "standard"
KINDS = ("run", "grid")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


def _name(value: Any, what: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not _NAME.match(value):
        raise MihdError(f"{what}: {value!r} is not a name (letters, digits, _ . + -; at most 64)")
    return value


MAX_SEEDS = 100
MAX_SEED = 2**32 - 1  # numpy's and scikit-learn's random states are 32-bit


def device_users(spec: "RunSpec", cached=None) -> list[str]:
    """What in `spec` runs on its --device, as the options that ask for it: training fusions, and vision encoders
    with weights whose embedding a cell still has to extract (`cached`: per cell, whether its inputs are)."""
    from .encoders import REGISTRY
    from .fusion import FUSIONS

    users = []
    for i, cell in enumerate(spec.cells):
        method = FUSIONS.get(cell.fusion)
        if method is not None and method.trains:
            users.append(f"--fusion {cell.fusion}")
        encoder = REGISTRY["vision"].get(cell.vision or "")
        if encoder is not None and encoder.needs_weights and not (cached and cached[i]):
            users.append(f"--vision {cell.vision}")
    return list(dict.fromkeys(users))


def parse_seeds(text: str, what: str = "--seeds") -> tuple[int, ...]:
    """`5` means seeds 0..4, `0,3` (a comma) those seeds; anything else is a one-line error naming `what`."""
    parts = [p.strip() for p in text.split(",")]
    if "," in text:
        parts = [p for p in parts if p]
    if not parts or not all(p.isdigit() for p in parts):
        shown = text or "''"
        raise MihdError(f"{what} {shown}: give a number of seeds (5 = seeds 0..4) or seeds separated by commas (0,3)")
    values = [int(p) for p in parts]
    if "," not in text:
        if not 1 <= values[0] <= MAX_SEEDS:
            raise MihdError(f"{what} {text}: the number of seeds must be from 1 to {MAX_SEEDS}")
        return tuple(range(values[0]))
    if max(values) > MAX_SEED:
        raise MihdError(f"{what} {text}: a seed is a whole number from 0 to {MAX_SEED}")
    if len(set(values)) != len(values):
        raise MihdError(f"{what} {text}: a seed is listed twice")
    if len(values) > MAX_SEEDS:
        raise MihdError(f"{what} {text}: at most {MAX_SEEDS} seeds")
    return tuple(values)


@dataclass(frozen=True)
class Cell:
    """One point of the grid. `variant` is None exactly when there is no vision embedding."""

    slice: str
    gene: str
    vision: str | None
    fusion: str
    cluster: str = DEFAULT_CLUSTER
    variant: str | None = None

    def __post_init__(self):
        _name(self.slice, "slice")
        _name(self.gene, "gene")
        _name(self.vision, "vision", optional=True)
        _name(self.fusion, "fusion")
        _name(self.cluster, "cluster")
        if self.vision is None:
            object.__setattr__(self, "variant", None)
        else:
            object.__setattr__(self, "variant", _name(self.variant or DEFAULT_VARIANT, "variant"))

    @property
    def label(self) -> str:
        """`demo pca+texture concat gmm`; a non-standard variant shows as `+texture/freq`; no vision: `demo pca mean gmm`."""
        return f"{self.slice} {self.short_label}"

    @property
    def short_label(self) -> str:
        """The label without the slice, where the slice is said once (the cells of one run)."""
        return f"{self.encoders} {self.fusion} {self.cluster}"

    @property
    def encoders(self) -> str:
        if not self.vision:
            return self.gene
        variant = f"/{self.variant}" if self.variant != DEFAULT_VARIANT else ""
        return f"{self.gene}+{self.vision}{variant}"

    @property
    def key(self) -> tuple:
        """What identifies the cell across specs, results and scores."""
        return (self.slice, self.gene, self.vision, self.variant, self.fusion, self.cluster)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "cell") -> "Cell":
        if not isinstance(data, dict):
            raise MihdError(f"{where}: expected an object, got {type(data).__name__}")
        fields = ("slice", "gene", "vision", "fusion", "cluster", "variant")
        missing = [f for f in ("slice", "gene", "fusion") if data.get(f) is None]
        if missing:
            raise MihdError(f"{where}: missing {', '.join(missing)}")
        return cls(**{f: data.get(f) for f in fields if data.get(f) is not None or f == "vision"})


def grid_cells(slice_id: str, genes, visions, fusions, clusters, variant: str = DEFAULT_VARIANT) -> tuple[Cell, ...]:
    """The cross product; `visions` empty (or [None]) means gene-only cells."""
    return tuple(Cell(slice_id, g, v, f, c, variant if v else None)
                 for g, v, f, c in itertools.product(genes, list(visions) or [None], fusions, clusters))


@dataclass(frozen=True)
class RunSpec:
    """What a run computes and how it is launched. `encoder` holds the vision encoder options
    (random_init, weights, precision); `device` where training runs; `slice_options` the slice loading ones (truth_col, fullres);
    `backend_options` are the backend's own, validated by the backend's declaration."""

    cells: tuple[Cell, ...]
    kind: str = "run"
    n_clusters: int | None = None
    refine: bool = False
    seeds: tuple[int, ...] = (0,)
    override: bool = False
    drop_unlabelled: bool = False
    device: str = "auto"
    encoder: dict = field(default_factory=dict)
    slice_options: dict = field(default_factory=dict)
    backend: str = "local"
    backend_options: dict = field(default_factory=dict)
    expect: float | None = None
    name: str | None = None

    def __post_init__(self):
        cells = tuple(self.cells)
        object.__setattr__(self, "cells", cells)
        object.__setattr__(self, "seeds", tuple(self.seeds))
        if not cells:
            raise MihdError("plan: no cells to run")
        if not all(isinstance(c, Cell) for c in cells):
            raise MihdError("plan: cells must be Cell objects")
        if self.kind == "run" and len({c.slice for c in cells}) != 1:
            raise MihdError("plan: all cells of a run must be on one slice")
        if len(set(cells)) != len(cells):
            raise MihdError("plan: a cell is listed twice")
        if self.kind not in KINDS:
            raise MihdError(f"plan: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.kind == "run" and len(cells) != 1:
            raise MihdError("plan: a `run` has exactly one cell (use `grid` for several)")
        if self.n_clusters is not None and (not isinstance(self.n_clusters, int) or isinstance(self.n_clusters, bool)
                                            or not 2 <= self.n_clusters <= 100):
            raise MihdError(f"--n-clusters {self.n_clusters!r}: not a whole number from 2 to 100")
        if not self.seeds or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED
                                     for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise MihdError(f"--seeds: {list(self.seeds)!r} must be distinct whole numbers from 0 to {MAX_SEED}")
        if self.expect is not None and (not isinstance(self.expect, (int, float)) or isinstance(self.expect, bool)
                                        or self.expect <= 0):
            raise MihdError(f"--expect: {self.expect!r} must be a positive duration")
        if self.name is not None and (not isinstance(self.name, str) or not self.name.strip()
                                      or not self.name.isprintable() or "/" in self.name or len(self.name) > 80):
            raise MihdError(f"--name: {self.name!r} must be one line of at most 80 characters, without /")
        for what in ("encoder", "slice_options", "backend_options"):
            if not isinstance(getattr(self, what), dict):
                raise MihdError(f"plan: {what} must be an object")
        if not isinstance(self.slice_options.get("sources", {}), dict):
            raise MihdError("plan: slice_options.sources must be an object (slice: path)")
        _name(self.backend, "--backend")
        if self.device not in DEVICES:
            raise MihdError(f"--device: {self.device!r} is not one of {', '.join(DEVICES)}")

    @property
    def slice(self) -> str:
        """The slice of a one-slice plan; of a study, its first slice (use `slices` or `on_slice`)."""
        return self.cells[0].slice

    @property
    def slices(self) -> tuple[str, ...]:
        """Every slice the plan's cells are on, in the order they are first named."""
        return tuple(dict.fromkeys(c.slice for c in self.cells))

    @property
    def is_study(self) -> bool:
        return len(self.slices) > 1

    def source_of(self, slice_id: str) -> str:
        """What loads `slice_id`: the folder or .h5ad it was given as, else its registered name."""
        sources = self.slice_options.get("sources") or {}
        if slice_id in sources:
            return sources[slice_id]
        if slice_id == self.slice and not self.is_study:
            return self.slice_options.get("source", slice_id)
        return slice_id

    def on_slice(self, slice_id: str) -> "RunSpec":
        """The part of a study on one slice: its cells there, its source as a one-slice plan names it."""
        options = {k: v for k, v in self.slice_options.items() if k not in ("source", "sources")}
        if self.source_of(slice_id) != slice_id:
            options["source"] = self.source_of(slice_id)
        return replace(self, cells=tuple(c for c in self.cells if c.slice == slice_id), slice_options=options)

    @property
    def label(self) -> str:
        """The cell's label for one cell, `demo grid 12 cells` for several, `study 2 slices, 14 cells` for a grid over
        several slices; a name given goes first, never instead (`sweep 1 (demo pca+texture concat gmm)`)."""
        if self.name:
            return f"{self.name} ({replace(self, name=None).label})"
        if len(self.cells) == 1:
            return self.cells[0].label
        if self.is_study:
            return f"study {len(self.slices)} slices, {len(self.cells)} cells"
        return f"{self.slice} grid {len(self.cells)} cells"

    def with_(self, **changes) -> "RunSpec":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["cells"] = [c.to_dict() for c in self.cells]
        data["seeds"] = list(self.seeds)
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "spec") -> "RunSpec":
        if not isinstance(data, dict):
            raise MihdError(f"{where}: expected an object, got {type(data).__name__}")
        if not isinstance(data.get("cells"), list):
            raise MihdError(f"{where}: cells must be a list")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MihdError(f"{where}: unknown field {unknown[0]!r}")
        cells = tuple(Cell.from_dict(c, f"{where}: cells[{i}]") for i, c in enumerate(data["cells"]))
        seeds = data.get("seeds", [0])
        if not isinstance(seeds, list):
            raise MihdError(f"{where}: seeds must be a list")
        try:
            return cls(**{**data, "cells": cells, "seeds": tuple(seeds)})
        except TypeError as exc:
            raise MihdError(f"{where}: {exc}") from None


def plan_argv(plan) -> list[str]:
    """The `mihd run|grid` arguments that ask for `plan` (what the dashboard shows it will launch)."""
    cells = plan.cells
    first = cells[0]
    joined = lambda attr: ",".join(dict.fromkeys(str(getattr(c, attr)) for c in cells if getattr(c, attr)))  # noqa: E731
    argv = [plan.kind, ",".join(plan.source_of(s) for s in plan.slices), "--gene", joined("gene")]
    if first.vision:
        argv += ["--vision", joined("vision"), "--variant", first.variant]
    argv += ["--fusion", joined("fusion"), "--cluster", joined("cluster")]
    for flag, key in (("--truth-col", "truth_col"), ("--fullres", "fullres")):
        if plan.slice_options.get(key):
            argv += [flag, plan.slice_options[key]]
    if plan.n_clusters:
        argv += ["--n-clusters", str(plan.n_clusters)]
    if len(plan.seeds) > 1:
        argv += ["--seeds", ",".join(map(str, plan.seeds))]
    elif plan.seeds != (0,):
        argv += ["--seed", str(plan.seeds[0])]
    for flag, on in (("--refine", plan.refine), ("--override", plan.override),
                     ("--drop-unlabelled", plan.drop_unlabelled), ("--random-init", plan.encoder.get("random_init"))):
        if on:
            argv.append(flag)
    for flag, key in (("--weights", "weights"), ("--precision", "precision")):
        if plan.encoder.get(key):
            argv += [flag, plan.encoder[key]]
    if plan.device != "auto":
        argv += ["--device", plan.device]
    return argv
