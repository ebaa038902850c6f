"""The overrun offer: a banner under the header, not a dialog, so the grid (with its `!`), the tabs and every
key of the main screen stay in reach while a run past its expected time waits for an answer: `t` TERM,
`K` KILL, `w` keep watching (the run stays flagged `!` in its row, its cell and the header). A run that is
late (its projection ends past its expected time, `»`) gets the same offer before it overruns. It follows
the run at each refresh and goes when the run ends or its late flag goes."""

from __future__ import annotations

from textual.widgets import Static

from mihd.present import fmt_duration
from mihd.runs.status import RunView

from ..screens.kill import identity
from ..text import plain, say

KEYS = "[b]t[/] kill (TERM)  [b]K[/] kill now (KILL)  [b]w[/] keep watching"


def overrun_facts(v: RunView) -> str:
    """How far past its expected time the run is, and what that time rests on."""
    same = "this grid" if v.n_cells > 1 else "this cell"
    source = {"given": "given at launch", "history": f"from earlier runs of {same}",
              "cells": "from the history of its cells"}.get(v.expected_source or "", "")
    stage = f", stage {plain(v.stage)}" if v.stage else ""
    return (f"running {fmt_duration(v.elapsed)}, expected {fmt_duration(v.expected_s)}"
            + (f" ({source})" if source else "") + f", {100 * (v.progress or 0):.0f}%{stage}")


class OverrunBanner(Static):
    """Shows one overrunning run (`run_id`), or nothing (hidden)."""

    def __init__(self, **kw) -> None:
        super().__init__("", **kw)
        self.run_id: str | None = None
        self.display = False

    def follow(self, view: RunView) -> None:
        self.run_id = view.id
        # what a narrow terminal cuts (each line ends in … there) comes last: the keys always show whole
        head = "! past its expected time:" if view.overrun else "» late:"
        facts = overrun_facts(view) if view.overrun else plain(view.late or "")
        say(self, f"[b $warning]{head}[/] [b]{plain(view.label)}[/]  {facts}\n{KEYS}   {identity(view)}")
        self.display = True

    def clear(self) -> None:
        self.run_id = None
        self.display = False
