"""Expected duration, progress and ETA: pure functions over the history and a run's events.

Expected duration: the `--expect` given, else the median running time of finished runs with the same
signature, else (for a grid with no identical history) the sum of the medians of its cells run alone.
Progress (ARCHITECTURE.md): (cells finished + fraction of the current cell's latest stage) / cells.
ETA blends what the history expects with what the progress rate says, trusting the rate more as the
run advances; its confidence says how much history stands behind it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

CONFIDENCE = ("none", "low", "medium", "high", "given")


@dataclass
class Expected:
    seconds: float | None
    source: str | None = None  # given | history | cells | None
    n: int = 0                 # finished runs behind it
    confidence: str = "none"


def _confidence(samples: list[float]) -> str:
    n = len(samples)
    level = 0 if n == 0 else 1 if n == 1 else 2 if n < 5 else 3
    med = statistics.median(samples) if samples else 0
    if n >= 2 and med > 0 and statistics.median(abs(x - med) for x in samples) / med > 0.25:
        level -= 1  # widely spread history: trust it one step less
    return CONFIDENCE[max(level, 1 if n else 0)]


CELL_KEY = "cell:"  # history key prefix of a cell's seconds measured inside a multi-cell run


def cell_seconds(cell_signatures: list[str], history: dict[str, list[float]]) -> list[float] | None:
    """Expected seconds of each cell (alone, else inside grids); None unless every cell has a history."""
    per_cell = [history.get(s) or history.get(CELL_KEY + s) for s in cell_signatures]
    return [statistics.median(x) for x in per_cell] if per_cell and all(per_cell) else None


def expected_duration(signature: str, history: dict[str, list[float]], expect: float | None = None,
                      cell_signatures: list[str] | None = None) -> Expected:
    """A single run is expected from whole runs of its signature only (a cell timed inside a grid
    skipped the process start and slice load, and would flag a standalone run as overrunning); a grid
    falls back to the sum of its cells, each from runs of that cell alone or else from inside grids."""
    if expect:
        return Expected(float(expect), "given", 0, "given")
    samples = history.get(signature) or []
    if samples:
        return Expected(statistics.median(samples), "history", len(samples), _confidence(samples))
    if cell_signatures and len(cell_signatures) > 1:
        per_cell = cell_seconds(cell_signatures, history)
        if per_cell:
            n = min(len(history.get(s) or history.get(CELL_KEY + s)) for s in cell_signatures)
            return Expected(sum(per_cell), "cells", n, "low")
    return Expected(None)


@dataclass
class Progress:
    fraction: float | None = None
    stage: str | None = None
    done: int | None = None
    total: int | None = None
    cell_index: int | None = None
    n_cells: int | None = None
    ended: bool = False
    cells: dict[int, dict] = field(default_factory=dict)  # finished cells so far: index -> its metric event
    finished: int = 0            # cells finished
    cell_fraction: float = 0.0   # share of the current cell done

    def weighted(self, cell_seconds: list[float] | None) -> float | None:
        """The fraction with each cell weighted by its expected seconds (a grid whose slow cell comes
        last is not 90 % done when its quick cells are); the plain fraction without such weights."""
        n = self.n_cells or 1
        if self.ended or self.fraction is None or not cell_seconds or len(cell_seconds) != n or sum(cell_seconds) <= 0:
            return self.fraction
        done = min(self.finished, n)
        current = self.cell_fraction * cell_seconds[done] if done < n else 0.0
        return min((sum(cell_seconds[:done]) + current) / sum(cell_seconds), 0.999)


class ProgressTracker:
    """Folds events (fed incrementally, in order) into a Progress."""

    def __init__(self, n_cells: int | None = None):
        self.p = Progress(n_cells=n_cells or None)
        self._stages: list[str] = []  # the current cell's ordered stages, when its `cell` event names them
        self._slot = 0

    def feed(self, events: list[dict]) -> Progress:
        p = self.p
        for ev in events:
            kind = ev.get("kind")
            if kind == "start" and ev.get("cells"):
                p.n_cells = int(ev["cells"])
            elif kind == "cell":
                p.cell_index = int(ev.get("index", 0))
                p.n_cells = int(ev.get("of") or p.n_cells or 1)
                p.finished = max(p.finished, p.cell_index)
                p.cell_fraction, p.stage, p.done, p.total = 0.0, None, None, None
                self._stages, self._slot = list(ev.get("stages") or []), 0
            elif kind == "stage":
                p.stage, p.done, p.total = ev.get("stage"), ev.get("done"), ev.get("total")
                if p.total:
                    p.cell_fraction = self._cell_fraction(p.stage, float(p.done or 0) / float(p.total))
            elif kind == "metric":
                index = int(ev.get("index", p.finished))
                p.cells[index] = {k: ev.get(k) for k in ("ari", "nmi", "random_init", "error")}
                p.finished = max(p.finished, index + 1)
                p.cell_fraction = 0.0
            elif kind == "end":
                p.ended = True
        n = p.n_cells or 1
        if p.ended:
            p.fraction = 1.0
        elif p.stage is not None or p.finished:
            p.fraction = min((min(p.finished, n) + p.cell_fraction) / n, 0.999)
        return p

    def _cell_fraction(self, stage: str | None, frac: float) -> float:
        """A stage's share of its cell: named stages split the cell evenly, sub-stages (e.g. an
        extraction inside `load`, training inside `fuse`) move within the current slot."""
        frac = min(max(frac, 0.0), 1.0)
        if not self._stages:
            return frac
        if stage in self._stages:
            self._slot = self._stages.index(stage)
        return (self._slot + frac) / len(self._stages)


def eta(elapsed: float, fraction: float | None, expected: Expected) -> tuple[float | None, str]:
    """(seconds left, confidence). None when nothing says how long the rest will take."""
    by_rate = elapsed * (1 - fraction) / fraction if fraction and fraction >= 0.02 and elapsed > 0 else None
    if expected.seconds is None or elapsed > expected.seconds:
        if by_rate is None:
            return None, "none"
        return by_rate, "medium" if fraction >= 0.3 else "low"
    by_history = expected.seconds - elapsed
    if by_rate is None:
        return by_history, expected.confidence
    w = fraction  # early on the history knows better; late, the measured rate does
    conf = expected.confidence if expected.confidence != "none" else "low"
    return w * by_rate + (1 - w) * by_history, conf
