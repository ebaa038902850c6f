"""The overrun dialog: a run went past its expected time; kill it (TERM or KILL) or keep watching."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, Static

from mihd.present import fmt_duration
from mihd.runs.status import RunView

from .kill import identity
from .modal import PausingModal


class OverrunDialog(PausingModal["str | None"]):
    BINDINGS = [Binding("t", "choose('TERM')", "Kill (TERM)", id="overrun.term"),
                Binding("K", "choose('KILL')", "Kill now (KILL)", id="overrun.kill"),
                Binding("w", "choose('watch')", "Keep watching", id="overrun.watch")]

    def __init__(self, view: RunView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        v = self.view
        same = "this grid" if v.n_cells > 1 else "this cell"
        source = {"given": "as given at launch", "history": f"from earlier runs of {same}",
                  "cells": "from the history of its cells"}.get(v.expected_source or "", "")
        with Vertical(id="dialog", classes="dialog dialog-warning"):
            yield Label(f"Run past its expected time: {v.label}", classes="dialog-title")
            yield Static(f"{identity(v)}\nrunning {fmt_duration(v.elapsed)}, expected {fmt_duration(v.expected_s)}"
                         f" {source}\nprogress {100 * (v.progress or 0):.0f}%"
                         + (f", stage {v.stage}" if v.stage else ""))
            with Horizontal(classes="dialog-buttons"):
                yield Button("Kill (t: TERM)", variant="warning", id="TERM", compact=True)
                yield Button("Kill now (K: KILL)", variant="error", id="KILL", compact=True)
                yield Button("Keep watching (w)", id="watch", compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#watch", Button).focus()

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)
