"""A grid cell's runs, newest first (state, ARI, when), with the history of its scores: `o` on a cell that
more than one run computed opens this, Enter opens the chosen run."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from mihd.grid import CellState
from mihd.present import fmt_duration

from ..wording import ari_text, describe_cell, history_text
from .modal import PausingModal


class CellRunsDialog(PausingModal["str | None"]):
    def __init__(self, cs: CellState, views: dict) -> None:
        super().__init__()
        self.cs, self.views = cs, views

    def compose(self) -> ComposeResult:
        cs = self.cs
        with Vertical(id="dialog", classes="dialog"):
            yield Label(f"Runs of {cs.fusion} × {cs.column}", classes="dialog-title")
            yield Static(describe_cell(cs) + ("\n" + history_text(cs) if history_text(cs) else ""), id="cell-runs-info")
            yield OptionList(*[Option(self._line(run_id), id=run_id) for run_id in cs.runs], id="cell-runs",
                             compact=True)
            yield Static("Enter opens the run, Esc closes", classes="dialog-hint")

    def _line(self, run_id: str) -> str:
        v = self.views.get(run_id)
        score = next((s for s in self.cs.history if s.run_id == run_id), None)
        parts = [run_id, v.status if v else "done"]
        if score is not None:
            parts.append(f"ARI {ari_text(score.ari, score.random_init)}")
        if v is not None and v.elapsed:
            parts.append(fmt_duration(v.elapsed))
        return "  ".join(parts)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
