"""How a cell's time splits over its stages (load, extract_*, fuse, train, cluster), for the ETA.

A cell's events name its stages as they go (`stage` events with done/total). The time between two
events of a cell goes to the stage of the event that closes it when that event reports work done (a
`train 20/300` closes ten epochs of training), else to the stage still open (a `cache` event inside
`load`). Summed over a finished run this gives each stage's share of the cell; the shares of the latest
finished runs of the same cell signature are what the ETA weighs in-cell progress with. Without such a
run the defaults below hold: a training fusion's `train` dominates its cell.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from ..rundir import read_events

# shares of a cell's time per stage when no finished run of the same cell says otherwise
# (measured on the demo slice and on DLPFC 151673 with cached embeddings)
TRAINING_SHARES = {"load": 0.01, "train": 0.94, "fuse": 0.01, "cluster": 0.04}
PLAIN_SHARES = {"load": 0.05, "fuse": 0.25, "cluster": 0.70}
SPAGCN_SHARES = {"load": 0.03, "fuse": 0.12, "graph": 0.06, "search": 0.5, "train": 0.28, "cluster": 0.01}
DEFAULT_SHARES = {"staig_fusion": TRAINING_SHARES, "attention": TRAINING_SHARES, "graphst": TRAINING_SHARES,
                  "stagate": TRAINING_SHARES, "spagcn": SPAGCN_SHARES}

# a cell's cost relative to a cell without training, for weighing cells no history times
DEFAULT_COST = {"staig_fusion": 40.0, "attention": 4.0, "graphst": 60.0, "stagate": 300.0, "spagcn": 20.0}


def default_shares(fusion: str | None) -> dict[str, float]:
    return dict(DEFAULT_SHARES.get(fusion or "", PLAIN_SHARES))


def default_cost(fusion: str | None) -> float:
    return DEFAULT_COST.get(fusion or "", 1.0)


class CellClock:
    """The stages of one cell as its events arrive: time spent per stage, each stage's latest done/total,
    its (t, done) points and when it began (the event before its first one)."""

    def __init__(self, t: float):
        self.began = self.last_t = t
        self.open: str | None = None
        self.spent: dict[str, float] = {}
        self.latest: dict[str, tuple[float, float]] = {}    # stage -> (done, total)
        self.points: dict[str, list[tuple[float, float]]] = {}  # stage -> [(t, done)], from its start
        self.current: str | None = None                     # the stage of the latest stage event

    def feed(self, ev: dict) -> None:
        t = ev.get("t")
        if not isinstance(t, (int, float)):
            return
        owner = self.open
        if ev.get("kind") == "stage" and ev.get("stage"):
            stage, done, total = ev["stage"], float(ev.get("done") or 0), float(ev.get("total") or 0)
            if done > 0:
                owner = stage
            self.points.setdefault(stage, [(self.last_t, 0.0)]).append((t, done))
            self.latest[stage] = (done, total)
            self.current = stage
            if done < total:
                self.open = stage
            elif self.open == stage:
                self.open = None
        if owner:
            self.spent[owner] = self.spent.get(owner, 0.0) + max(t - self.last_t, 0.0)
        self.last_t = max(self.last_t, t)

    def fraction(self, stage: str) -> float:
        done, total = self.latest.get(stage, (0.0, 0.0))
        return min(max(done / total, 0.0), 1.0) if total > 0 else 0.0


def stage_seconds(events: list[dict]) -> dict[int, dict[str, float]]:
    """Seconds per stage of each cell that ended (its `metric` event) without an error: {index: {stage: s}}."""
    out: dict[int, dict[str, float]] = {}
    index, clock = None, None
    for ev in events:
        kind = ev.get("kind")
        if kind == "cell" and isinstance(ev.get("t"), (int, float)):
            index, clock = ev.get("index"), CellClock(ev["t"])
        elif clock is not None:
            clock.feed(ev)
            if kind == "metric":
                if not ev.get("error") and ev.get("index", index) == index:
                    out[index] = clock.spent
                index, clock = None, None
    return out


def learned_shares(timings: list[dict[str, float]]) -> dict[str, float] | None:
    """Each stage's median share of the cell over finished runs' stage seconds; None without any."""
    usable = [t for t in timings if sum(t.values()) > 0]
    if not usable:
        return None
    stages = {s for t in usable for s in t}
    shares = {s: statistics.median(t.get(s, 0.0) / sum(t.values()) for t in usable) for s in stages}
    total = sum(shares.values())
    return {s: v / total for s, v in shares.items()} if total > 0 else None


class ShareBook:
    """Learned stage shares by cell signature, from the events of the latest done runs that ran the cell;
    a signature's runs are read once, and again only when another such run is done."""

    def __init__(self, registry, runs: int = 5):
        self.registry, self.runs = registry, runs
        self._known: dict[str, tuple[tuple, dict | None]] = {}

    def get(self, signature: str) -> dict[str, float] | None:
        rows = self.registry.rows(  # the latest done runs with the cell, walked back along the index on cells
            "id IN (SELECT DISTINCT c.run_id FROM cells c CROSS JOIN runs r ON r.id = c.run_id WHERE c.signature=? "
            "AND r.status='done' ORDER BY c.run_id DESC LIMIT ?)", (signature, self.runs))
        ids = tuple(r["id"] for r in rows)
        if signature in self._known and self._known[signature][0] == ids:
            return self._known[signature][1]
        cells = self.registry.cells(list(ids))
        timings = []
        for r in rows:
            per_cell = stage_seconds(read_events(Path(r["run_dir"]))[0])
            timings += [per_cell[c["idx"]] for c in cells.get(r["id"], [])
                        if c["signature"] == signature and c["idx"] in per_cell]
        shares = learned_shares(timings)
        self._known[signature] = (ids, shares)
        return shares


def task_startup(finished: list[tuple[float | None, float | None]]) -> float:
    """The start-up of a fanned-out task (interpreter, imports, slice load), which its cell's history (the
    cell's own seconds) leaves out: the median wall time less own seconds over the finished tasks given as
    (wall, own), 0 when none says. A 168-cell study on Slurm ended 35-64 % past its ETA without it."""
    extra = [max(wall - own, 0.0) for wall, own in finished if wall is not None and own is not None]
    return statistics.median(extra) if extra else 0.0
