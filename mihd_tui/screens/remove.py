"""The remove confirmation: names the finished run and the run dir that goes with it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, Static

from mihd.present import fmt_duration
from mihd.runs.status import RunView

from .modal import PausingModal


class RemoveDialog(PausingModal[bool]):
    BINDINGS = [Binding("y", "confirm", "Remove", id="remove.confirm")]

    def __init__(self, view: RunView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        v = self.view
        score = "" if v.ari is None else f", ARI {v.ari:.3f}"
        with Vertical(id="dialog", classes="dialog dialog-danger"):
            yield Label(f"Remove run {v.label}?", classes="dialog-title")
            yield Static(f"{v.id}: {v.status} after {fmt_duration(v.elapsed)}{score}\n"
                         f"Its run dir (log, events, result) is deleted: {v.run_dir}")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Remove (y)", variant="error", id="remove", compact=True)
                yield Button("Cancel (Esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#cancel", Button).focus()

    def action_confirm(self) -> None:
        self.dismiss(True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "remove")
