"""Help: the grid's legend and the keys of the screen it was opened from (read from its bindings, so
remapped keys show as remapped)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Static

LEGEND = """\
[b]Grid[/]: rows are fusion methods, columns vision encoders and cache names (`none`: no vision).
  [b]0.612[/]  latest ARI (colour: red < 0.2 < orange < 0.4 < yellow < 0.6 < green < 0.8 < bright)
  [b]0.612*[/] made with random-init weights     [b]ready[/]  inputs cached, can run now
  [b]·[/]      never run (computes its inputs)   [b]⊘[/]      no weights here and nothing cached
  [b]45%[/]    running (this cell's part)         [b]45%![/]   running past its expected time
  [b]45% .61[/] running, last ARI beside it      [b]0.612 ✗[/] last ARI, its latest run failed/killed
  [b]failed[/] / [b]killed[/] / [b]lost[/] how its latest run ended   [b]—[/]  needs a vision embedding
The line under the grid speaks of the focused panel: a cell's state, reason and history of scores.
`o` on a cell run more than once lists its runs. Row, column and whole-grid launches skip `⊘`
columns; `a` runs the vision columns as one `mihd grid` and the `none` column as another.
The launch dialog shows the exact command. Runs go on when the dashboard quits.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="help.close")]

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="dialog help"):
            yield Label("mihd-tui help (Esc closes; Ctrl+P finds any action by name)", classes="dialog-title")
            yield Static(LEGEND)
            yield Static(self._keys(), id="help-keys")

    def _keys(self) -> str:
        lines = ["[b]Keys[/]"]
        seen = set()
        for key, active in self.under.active_bindings.items():
            b = active.binding
            if not b.description or (b.action, b.description) in seen:
                continue
            seen.add((b.action, b.description))
            what = b.tooltip or b.description
            lines.append(f"  [b]{self.app.get_key_display(b):>8}[/]  {what}")
        return "\n".join(lines)

    async def action_dismiss(self, result=None) -> None:
        self.dismiss(None)
