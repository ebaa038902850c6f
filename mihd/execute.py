"""Running the plan a launched run dir holds (`mihd exec-plan`, each cell of a fanned-out grid), once.

A run dir records one run: a second execution in place would append a second run's events to the first's and
overwrite its result, so a run dir whose run began (a `start` event, a result or an exit) is refused.
"""

from __future__ import annotations

from pathlib import Path

from .errors import MihdError
from .rundir import EVENTS, EXIT, RESULT, SPEC, read_events, read_plan


def began(run_dir: Path) -> str | None:
    """Why `run_dir`'s run cannot start now (it started or ended already), else None."""
    run_dir = Path(run_dir)
    for name, what in ((EXIT, "ended"), (RESULT, "has a result")):
        if (run_dir / name).exists():
            return f"its run {what} ({name})"
    if any(e.get("kind") == "start" for e in read_events(run_dir)[0] if isinstance(e, dict)):
        return f"its run started already ({EVENTS})"
    return None


def check_fresh(run_dir: Path) -> None:
    """Refuse a run dir whose run began, in one line naming it."""
    why = began(run_dir)
    if why:
        raise MihdError(f"--run-dir {run_dir}: {why}; launch a new run rather than running this one again")


def load_plan_slice(plan, root: Path):
    """The slice `plan` names, loaded with its slice options (source, truth column, full-resolution image)."""
    from .data import load_slice

    opts = plan.slice_options
    return load_slice(opts.get("source", plan.slice), root=root, truth_col=opts.get("truth_col"),
                      fullres=opts.get("fullres"))


def exec_plan(run_dir: Path, root: Path) -> dict:
    """Run the plan of launched run dir `run_dir` in it; returns its result (also in result.json)."""
    from .pipeline import run_cells
    from .plan import plan_argv

    run_dir = Path(run_dir)
    plan = read_plan(run_dir)
    if plan is None:
        raise MihdError(f"{run_dir / SPEC}: no readable plan")
    check_fresh(run_dir)
    adata = load_plan_slice(plan, root)
    return run_cells(adata, plan, root=root, run_dir=run_dir, argv=plan_argv(plan))
