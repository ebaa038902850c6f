"""Expected duration, progress and ETA: pure functions over the history and a run's events.

Expected duration: the `--expect` given, else the median running time of finished runs with the same
signature, else (for a grid) the sum of its cells' medians. Fewer than MIN_HISTORY runs make it
*tentative*: shown, but judged with a wider overrun factor (overrun.py), since one noisy run says little.

Progress is work, not cell count: finished cells' expected seconds, plus the current cell's expected
seconds times its in-cell progress, over the expected seconds of every cell that did not fail (a failed
cell is no work: it shrinks the total and never counts as done). In-cell progress weighs each stage's
done/total by the stage's share of the cell (stages.py).

The ETA adds up what is left: the current stage (its measured rate once it has reported a few steps,
blended from what the history expects before that), the rest of the current cell, and the cells after
it, all scaled by how fast this run goes next to its history. Its confidence says what it rests on:
  high     at least 3/4 of what is left is measured or timed by a history of >= MIN_HISTORY runs, and
           this run's measured rate agrees with that history (within AGREE)
  medium   the same without that agreement (e.g. measured with no history, or history not yet confirmed)
  low      it leans on hints (fewer than MIN_HISTORY runs, `--expect`, this run's pace applied to cells
           with no history), or a stage is past its expected end
  unknown  nothing measured to go on: no ETA at all. A cell with no history is a guess (its default cost
           times other cells' seconds) until this run measures its rate (MEASURED_AFTER steps) or
           finishes a cell; such a guess ran 30-110 s high on 1-4 minute runs, so none is shown
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace

from .stages import CellClock, default_cost, default_shares

MIN_HISTORY = 3        # finished runs behind an expected time before it counts as history, not a hint
MEASURED_AFTER = 3     # progress steps after which a stage's own rate alone predicts its end
RATE_WINDOW = 6        # the latest steps a stage's rate is measured over (a run slowed midway shows it soon)
AGREE = 1.5            # measured and expected rates agree within this factor
OVERDUE = 0.1          # a stage past its expected end still needs this share of its time so far
CONFIDENCE = ("unknown", "low", "medium", "high")
CELL_KEY = "cell:"     # history key prefix of a cell's seconds measured inside a multi-cell run


@dataclass
class Expected:
    seconds: float | None
    source: str | None = None  # given | history | cells | None
    n: int = 0                 # finished runs behind it
    confidence: str = "unknown"

    @property
    def tentative(self) -> bool:
        """From fewer than MIN_HISTORY finished runs: a hint, not a yardstick."""
        return self.source in ("history", "cells") and self.n < MIN_HISTORY

    @property
    def solid(self) -> bool:
        """A yardstick the ETA may be confident on: MIN_HISTORY+ finished runs that mostly agree (a history
        spread from 30 s to 30 min, as on a shared machine, says little about this run)."""
        return self.source in ("history", "cells") and not self.tentative and self.confidence != "low"


def _confidence(samples: list[float]) -> str:
    n = len(samples)
    level = 1 if n < MIN_HISTORY else 2 if n < 5 else 3
    med = statistics.median(samples)
    if n >= 2 and med > 0 and statistics.median(abs(x - med) for x in samples) / med > 0.25:
        level -= 1  # widely spread history: trusted one step less
    return CONFIDENCE[max(level, 1)]


def _samples(signature: str, history: dict[str, list[float]]) -> list[float]:
    return history.get(signature) or history.get(CELL_KEY + signature) or []


def cell_seconds(cell_signatures: list[str], history: dict[str, list[float]]) -> list[float] | None:
    """Expected seconds of each cell (alone, else inside grids); None unless every cell has a history."""
    per_cell = [_samples(s, history) for s in cell_signatures]
    return [statistics.median(x) for x in per_cell] if per_cell and all(per_cell) else None


def expected_duration(signature: str, history: dict[str, list[float]], expect: float | None = None,
                      cell_signatures: list[str] | None = None) -> Expected:
    """A single run is expected from whole runs of its signature only (a cell timed inside a grid
    skipped the process start and slice load, and would flag a standalone run as overrunning); a grid
    falls back to the sum of its cells, each from runs of that cell alone or else from inside grids."""
    if expect:
        return Expected(float(expect), "given", 0, "medium")
    samples = history.get(signature) or []
    if samples:
        return Expected(statistics.median(samples), "history", len(samples), _confidence(samples))
    if cell_signatures and len(cell_signatures) > 1:
        per_cell = cell_seconds(cell_signatures, history)
        if per_cell:
            n = min(len(_samples(s, history)) for s in cell_signatures)
            return Expected(sum(per_cell), "cells", n, "low" if n < MIN_HISTORY else "medium")
    return Expected(None)


@dataclass(frozen=True)
class CellPlan:
    """What the ETA knows of one cell before it runs: its expected seconds (None: no history), how many
    runs stand behind them, its stages' shares of its time, and its cost relative to a plain cell."""

    expected: float | None = None
    n: int = 0
    shares: dict = field(default_factory=dict)
    cost: float = 1.0


