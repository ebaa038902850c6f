"""The base of the dashboard's dialogs (a ModalScreen that pauses the refresh while it is open) and the plain
yes/no question built on it (asked before a second run of a running cell; the remove confirmation)."""

from __future__ import annotations

from typing import TypeVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

T = TypeVar("T")


class PausingModal(ModalScreen[T]):
    """What a dialog asks about (a run, a cell) stays still while it is open; Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def on_mount(self) -> None:
        self.app.pause_refresh(True)

    def on_unmount(self) -> None:
        self.app.pause_refresh(False)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmDialog(PausingModal[bool]):
    """A yes/no question; y or the first button says yes."""

    BINDINGS = [Binding("y", "yes", "Yes", id="confirm.yes")]

    def __init__(self, title: str, text: str, yes: str, danger: bool = False) -> None:
        super().__init__()
        self.title_text, self.text, self.yes, self.danger = title, text, yes, danger

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog " + ("dialog-danger" if self.danger else "dialog-warning")):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.text, id="confirm-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", variant="error" if self.danger else "warning", id="yes", compact=True)
                yield Button("Cancel (Esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#cancel", Button).focus()

    def action_yes(self) -> None:
        self.dismiss(True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")
