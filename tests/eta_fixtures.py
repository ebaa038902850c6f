"""Recorded runs (tests/fixtures/events/<name>/) replayed through the ETA as a watcher would have seen them.

Each recording has its `events.jsonl` and a `run.json` {started, ended, group, note}. Recordings of one
group ran the same cells; the expected times a recording is replayed with come from the *other*
recordings of its group (what the history would hold), as the registry and ShareBook would give them:
whole-run durations, per-cell seconds of grids, stage shares learned from their events.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from mihd.runs.eta import CELL_KEY, Expected, ProgressTracker, cell_plans, expected_duration
from mihd.runs.stages import learned_shares, stage_seconds

FIXTURES = Path(__file__).parent / "fixtures" / "events"
AT = (0.25, 0.5, 0.75)  # moments of the replay, as shares of the true duration
KEEP = {"start": ("cells", "slice"), "cell": ("index", "of", "cell", "stages"), "stage": ("stage", "done", "total"),
        "cache": ("modality", "name", "status", "seconds"), "metric": ("index", "ari", "error"),
        "end": ("status", "error")}  # the fields the ETA reads, per event kind


@dataclass
class Recording:
    name: str
    group: str
    note: str
    started: float
    ended: float
    events: list[dict]

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def fusions(self) -> list[str | None]:
        return [(e.get("cell") or {}).get("fusion") for e in self.events if e["kind"] == "cell"]

    @property
    def cell_sigs(self) -> list[str]:
        return [f"{self.group}/{i}/{f}" for i, f in enumerate(self.fusions)]

    def cell_seconds(self) -> dict[int, float]:
        began = {e["index"]: e["t"] for e in self.events if e["kind"] == "cell"}
        return {e["index"]: e["t"] - began[e["index"]] for e in self.events
                if e["kind"] == "metric" and not e.get("error") and e["index"] in began}


def recordings() -> list[Recording]:
    out = []
    for d in sorted(p for p in FIXTURES.iterdir() if (p / "run.json").exists()):
        meta = json.loads((d / "run.json").read_text())
        events = [json.loads(line) for line in (d / "events.jsonl").read_text().splitlines() if line.strip()]
        out.append(Recording(d.name, meta["group"], meta.get("note", ""), meta["started"], meta["ended"], events))
    return out


def record(run_dir: Path, name: str, group: str, note: str) -> Path:
    """Keep a finished run dir (`mihd run/grid --run-dir`) as a recording: its events trimmed to what the
    ETA reads (times intact), its start (proc.json) and end (exit.json)."""
    run_dir, dst = Path(run_dir), FIXTURES / name
    dst.mkdir(parents=True, exist_ok=True)
    lines = []
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        ev = json.loads(line)
        if ev.get("kind") in KEEP:
            kept = {"t": ev["t"], "kind": ev["kind"], **{k: ev[k] for k in KEEP[ev["kind"]] if k in ev}}
            if isinstance(kept.get("ari"), float):
                kept["ari"] = round(kept["ari"], 4)
            lines.append(json.dumps(kept))
    (dst / "events.jsonl").write_text("\n".join(lines) + "\n")
    started = json.loads((run_dir / "proc.json").read_text())["started"]
    ended = json.loads((run_dir / "exit.json").read_text())["ended"]
    (dst / "run.json").write_text(json.dumps({"group": group, "started": started, "ended": ended, "note": note},
                                             indent=1) + "\n")
    return dst


def expectations(rec: Recording, history_of: list[Recording]):
    """(Expected, cell plans) for replaying `rec` with the other recordings of its group as history."""
    others = [r for r in history_of if r.group == rec.group and r.name != rec.name]
    sigs = rec.cell_sigs
    run_sig = sigs[0] if len(sigs) == 1 else f"grid:{rec.group}"
    history: dict[str, list[float]] = {run_sig: [r.seconds for r in others]} if others else {}
    timings: dict[str, list[dict]] = {}
    for r in others:
        per_stage = stage_seconds(r.events)
        for i, secs in r.cell_seconds().items():
            if len(sigs) > 1:
                history.setdefault(CELL_KEY + sigs[i], []).append(secs)
            if i in per_stage:
                timings.setdefault(sigs[i], []).append(per_stage[i])
    shares = {s: learned_shares(t) for s, t in timings.items()}
    return (expected_duration(run_sig, history, None, sigs),
            cell_plans(rec.fusions, sigs, history, shares))


def replay(rec: Recording, expected: Expected, plans, at=AT) -> list[tuple[float, object]]:
    """[(share of the true duration, Progress a watcher would have shown then)]."""
    out = []
    for q in at:
        now = rec.started + q * rec.seconds
        tracker = ProgressTracker(len(plans), plans, expected, rec.started)
        tracker.feed([e for e in rec.events if e["t"] <= now])
        out.append((q, tracker.estimate(now)))
    return out


def finish_error(rec: Recording, q: float, p) -> float | None:
    """Error of the predicted finish time (now + ETA) as a share of the true duration; None: no ETA."""
    if p.eta_s is None:
        return None
    return (q * rec.seconds + p.eta_s - rec.seconds) / rec.seconds


def table(with_history: bool = True) -> list[dict]:
    """One row per recording: true seconds, and at each moment the finish error and the confidence."""
    recs = recordings()
    rows = []
    for rec in recs:
        expected, plans = expectations(rec, recs if with_history else [])
        points = replay(rec, expected, plans)
        rows.append({"name": rec.name, "seconds": rec.seconds, "expected": expected.seconds,
                     "errors": [finish_error(rec, q, p) for q, p in points],
                     "confidence": [p.confidence for _, p in points]})
    return rows


def median_abs(values: list[float | None]) -> float | None:
    """Median absolute error; an estimate that was missing counts as fully wrong (1.0)."""
    return statistics.median(1.0 if v is None else abs(v) for v in values) if values else None
