"""The remove confirmation: names the finished run and the run dir that goes with it."""

from __future__ import annotations

from textual.binding import Binding

from mihd.present import fmt_duration
from mihd.runs.status import RunView

from .modal import ConfirmDialog


class RemoveDialog(ConfirmDialog):
    BINDINGS = [Binding("y", "yes", "Remove", id="remove.confirm")]

    def __init__(self, view: RunView) -> None:
        score = "" if view.ari is None else f", ARI {view.ari:.3f}"
        super().__init__(f"Remove run {view.label}?",
                         f"{view.id}: {view.status} after {fmt_duration(view.elapsed)}{score}\n"
                         f"Its run dir (log, events, result) is deleted: {view.run_dir}", "Remove", danger=True)
        self.view = view
