"""Removing finished runs (`mihd runs rm`, the dashboard's remove): the run dir goes and the registry forgets it.

A run that may still compute is never removed: queued, running or orphaned, nor a corrupt one whose
processes still run (the test `mihd runs kill` makes). The run dir is first renamed to a hidden name beside
it, which no listing reads, so the run leaves every list at once and a removal cut short never leaves a
half-deleted run to be indexed; only then is it deleted. In a lab's shared workspace another user's run is
removed only when asked with `force`: the refusal says whose it is.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import MihdError
from ..owners import other_owner
from .run_files import ACTIVE
from .status import RunView, RunWatcher


def refusal(watcher: RunWatcher, view: RunView, force: bool = False) -> str | None:
    """Why this run may not be removed now (one line), or None."""
    owner = None if force else other_owner(Path(view.run_dir))
    if owner:
        return f"run {view.id}: made by {owner}, another user; --force removes it anyway"
    if view.status in ACTIVE:
        return f"run {view.id}: {view.status}; stop it first (mihd runs kill {view.id})"
    if watcher.may_still_run(view):
        return f"run {view.id}: corrupt and its processes may still run; stop it first (mihd runs kill {view.id})"
    return None


def remove_run(root, run: str, watcher: RunWatcher | None = None, force: bool = False) -> RunView:
    """Remove one finished run (id, id prefix or name); returns the view it had. Raises MihdError with one line
    when it may not be removed (active; another user's without `force`) or its run dir cannot be."""
    own = watcher is None
    watcher = watcher or RunWatcher(root)
    try:
        view = watcher.view(run)
        why = refusal(watcher, view, force)
        if why:
            raise MihdError(why)
        run_dir = Path(view.run_dir)
        hidden = run_dir.with_name(f".removing-{run_dir.name}-{os.getpid()}")
        try:
            os.rename(run_dir, hidden)
        except FileNotFoundError:
            pass  # already gone (another remover): the registry forgets it below all the same
        except OSError as exc:
            raise MihdError(f"run {view.id}: cannot remove {run_dir} ({exc.strerror or exc})") from None
        watcher.registry.sync(check=0)  # a run dir that is gone is forgotten; no other run is read
        try:
            shutil.rmtree(hidden)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise MihdError(f"run {view.id}: removed from the runs, but {hidden} is left ({exc.strerror or exc})") \
                from None
        return view
    finally:
        if own:
            watcher.close()

