"""Laying a fanned-out grid out and submitting it (fanout.py says the layout): which embeddings an extraction must
compute first, each part's command (extractions `python -m mihd extract ...`, cells `python -m fanout.ENTRY cell
...`), the cells' start order (longest expected first, from the registry's history), and the hand-over to the
backend: the local runner, or Slurm's extraction jobs and cell array.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ..jsonio import write_json_atomic
from ..plan import RunSpec
from ..rundir import write_spec
from .fanout import (CELLS, ENTRY, EXTRACT_SPEC, FANOUT, NEEDS, cell_dir, cell_needs, extract_dir, local_lanes,
                     parallel_of, read_fanout, start_order)


def fans_out(spec: RunSpec, options: dict) -> bool:
    """A grid of several cells fans out on Slurm always, locally when it gets more than one worker
    (`--parallel 1` keeps it one process) or spans several slices (a study)."""
    if spec.kind != "grid" or len(spec.cells) < 2:
        return False
    if spec.backend == "slurm" or spec.is_study:  # a study is laid out as parts whatever its width
        return True
    return spec.backend == "local" and local_lanes(parallel_of(options)) > 1


@dataclass(frozen=True)
class Extraction:
    key: str
    modality: str
    name: str
    variant: str | None
    cells: tuple[int, ...]
    slice: str | None = None  # None: the plan's one slice


def needed(root: Path, spec: RunSpec) -> list[Extraction]:
    """The embeddings the grid needs that an extraction must compute first (all of them with --override):
    missing from the cache and made by a known encoder (a custom cache name can only be found, not made).
    A study extracts per slice: its keys start with the slice (`151673-gene-pca`)."""
    from ..cache import read_entries
    from ..encoders import GENE_ENCODERS, VISION_ENCODERS
    from ..inventory import GENE_VARIANT, cached_inputs

    cached = set() if spec.override else cached_inputs(read_entries(root))
    found: dict[str, Extraction] = {}
    for i, cell in enumerate(spec.cells):
        wanted = [("gene", cell.gene, None)] + ([("vision", cell.vision, cell.variant)] if cell.vision else [])
        for modality, name, variant in wanted:
            if (cell.slice, modality, name, variant or GENE_VARIANT) in cached:
                continue
            if name not in (GENE_ENCODERS if modality == "gene" else VISION_ENCODERS):
                continue
            key = "-".join(p for p in ((cell.slice if spec.is_study else None), modality, name, variant) if p)
            old = found.get(key)
            found[key] = Extraction(key, modality, name, variant, (*(old.cells if old else ()), i), cell.slice)
    return list(found.values())


def extract_argv(root: Path, spec: RunSpec, ex: Extraction) -> list[str]:
    argv = [sys.executable, "-m", "mihd", "extract", spec.source_of(ex.slice or spec.slice),
            f"--{ex.modality}", ex.name]
    if ex.modality == "vision":
        argv += ["--variant", ex.variant]
        argv += ["--random-init"] if spec.encoder.get("random_init") else []
        argv += ["--device", spec.device] if spec.device != "auto" else []
        for key in ("weights", "precision"):
            argv += [f"--{key}", str(spec.encoder[key])] if spec.encoder.get(key) else []
    for flag, key in (("--truth-col", "truth_col"), ("--fullres", "fullres")):
        argv += [flag, spec.slice_options[key]] if spec.slice_options.get(key) else []
    return argv + (["--override"] if spec.override else []) + ["--root", str(root)]


def cell_argv(root: Path, cell_run_dir: Path) -> list[str]:
    return [sys.executable, "-m", ENTRY, "cell", str(cell_run_dir), "--root", str(root)]


def runner_argv(root: Path, grid_dir: Path) -> list[str]:
    return [sys.executable, "-m", ENTRY, "local", str(grid_dir), "--root", str(root)]


def longest_first(root: Path, spec: RunSpec, cached) -> list[int]:
    """Cell indices, longest expected first, so the slowest cells never start last (the grid ends with its
    longest lane): by the history's seconds when every cell has some, else by each fusion's default cost."""
    from .cells import sig_string, signature
    from .eta import cell_seconds
    from .registry import Registry
    from .stages import default_cost

    reg = Registry(root)
    try:
        history = reg.durations()
    finally:
        reg.close()
    secs = cell_seconds([sig_string(signature(c, spec.backend, cached[i])) for i, c in enumerate(spec.cells)], history)
    cost = secs or [default_cost(c.fusion) for c in spec.cells]
    return sorted(range(len(spec.cells)), key=lambda i: -cost[i])


def prepare(root: Path, grid_dir: Path, spec: RunSpec, cached, lanes: int | None) -> list[Extraction]:
    """Write fanout.json, each extraction's extract.json and each cell's one-cell spec.json and needs.json;
    return the extractions. Cells never recompute (`override` is the extractions' business)."""
    extractions = needed(root, spec)
    needs = {i: [ex.key for ex in extractions if i in ex.cells] for i in range(len(spec.cells))}
    for ex in extractions:
        d = extract_dir(grid_dir, ex.key)
        d.mkdir(parents=True)
        write_json_atomic(d / EXTRACT_SPEC, {"slice": ex.slice, "modality": ex.modality, "name": ex.name,
                                             "variant": ex.variant, "cells": list(ex.cells),
                                             "argv": extract_argv(root, spec, ex)})
    for i, cell in enumerate(spec.cells):
        d = cell_dir(grid_dir, i)
        d.mkdir(parents=True)
        one = spec.on_slice(cell.slice).with_(cells=(cell,), kind="run", override=False, name=None, expect=None)
        write_spec(d, one, run_id=f"{grid_dir.name}/{i}", argv=cell_argv(root, d), cached=[cached[i]])
    fan = {"backend": spec.backend, "lanes": lanes, "order": longest_first(root, spec, cached),
           "cells": [{"needs": needs[i]} for i in range(len(spec.cells))],
           "extract": {ex.key: {"slice": ex.slice, "modality": ex.modality, "name": ex.name, "variant": ex.variant,
                                "cells": list(ex.cells)} for ex in extractions}}
    for i in range(len(spec.cells)):  # each cell's own copy: a Slurm task starts from it, not from fanout.json
        write_json_atomic(cell_dir(grid_dir, i) / NEEDS, cell_needs(fan, i))
    write_json_atomic(grid_dir / FANOUT, fan)
    return extractions


def grid_command(root: Path, grid_dir: Path, spec: RunSpec) -> list[str]:
    """What runs for the grid: the local runner, or (Slurm) each array task's cell, `{index}` its task id."""
    if spec.backend == "slurm":
        return cell_argv(root, Path(grid_dir) / CELLS / "{index}")
    return runner_argv(root, grid_dir)


def submit(root: Path, grid_dir: Path, spec: RunSpec, options: dict, cached) -> dict:
    """Lay the grid out and hand it to its backend; returns the grid's handle."""
    from .backends import get_backend

    if spec.backend == "slurm":
        extractions = prepare(root, grid_dir, spec, cached, options.get("max_parallel"))
        jobs = [(extract_dir(grid_dir, ex.key), extract_argv(root, spec, ex), ex.modality) for ex in extractions]
        return get_backend("slurm").submit_fanout(grid_dir, jobs, grid_command(root, grid_dir, spec),
                                                  start_order(read_fanout(grid_dir)), options)
    lanes = min(local_lanes(parallel_of(options)), len(spec.cells))
    prepare(root, grid_dir, spec, cached, lanes)
    return {**get_backend("local").submit(grid_dir, runner_argv(root, grid_dir), options), "fanout": True}
