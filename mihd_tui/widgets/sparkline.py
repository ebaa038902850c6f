"""A labelled sparkline with its latest value: the history of one measure (CPU, RSS, GPU)."""

from __future__ import annotations

from collections import deque
from typing import Callable

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, Sparkline

from ..text import say


class MetricSpark(Horizontal):
    """`CPU ▁▂▅▇█ 95%` (`max 195%` once a run has ended); keeps the last `keep` samples."""

    def __init__(self, title: str, fmt: Callable[[float | None], str], keep: int = 60, **kw) -> None:
        super().__init__(**kw)
        self.title, self.fmt = title, fmt
        self.samples: deque[float] = deque(maxlen=keep)

    def compose(self) -> ComposeResult:
        yield Label(self.title, classes="spark-title")
        yield Sparkline([], classes="spark")
        yield Label("-", classes="spark-value")

    def set_history(self, values) -> None:
        """Replace the samples (e.g. a run's history kept by the app) and redraw."""
        self.samples.clear()
        self.samples.extend(v for v in values if v is not None)
        self._show(values[-1] if values else None)

    def push(self, value: float | None) -> None:
        if value is not None:
            self.samples.append(value)
        self._show(value)

    def show_peak(self, value: float | None) -> None:
        """For a finished run: the highest value it reached (from its usage.json), e.g. `max 1.2G`."""
        say(self.query_one(".spark-value", Label), "-" if value is None else f"max {self.fmt(value)}")

    def _show(self, value: float | None) -> None:
        self.query_one(Sparkline).data = list(self.samples)  # empty: drawn blank, not as a full bar
        say(self.query_one(".spark-value", Label), self.fmt(value))