def cell_plans(fusions: list[str | None], signatures: list[str], history: dict[str, list[float]],
               shares: dict[str, dict] | None = None) -> list[CellPlan]:
    """One CellPlan per cell. A run of one cell is timed by its whole runs (Expected), so its plan
    carries no seconds of its own; `shares`: learned stage shares by cell signature."""
    plans = []
    for fusion, sig in zip(fusions, signatures):
        samples = _samples(sig, history) if len(signatures) > 1 else []
        plans.append(CellPlan(statistics.median(samples) if samples else None, len(samples),
                              (shares or {}).get(sig) or default_shares(fusion), default_cost(fusion)))
    return plans


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
    finished: int = 0            # cells finished (failed ones included)
    cell_fraction: float = 0.0   # share of the current cell done
    eta_s: float | None = None
    confidence: str = "unknown"


class ProgressTracker:
    """Folds a run's events (fed incrementally, in order) into a Progress; `estimate(now)` adds the ETA."""

    def __init__(self, n_cells: int | None = None, plans: list[CellPlan] | None = None,
                 expected: Expected | None = None, started: float | None = None):
        self.p = Progress(n_cells=n_cells or (len(plans) if plans else None))
        self.plans = list(plans or [])
        self.expected = expected or Expected(None)
        self.started = started
        self.clock: CellClock | None = None
        self.began: dict[int, float] = {}   # cell index -> time of its `cell` event
        self.took: dict[int, float] = {}    # finished cell index -> seconds
        self.failed: set[int] = set()
        self.fusions: dict[int, str] = {}
        self.last_t: float | None = None

    def feed(self, events: list[dict]) -> Progress:
        p = self.p
        for ev in events:
            kind, t = ev.get("kind"), ev.get("t")
            if isinstance(t, (int, float)):
                self.last_t = t if self.last_t is None else max(self.last_t, t)
                if self.started is None:
                    self.started = t
            if kind == "start" and ev.get("cells"):
                p.n_cells = int(ev["cells"])
            elif kind == "cell":
                p.cell_index = int(ev.get("index", 0))
                p.n_cells = int(ev.get("of") or p.n_cells or 1)
                p.finished = max(p.finished, p.cell_index)
                p.cell_fraction, p.stage, p.done, p.total = 0.0, None, None, None
                self.clock = CellClock(t) if isinstance(t, (int, float)) else None
                self.began[p.cell_index] = t
                self.fusions[p.cell_index] = (ev.get("cell") or {}).get("fusion")
            elif kind == "stage":
                p.stage, p.done, p.total = ev.get("stage"), ev.get("done"), ev.get("total")
                if self.clock is not None:
                    self.clock.feed(ev)
            elif kind == "metric":
                index = int(ev.get("index", p.finished))
                p.cells[index] = {k: ev.get(k) for k in ("ari", "nmi", "random_init", "error")}
                p.finished = max(p.finished, index + 1)
                if ev.get("error") or ev.get("skipped"):
                    self.failed.add(index)
                elif isinstance(t, (int, float)) and isinstance(self.began.get(index), (int, float)):
                    self.took[index] = t - self.began[index]
                p.cell_fraction, self.clock = 0.0, None
            elif kind == "end":
                p.ended = True
            elif kind == "cache" and self.clock is not None:
                self.clock.feed(ev)
        if self.last_t is not None:
            return self.estimate(self.last_t)
        return replace(p, cells=dict(p.cells))

    # -- the estimate -------------------------------------------------------------------------------
    def _plan(self, i: int) -> CellPlan:
        plan = self.plans[i] if i < len(self.plans) else CellPlan()
        if not plan.shares:
            fusion = self.fusions.get(i)
            plan = CellPlan(plan.expected, plan.n, default_shares(fusion), default_cost(fusion))
        return plan

    def _cell_expectations(self, n: int) -> tuple[list[float | None], list[str | None]]:
        """Each cell's expected seconds and what they rest on (history | tentative | default | None)."""
        plans = [self._plan(i) for i in range(n)]
        secs = [pl.expected for pl in plans]
        basis = [None if s is None else "history" if pl.n >= MIN_HISTORY else "tentative"
                 for s, pl in zip(secs, plans)]
        exp = self.expected
        if exp.seconds and exp.source != "cells" and any(s is None for s in secs):
            first = self.began.get(0)
            overhead = (first - self.started) if first is not None and self.started is not None else 0.0
            budget = exp.seconds - overhead - sum(s for s in secs if s is not None)
            missing = [i for i, s in enumerate(secs) if s is None]
            cost = sum(plans[i].cost for i in missing)
            whole = "history" if exp.solid else "tentative"
            for i in missing:
                secs[i], basis[i] = max(budget, 0.1 * exp.seconds) * plans[i].cost / cost, whole
        unit = self._unit(plans, secs)
        for i, s in enumerate(secs):
            if s is None and unit is not None:  # scaled by this run's own cells, else a guess from other cells
                secs[i], basis[i] = plans[i].cost * unit, "scaled" if self.took else "default"
        return secs, basis

    def _unit(self, plans: list[CellPlan], secs: list[float | None]) -> float | None:
        """Seconds per unit of cost: from cells this run finished, else from the cells history times."""
        took = {i: s for i, s in self.took.items() if i < len(plans)}
        pairs = list(took.items()) or [(i, s) for i, s in enumerate(secs) if s is not None]
        cost = sum(plans[i].cost for i, _ in pairs)
        return sum(s for _, s in pairs) / cost if pairs and cost > 0 else None

    def _pace(self, secs: list[float | None]) -> float | None:
        """How much slower (> 1) or faster this run goes than expected, from the cells it finished."""
        ratios = [self.took[i] / secs[i] for i in self.took if i < len(secs) and secs[i]]
        return min(max(statistics.median(ratios), 0.2), 5.0) if ratios else None

    def estimate(self, now: float) -> Progress:
        """Progress, ETA and confidence as of `now` (a copy: later events do not change it)."""
        self._estimate(now)
        return replace(self.p, cells=dict(self.p.cells))

    def _estimate(self, now: float) -> None:
        p = self.p
        if p.ended:
            p.fraction, p.eta_s, p.confidence = 1.0, 0.0, "high"
            return
        n = p.n_cells or len(self.plans) or 1
        secs, basis = self._cell_expectations(n)
        i = p.cell_index if self.clock is not None else None
        parts: list[tuple[float, str | None]] = []   # (seconds left, what they rest on)
        pace, agree = self._pace(secs), None
        if pace is not None:
            agree = 1 / AGREE <= pace <= AGREE and all(basis[j] == "history" for j in self.took if j < n)
        if i is not None:
            cur, cur_agree, projected = self._current_cell(now, self._plan(i), secs[i], basis[i], pace or 1.0)
            if cur is None:
                p.fraction, p.eta_s, p.confidence = self._fraction(n, secs, i), None, "unknown"
                return
            parts += cur
            agree = cur_agree if cur_agree is not None else agree
            if secs[i] is None and projected:
                secs[i] = projected
                plans = [self._plan(j) for j in range(n)]
                unit = projected / plans[i].cost
                for j in range(n):
                    if secs[j] is None or basis[j] == "default":
                        secs[j], basis[j] = plans[j].cost * unit, "scaled"
            later = range(i + 1, n)
        else:
            later = range(p.finished, n)
            if self.expected.seconds is not None and self.started is not None and not p.finished:
                left = self.expected.seconds - (now - self.started)
                overdue = left < 0
                parts.append((OVERDUE * (now - self.started) if overdue else left,
                              "overdue" if overdue else "history" if self.expected.solid
                              and self.expected.source == "history" else "tentative"))
                later = range(0)
        for j in later:
            if j in self.failed:
                continue
            if secs[j] is None:
                p.fraction, p.eta_s, p.confidence = self._fraction(n, secs, i), None, "unknown"
                return
            parts.append((secs[j] * (pace or 1.0), basis[j]))
        p.fraction = self._fraction(n, secs, i)
        if (not parts and i is None and not p.finished) or any(b == "default" for _, b in parts):
            p.eta_s, p.confidence = None, "unknown"  # a guess, not a measure: `?` rather than a number
            return
        p.eta_s = max(sum(s for s, _ in parts), 0.0)
        p.confidence = _judge(parts, agree)

    def _current_cell(self, now: float, plan: CellPlan, expected: float | None, basis: str | None,
                      pace: float) -> tuple[list | None, bool | None, float | None]:
        """(parts left of the current cell, whether its measured rate agrees with the history, its total
        seconds projected from a measured dominant stage when no history times it)."""
        clock, p = self.clock, self.p
        shares = plan.shares
        norm = sum(shares.values()) or 1.0
        p.cell_fraction = min(sum(v * clock.fraction(s) for s, v in shares.items()) / norm, 0.999)
        stage = clock.current
        parts: list[tuple[float, str | None]] = []
        agree, projected = None, None
        measured, steps, stage_end = None, 0, None
        if stage is not None:
            pts = _steps(clock.points.get(stage, []))
            done, total = clock.latest[stage]
            steps = len(pts) - 1
            if steps >= 1 and done < total:
                # from its first report on once there are enough: the wait before it held set-up (imports, a
                # graph), not the stage's steps
                window = (pts[1:] if steps >= MEASURED_AFTER else pts)[-(RATE_WINDOW + 1):]
                rate = (window[-1][0] - window[0][0]) / max(window[-1][1] - window[0][1], 1e-9)
                stage_end = pts[-1][0] + rate * (total - done)
                measured = stage_end - now
                share = shares.get(stage, 0.0) / norm
                if expected and share > 0 and steps >= MEASURED_AFTER:
                    ratio = rate / (share * expected / total)
                    agree = basis == "history" and 1 / AGREE <= ratio <= AGREE
                    pace = min(max(ratio, 0.2), 5.0)
                if expected is None and share > 0 and steps >= MEASURED_AFTER:
                    projected = (stage_end - clock.points[stage][0][0]) / share
        if expected is None:
            expected, basis = projected, "scaled" if projected else "default"
        if stage is not None and clock.latest[stage][0] < clock.latest[stage][1]:
            w = min(steps / MEASURED_AFTER, 1.0) if measured is not None else 0.0
            by_history = None
            if expected is not None:
                since = now - clock.points[stage][-1][0]
                by_history = shares.get(stage, 0.0) / norm * expected * pace * (1 - clock.fraction(stage)) - since
            if measured is None and by_history is None:
                return None, agree, projected
            left = w * measured + (1 - w) * by_history if by_history is not None and measured is not None \
                else measured if by_history is None else by_history
            if left < 0:
                parts.append((OVERDUE * (now - clock.points[stage][0][0]), "overdue"))
            else:
                parts.append((left, "measured" if w >= 1.0 and basis != "default" else basis))
        rest = [s for s in shares if s != stage and clock.fraction(s) < 1]
        if rest:
            if expected is None:
                return None, agree, projected
            parts.append((sum(shares[s] / norm * (1 - clock.fraction(s)) for s in rest) * expected * pace, basis))
        return parts, agree, projected

    def _fraction(self, n: int, secs: list[float | None], current: int | None) -> float | None:
        """Work done over the work of every cell that did not fail (each weighed by its expected seconds)."""
        known = [s for s in secs if s]
        weights = [s if s else (statistics.median(known) if known else 1.0) for s in secs]
        total = sum(w for j, w in enumerate(weights) if j not in self.failed)
        if total <= 0:
            return None
        done = sum(w for j, w in enumerate(weights) if j in self.took)
        if current is not None and current not in self.took and current not in self.failed:
            done += weights[current] * self.p.cell_fraction
        return min(done / total, 0.999)


def _steps(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The stage's start and each point where its done count rose."""
    out = points[:1]
    for t, d in points[1:]:
        if d > out[-1][1]:
            out.append((t, d))
    return out


def _judge(parts: list[tuple[float, str | None]], agree: bool | None) -> str:
    """The confidence of an ETA made of `parts`; `agree`: this run's measured pace matches its history.
    Solid parts are measured, or timed by a history of MIN_HISTORY+ runs; the rest (few runs, `--expect`,
    defaults) is a hint."""
    total = sum(s for s, _ in parts)
    by: dict[str | None, float] = {}
    for s, b in parts:
        by[b] = by.get(b, 0.0) + s
    solid = by.get("measured", 0.0) + by.get("history", 0.0)
    if by.get("overdue") or solid < 0.75 * total:
        return "low"
    return "high" if agree else "medium"


def queued_eta(expected: Expected) -> tuple[float | None, str]:
    """What a run that has not started is expected to take; nothing measured yet, so at most medium."""
    if expected.seconds is None:
        return None, "unknown"
    return expected.seconds, "low" if expected.tentative or expected.source == "given" else \
        min(expected.confidence, "medium", key=CONFIDENCE.index)
