"""Fanned-out grids: a grid whose cells run as separate supervised runs, side by side.

A launched grid that fans out (on Slurm always; locally with more than one worker: `--parallel N`, by
default one per allowed core) is one run for the user (one run dir, one registry row), laid out as
    <grid>/spec.json, handle.json, fanout.json   the grid's RunSpec, the backend's handle, the layout below
    <grid>/extract/<key>/                         one extraction of an embedding no cell may find cached
    <grid>/cells/<i>/                             cell i: a one-cell RunSpec, its own events, result, exit
Extraction and cell dirs are run dirs like any other (the same supervisor writes run.log, proc.json,
exit.json there), so each is watched and killed with its backend's own handle.json. Extractions are the
only writers of the embeddings the grid lacks: every cell starts after the extractions it needs have ended
(Slurm: an array with `--dependency=afterany:` on them; local: the runner's order), and a cell whose
extraction failed fails at once saying why, while the others go on.

This module lays a grid out and submits it. Its processes start at their entry in the CLI layer (ENTRY):
`python -m mihd.cli.fanout_entry local GRID_DIR --root R` is the local runner (fanout_runner.py: the grid's
supervised command, each part a fork of it under its own supervisor); `... cell CELL_DIR --root R` is what each
cell runs (fanout_cell.py: the check of its extractions, then its one-cell plan, as `mihd exec-plan` runs one).
Standard library only at import: the dashboard reads this.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import MihdError
from ..jsonio import read_json, write_json_atomic
from ..plan import RunSpec
from ..rundir import EXIT, EventLog, write_spec

FANOUT = "fanout.json"
CELLS = "cells"
EXTRACT = "extract"
EXTRACT_SPEC = "extract.json"
POLL_S = 0.2
ENTRY = "mihd.cli.fanout_entry"  # the module the runner and each cell start at (`python -m ENTRY local|cell ...`)


def is_fanned(run_dir) -> bool:
    return os.path.isfile(os.path.join(run_dir, FANOUT))  # not pathlib: asked of every run a listing shows


def cell_dir(grid_dir, index: int) -> Path:
    return Path(grid_dir) / CELLS / str(index)


def extract_dir(grid_dir, key: str) -> Path:
    return Path(grid_dir) / EXTRACT / key


def read_fanout(grid_dir) -> dict:
    """fanout.json, checked: {"backend", "lanes", "order", "cells": [{"needs": [key]}], "extract": {key: {...}}}."""
    data = read_json(Path(grid_dir) / FANOUT)
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list) \
            or not isinstance(data.get("extract"), dict):
        raise MihdError(f"{Path(grid_dir) / FANOUT}: expected {{'cells': [...], 'extract': {{...}}}}")
    return data


def parts(grid_dir, fan: dict | None = None) -> list[tuple[str, Path]]:
    """(name, run dir) of every extraction and cell: `extract/<key>`, then `cells/<i>` in cell order."""
    fan = fan if fan is not None else read_fanout(grid_dir)
    return [(f"{EXTRACT}/{k}", extract_dir(grid_dir, k)) for k in fan["extract"]] + \
           [(f"{CELLS}/{i}", cell_dir(grid_dir, i)) for i in range(len(fan["cells"]))]


def start_order(fan: dict) -> list[int]:
    """The order the cells start in (fanout.json "order": longest expected first), all of them once."""
    order = fan.get("order")
    n = len(fan["cells"])
    return order if isinstance(order, list) and sorted(order) == list(range(n)) else list(range(n))


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


# -- what fans out, and how wide ----------------------------------------------------------------------
MAX_PARALLEL = 4096  # workers on one machine; a larger number is a typo or an overflow


def parallel_option(value):
    """`--parallel N` (N >= 1) or `auto` (one worker per visible GPU when several, else per allowed core)."""
    if str(value).strip().lower() == "auto":
        return "auto"
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError("expected a whole number >= 1 or auto") from None
    if n < 1:
        raise ValueError("expected a whole number >= 1 or auto")
    if n > MAX_PARALLEL:
        raise ValueError(f"expected at most {MAX_PARALLEL} workers, or auto")
    return n


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries: that variable when set, else NVML's."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [g.strip() for g in given.split(",") if g.strip() and g.strip() != "-1"]
    from .gpu import Gpu

    gpu = Gpu()
    try:
        return [str(d.index) for d in gpu.devices()]
    finally:
        gpu.close()


def local_lanes(value) -> int:
    """Worker slots for `--parallel` (auto: the GPUs when several, else the cores this process may use)."""
    if value != "auto":
        return int(value)
    from ..compute import allowed_cores

    gpus = visible_gpus()
    return len(gpus) if len(gpus) > 1 else allowed_cores()[0]


def parallel_of(options: dict):
    """The local `--parallel` asked for, else auto (as wide as the cores and GPUs allow)."""
    return options.get("parallel") or "auto"


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


def prepare(root: Path, grid_dir: Path, spec: RunSpec, cached, lanes: int | None) -> list[Extraction]:
    """Write fanout.json, each extraction's extract.json and each cell's one-cell spec.json; return the
    extractions. Cells never recompute (`override` is the extractions' business)."""
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
    write_json_atomic(grid_dir / FANOUT, {"backend": spec.backend, "lanes": lanes,
                                          "order": longest_first(root, spec, cached),
                                          "cells": [{"needs": needs[i]} for i in range(len(spec.cells))],
                                          "extract": {ex.key: {"slice": ex.slice, "modality": ex.modality,
                                                               "name": ex.name, "variant": ex.variant,
                                                               "cells": list(ex.cells)} for ex in extractions}})
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


# -- part state ------------------------------------------------------------------------------------
def mark_never_started(run_dir: Path, sig: str, by: str) -> bool:
    """A part stopped before it ran: a kill event and exit.json say so (status killed). False if it had ended."""
    if (run_dir / EXIT).exists() or not run_dir.is_dir():  # ended, or its run dir is gone: nothing to mark
        return False
    events = EventLog(run_dir)
    try:
        events.emit("kill", signal=sig, by=by, grace=0, escalated=False, survivors=0, left=[], outside=[])
    finally:
        events.close()
    write_json_atomic(run_dir / EXIT, {"code": None, "signal": sig, "ended": round(time.time(), 3),
                                       "forwarded": [], "written_by": by})
    return True


if __name__ == "__main__":  # a part laid out before its entry moved to the CLI layer (a Slurm task still queued)
    import runpy

    runpy.run_module(ENTRY, run_name="__main__", alter_sys=True)
