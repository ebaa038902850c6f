"""The processes of a fanned-out grid: `python -m mihd.cli.fanout_entry local GRID_DIR --root R` (the local
runner, the grid's supervised command) and `... cell CELL_DIR --root R` (one cell, each Slurm array task's
command). Run control lays the grid out and runs its parts; this entry hands it what a cell executes (its
extractions checked, then mihd.execute.exec_plan on its one-cell plan), so mihd.runs never imports the pipeline.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import MihdError

USAGE = "usage: python -m mihd.cli.fanout_entry local GRID_DIR --root ROOT | cell CELL_DIR --root ROOT"
PRELOAD = ("numpy", "scipy.sparse", "sklearn.mixture", "sklearn.cluster", "sklearn.metrics", "anndata", "scanpy",
           "torch", "mihd.pipeline", "mihd.extract")  # what the parts import: the runner loads it once, forks it warm


def run_cell(cell_run_dir: Path, root: str, fan: dict | None = None) -> int:
    """Cell `cell_run_dir` of its grid, run in this process (fanout_cell.run_cell with exec_plan)."""
    from ..execute import exec_plan
    from ..runs.fanout_cell import run_cell as run_checked

    return run_checked(cell_run_dir, root, exec_plan, fan)


def local_runner(grid_dir: Path, root: Path):
    """The local runner of `grid_dir`, each of its cells forked and run by this entry."""
    from ..runs.fanout_runner import LocalRunner

    return LocalRunner(grid_dir, root, main, PRELOAD)


def main(args: list[str], fan: dict | None = None) -> int:
    """`local GRID_DIR --root R` or `cell CELL_DIR --root R`; `fan`: the grid's layout when the runner forked
    this cell (else read from fanout.json)."""
    if len(args) != 4 or args[0] not in ("local", "cell") or args[2] != "--root":
        print(USAGE, file=sys.stderr)
        return 2
    try:
        if args[0] == "cell":
            return run_cell(Path(args[1]), args[3], fan)
        return local_runner(Path(args[1]), Path(args[3])).run()
    except MihdError as exc:
        print(f"mihd: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
