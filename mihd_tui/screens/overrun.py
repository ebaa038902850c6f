"""The overrun offer: a run went past its expected time; kill it (TERM or KILL) or keep watching.

Unlike the other dialogs it never pauses the refresh: its elapsed time and progress follow the run, the
screen behind it keeps updating, and it closes itself when the run ends (answering None)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from mihd.present import fmt_duration
from mihd.runs.status import RunView

from .kill import identity


class OverrunDialog(ModalScreen["str | None"]):
    BINDINGS = [Binding("t", "choose('TERM')", "Kill (TERM)", id="overrun.term"),
                Binding("K", "choose('KILL')", "Kill now (KILL)", id="overrun.kill"),
                Binding("w,escape", "choose('watch')", "Keep watching", id="overrun.watch")]

    def __init__(self, view: RunView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog dialog-warning"):
            yield Label(f"Run past its expected time: {self.view.label}", classes="dialog-title")
            yield Static(self._facts(self.view), id="overrun-facts")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Kill (t: TERM)", variant="warning", id="TERM", compact=True)
                yield Button("Kill now (K: KILL)", variant="error", id="KILL", compact=True)
                yield Button("Keep watching (w)", id="watch", compact=True)

    @staticmethod
    def _facts(v: RunView) -> str:
        same = "this grid" if v.n_cells > 1 else "this cell"
        source = {"given": "as given at launch", "history": f"from earlier runs of {same}",
                  "cells": "from the history of its cells"}.get(v.expected_source or "", "")
        return (f"{identity(v)}\nrunning {fmt_duration(v.elapsed)}, expected {fmt_duration(v.expected_s)} {source}"
                f"\nprogress {100 * (v.progress or 0):.0f}%" + (f", stage {v.stage}" if v.stage else ""))

    def on_mount(self) -> None:
        for button in self.query("#watch"):  # none when it closed itself before it was shown
            button.focus()

    def show_snapshot(self, snap) -> None:
        """Follow the run; once it has ended there is nothing left to decide."""
        view = self.app.find_view(self.view.id)
        if view is None or not self.is_mounted or not self.query("#overrun-facts"):
            return
        self.view = view
        if not view.active:
            self.dismiss(None)
            return
        self.query_one("#overrun-facts", Static).update(self._facts(view))

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)
