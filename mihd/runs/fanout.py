"""Fanned-out grids: a grid whose cells run as separate supervised runs, side by side.

A launched grid that fans out (on Slurm always; locally with more than one worker: `--parallel N`, by
default one per allowed core) is one run for the user (one run dir, one registry row), laid out as
    <grid>/spec.json, handle.json, fanout.json   the grid's RunSpec, the backend's handle, the layout below
    <grid>/extract/<key>/                         one extraction of an embedding no cell may find cached
    <grid>/cells/<i>/                             cell i: a one-cell RunSpec, its own events, result, exit,
                                                  and needs.json: the extractions it waits for
Extraction and cell dirs are run dirs like any other (the same supervisor writes run.log, proc.json,
exit.json there), so each is watched and killed with its backend's own handle.json. Extractions are the
only writers of the embeddings the grid lacks: every cell starts after the extractions it needs have ended
(Slurm: an array with `--dependency=afterany:` on them; local: the runner's order), and a cell whose
extraction failed fails at once saying why, while the others go on.

This module says the layout (and how wide a local grid runs); fanout_submit.py lays a grid out and submits it.
Its processes start at their entry in the CLI layer (ENTRY):
`python -m mihd.cli.fanout_entry local GRID_DIR --root R` is the local runner (fanout_runner.py: the grid's
supervised command, each part a fork of it under its own supervisor); `... cell CELL_DIR --root R` is what each
cell runs (fanout_cell.py: the check of its extractions, then its one-cell plan, as `mihd exec-plan` runs one).
Standard library only at import: the dashboard reads this.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..errors import MihdError
from ..jsonio import read_json, write_json_atomic
from ..rundir import EXIT, EventLog

FANOUT = "fanout.json"
CELLS = "cells"
EXTRACT = "extract"
EXTRACT_SPEC = "extract.json"
NEEDS = "needs.json"  # in a cell's run dir: fixed at submission, so a Slurm cell never reads fanout.json
POLL_S = 0.2
ENTRY = "mihd.cli.fanout_entry"  # the module the runner and each cell start at (`python -m ENTRY local|cell ...`)


def is_fanned(run_dir) -> bool:
    return os.path.isfile(os.path.join(run_dir, FANOUT))  # not pathlib: asked of every run a listing shows


def cell_dir(grid_dir, index: int) -> Path:
    return Path(grid_dir) / CELLS / str(index)


def grid_of_cell(run_dir) -> Path | None:
    """The grid whose cell `run_dir` is (`GRID/cells/N`), else None."""
    run_dir = Path(run_dir)
    return run_dir.parent.parent if run_dir.parent.name == CELLS else None


def run_name(run_dir) -> str:
    """A run as the researcher names it: `GRID/N` for a grid's cell (what `mihd runs kill` takes), else its id."""
    grid = grid_of_cell(run_dir)
    return f"{grid.name}/{Path(run_dir).name}" if grid else Path(run_dir).name


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


def cell_needs(fan: dict, index: int) -> dict[str, dict]:
    """The extractions cell `index` waits for, {key: what fanout.json says of it (slice, modality, name)}."""
    return {key: fan["extract"].get(key, {}) for key in fan["cells"][index]["needs"]}


def read_cell_needs(cell_run_dir) -> dict[str, dict] | None:
    """A cell's needs.json, checked; None where its grid was laid out before cells had one."""
    path = Path(cell_run_dir) / NEEDS
    if not path.exists():
        return None
    data = read_json(path)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise MihdError(f"{path}: expected {{extraction key: {{...}}}}")
    return data


def start_order(fan: dict) -> list[int]:
    """The order the cells start in (fanout.json "order": longest expected first), all of them once."""
    order = fan.get("order")
    n = len(fan["cells"])
    return order if isinstance(order, list) and sorted(order) == list(range(n)) else list(range(n))


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
