"""The kill confirmation: bound to the run's fixed identity (id, pid or job), with a choice of signal."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, RadioSet, Static

from mihd.present import fmt_duration
from mihd.runs.kill import SIGNALS
from mihd.runs.status import RunView

from ..text import plain
from ..widgets.toggles import MarkedRadioButton
from .modal import PausingModal

HELP = {"TERM": "TERM: ask it to stop (KILL after the grace period)", "INT": "INT: like Ctrl-C",
        "KILL": "KILL: stop at once"}


class SignalButton(MarkedRadioButton):
    """A signal's radio button: `●` chosen, `○` not, so anyone can tell which signal `y` sends."""


def identity(v: RunView) -> str:
    where = f"job {v.job_id}" if v.job_id else f"pid {v.pid}" if v.pid else "no process yet"
    return f"{v.id}  ({v.backend}, {where}{' on ' + plain(v.host) if v.host else ''})"


class KillDialog(PausingModal["str | None"]):
    BINDINGS = [Binding("y", "confirm", "Kill", id="kill.confirm")]

    def __init__(self, view: RunView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        v = self.view
        with Vertical(id="dialog", classes="dialog dialog-danger"):
            yield Label(f"Kill run {plain(v.label)}?", classes="dialog-title")
            yield Static(f"{identity(v)}\n{v.status}, running {fmt_duration(v.elapsed)}"
                         + (f", expected {fmt_duration(v.expected_s)}" if v.expected_s else ""))
            with RadioSet(id="signal", compact=True):
                for i, sig in enumerate(SIGNALS):
                    yield SignalButton(HELP[sig], value=i == 0, name=sig)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Kill (y)", variant="error", id="kill", compact=True)
                yield Button("Cancel (Esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(RadioSet).focus()

    def action_confirm(self) -> None:
        pressed = self.query_one(RadioSet).pressed_button
        self.dismiss(pressed.name if pressed is not None else "TERM")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "kill":
            self.action_confirm()
        else:
            self.dismiss(None)
