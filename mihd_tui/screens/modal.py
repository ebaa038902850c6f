"""The base of the dashboard's dialogs: a ModalScreen that pauses the refresh while it is open."""

from __future__ import annotations

from typing import TypeVar

from textual.binding import Binding
from textual.screen import ModalScreen

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
