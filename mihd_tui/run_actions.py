"""What the dashboard does to finished runs and their results: remove a run (asks first, never an active one),
start a run again with its spec, pick two runs for side-by-side maps, write the results table.

Removal and the results table run in worker threads with registry connections of their own (as a kill
does) and report back with a Notice; a rerun goes through the app's launch, as a launch from the grid does.
"""

from __future__ import annotations

from pathlib import Path

from mihd.errors import MihdError
from mihd.grid import ALL_SLICES

from .messages import Notice
from .widgets.fmt import short_id


def confirm_remove(app, run_id: str | None) -> None:
    from .screens.remove import RemoveDialog

    view = app.find_view(run_id)
    if view is None:
        app.notify("no run selected", severity="warning")
        return
    if view.active:
        app.notify(f"run {view.id} is {view.status}: stop it first (k), then remove it", severity="warning")
        return
    app.push_screen(RemoveDialog(view), lambda yes: yes and _remove(app, view.id))


def _remove(app, run_id: str) -> None:
    def work() -> None:
        from mihd.runs.remove import remove_run

        try:
            view = remove_run(app.root, run_id)
        except MihdError as exc:
            app.post_message(Notice(str(exc), "error"))
            return
        app.post_message(Notice(f"removed run {view.id}: {view.label}"))

    app.run_worker(work, thread=True, group="remove")


def rerun(app, run_id: str | None) -> None:
    """Launch the run's RunSpec (spec.json) again as a new run; of a run still active, only once asked (as Enter on
    a running grid cell asks), never a second copy at a stray key."""
    from mihd.rundir import read_plan

    view = app.find_view(run_id)
    if view is None:
        app.notify("no run selected", severity="warning")
        return
    plan = read_plan(Path(view.run_dir))
    if plan is None:
        app.notify(f"run {view.id}: its spec.json holds no plan to run again", severity="error")
        return
    snap = app.snapshot

    def start(yes: bool = True) -> None:
        if yes:
            app.launch([plan], snap.entries if snap is not None else [])

    if not view.active:
        return start()
    from .screens.modal import ConfirmDialog

    pct = f" ({100 * view.progress:.0f}%)" if view.progress is not None else ""
    app.push_screen(ConfirmDialog(f"run {short_id(view.id)} is {view.status}{pct}",  # a second copy of it
                                  "It computes this spec now. Start another run of it?", "Start another"), start)


def compare(app, table) -> None:
    """The first `m` picks the run under the cursor, `m` on another run opens both runs' maps side by side
    (`m` on the picked run again lets it go)."""
    from .screens.compare import CompareScreen

    run_id = table.current
    view = app.find_view(run_id)
    if view is None:
        app.notify("no run selected", severity="warning")
        return
    if table.marked is None or table.marked == run_id or app.find_view(table.marked) is None:
        table.marked = None if table.marked == run_id else run_id
        table.show(table.views)
        if table.marked:
            app.notify(f"run {view.id} picked: m on a second run shows both maps side by side")
        return
    first, table.marked = table.marked, None
    table.show(table.views)
    app.push_screen(CompareScreen(first, run_id))


def export_results(app) -> None:
    """`e` on the grid: the results table of the grid's slice (on `all slices`, of every slice) as Markdown and
    CSV in `<root>/results/`."""
    slice_id = None if app.spec.slice == ALL_SLICES else app.spec.slice

    def work() -> None:
        from mihd.results import write_tables

        try:
            md, csv = write_tables(app.root, slice_id)
        except MihdError as exc:
            app.post_message(Notice(str(exc), "error", wake=False))
            return
        app.post_message(Notice(f"results of {slice_id or 'every slice'} written to {md} (and {csv.name} beside it)", wake=False))

    app.run_worker(work, thread=True, group="export")
