"""A grid cell's runs, newest first (state, ARI, when), with the history of its scores: `o` on a cell that
more than one run computed opens this, Enter opens the chosen run. It stays live: it never pauses the
refresh, and each snapshot brings the cell's runs, states and scores up to date."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from mihd.grid import CellState
from mihd.present import fmt_duration, fmt_score

from ..text import plain
from ..wording import describe_cell, history_text, measure_note


class CellRunsDialog(ModalScreen["str | None"]):
    BINDINGS = [Binding("escape", "close", "Close", id="cell_runs.close")]

    def __init__(self, cs: CellState, views: dict) -> None:
        super().__init__()
        self.cs, self.views = cs, views

    def on_mount(self) -> None:  # unlike the other dialogs it never pauses the refresh
        self.query_one(OptionList).focus()

    def action_close(self) -> None:
        self.dismiss(None)

    def show_snapshot(self, snap) -> None:
        """Follow the cell: new runs, states and scores as they come."""
        cs = snap.grid.cells.get((self.cs.fusion, self.cs.column)) if snap.spec == self.app.spec else None
        if cs is None or not self.is_mounted or not self.query("#cell-runs"):
            return
        self.cs, self.views = cs, {v.id: v for v in snap.views}
        self.query_one("#cell-runs-info", Static).update(self._info())
        options = self.query_one(OptionList)
        at = options.highlighted
        options.clear_options()
        options.add_options([Option(self._line(run_id), id=run_id) for run_id in cs.runs])
        options.highlighted = at if at is not None and at < len(cs.runs) else None

    def _info(self) -> str:
        history = history_text(self.cs, sep="\n")  # each measure's history on a line of its own
        return describe_cell(self.cs) + ("\n" + history if history else "")

    def compose(self) -> ComposeResult:
        cs = self.cs
        with Vertical(id="dialog", classes="dialog"):
            yield Label(f"Runs of {cs.fusion} × {plain(cs.column)}", classes="dialog-title")
            yield Static(self._info(), id="cell-runs-info")
            yield OptionList(*[Option(self._line(run_id), id=run_id) for run_id in cs.runs], id="cell-runs",
                             compact=True)
            yield Static("Enter opens the run, Esc closes", classes="dialog-hint")

    def _line(self, run_id: str) -> str:
        v = self.views.get(run_id)
        score = next((s for s in self.cs.history if s.run_id == run_id), None)
        parts = [run_id, v.status if v else "done"]
        if score is not None:
            parts.append(f"ARI {fmt_score(score.ari, score.random_init)}" + measure_note(score))
        if v is not None and v.elapsed:
            parts.append(fmt_duration(v.elapsed))
        return "  ".join(parts)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
