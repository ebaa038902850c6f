"""Help: the grid's legend and the keys of the screen it was opened from (read from its bindings, so
remapped keys show as remapped)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Static

LEGEND = """\
[b]Grid[/]: a row per fusion method, a column per vision encoder or cache name (`none`: no vision).
  [b]0.612[/]     latest ARI (red < .2 < orange < .4 < yellow < .6 < green < .8 < bright)
  [b]0.612*[/]    made with random-init weights
  [b]ready[/]     inputs cached, can run now
  [b]·[/]         never run (computes its inputs)
  [b]⊘[/]         no weights here and nothing cached (a baseline: its package missing)
  [b]queued[/]    its run waits to start
  [b]0.612 ⧗[/]   last ARI, a new run of it waits to start
  [b]45%[/]       running (this cell's part)
  [b]45%![/]      running past its expected time
  [b]45%»[/]      late: will overrun its expected time (projected from its own rate)
  [b]45% .61[/]   running, last ARI beside it
  [b]0.612 ✗[/]   last ARI, its latest run failed or was killed
  [b]failed[/]    how its latest run ended (also killed, lost)
  [b]—[/]         needs a vision embedding
The line under the grid speaks of the focused panel: a cell's state, reason and history of scores. \
`o` on a cell run more than once lists its runs. Row, column and whole-grid launches skip `⊘` columns; \
`a` runs the vision columns as one `mihd grid` and the `none` column as another. The launch dialog \
shows the exact command. Runs go on when the dashboard quits (q).
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
        """One line per action, under its shortest key (`q` rather than `^q` for Quit)."""
        best: dict[tuple, tuple[str, str]] = {}
        for active in self.under.active_bindings.values():
            b = active.binding
            if not b.description:
                continue
            key, what = self.app.get_key_display(b), b.tooltip or b.description
            got = best.get((b.action, b.description))
            if got is None or len(key) < len(got[0]):
                best[(b.action, b.description)] = (key, b.description if b.system else what)
        return "\n".join(["[b]Keys[/]"] + [f"  [b]{key:>8}[/]  {what}" for key, what in best.values()])

    async def action_dismiss(self, result=None) -> None:
        self.dismiss(None)
