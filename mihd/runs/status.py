"""What `mihd runs ls` and the dashboard show: one RunView per run, refreshed from run dirs and backends.

A RunWatcher is meant to live as long as its caller (the dashboard keeps one): it keeps the monitor's
process objects (for CPU %), each live run's events offset (only new bytes are read) and the NVML
probe. Finished runs cost nothing per refresh: their rows are final. New run dirs (launched elsewhere,
or a deleted registry) are found by one scandir and indexed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import MihdError
from ..rundir import EXIT, read_events
from ..workspace import resolve_root, runs_dir
from .backends import GONE, QUEUED, RUNNING, get_backend
from .cells import sig_string, signature
from .eta import ProgressTracker, cell_seconds, eta, expected_duration
from .gpu import Gpu, default_gpu
from .monitor import Monitor, TreeSample
from .overrun import is_overrun, overrun_factor, record_overrun
from .registry import ACTIVE, Registry
from .usage import fresh, read_usage

RECENT = 20  # finished runs shown by `ls` without --all


@dataclass
class RunView:
    id: str
    name: str | None
    label: str
    status: str                  # queued | running | done | failed | killed | lost
    backend: str
    run_dir: str
    signature: str
    n_cells: int
    created: float | None
    started: float | None
    ended: float | None
    queued_s: float | None       # waiting before it ran (Slurm queue, supervisor start)
    elapsed: float | None        # running time so far (or in total, once ended)
    expected_s: float | None
    expected_source: str | None  # given | history | cells | None
    eta_s: float | None
    eta_confidence: str          # none | low | medium | high | given
    progress: float | None       # 0..1
    stage: str | None
    stage_done: int | None
    stage_total: int | None
    cell_index: int | None
    overrun: bool
    cell_results: dict[int, dict] = field(default_factory=dict)  # while running: finished cells' metric events
    cell_progress: float | None = None  # while running: share of the current cell done
    cpu_percent: float | None = None
    rss: int | None = None
    gpu_mem: int | None = None
    nprocs: int | None = None
    ari: float | None = None     # best over the run's cells
    nmi: float | None = None
    scores: list[dict] = field(default_factory=list)  # per cell: label, signature, ari, nmi, seconds
    exit_code: int | None = None
    exit_signal: str | None = None
    error: str | None = None
    reason: str | None = None    # why queued / unknown (backend's word)
    pid: int | None = None
    job_id: str | None = None
    host: str | None = None
    kill_signal: str | None = None
    killed_at: float | None = None
    killed_by: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def to_dict(self) -> dict:
        return asdict(self)


def _backend_name(name: str) -> str:
    return "local" if name == "direct" else name  # a direct run is a local process without supervisor


class RunWatcher:
    def __init__(self, root=None, factor: float | None = None, monitor: Monitor | None = None,
                 gpu: Gpu | None = None):
        self.root = resolve_root(root)
        self.registry = Registry(self.root)
        self.factor = overrun_factor(factor)
        self.gpu = gpu if gpu is not None else default_gpu()
        self.monitor = monitor or Monitor(self.gpu)
        self._trackers: dict[str, tuple[ProgressTracker, int]] = {}

    def close(self) -> None:
        self.registry.close()

    # -- refreshing -------------------------------------------------------------------------------
    def _discover(self) -> None:
        """Index run dirs the registry does not know (runs launched elsewhere, a deleted registry)."""
        try:
            names = {e.name for e in os.scandir(runs_dir(self.root)) if e.is_dir() and e.name[0] != "."}
        except OSError:
            return
        for name in sorted(names - self.registry.ids()):
            d = runs_dir(self.root) / name
            if any((d / f).exists() for f in ("spec.json", "events.jsonl", "result.json")):
                self.registry.ingest(d)

    def _refresh_active(self, rows: list[dict]) -> None:
        """Bring queued/running rows up to date: exit.json first, then what the backends say."""
        by_backend: dict[str, dict[str, dict]] = {}
        for row in rows:
            if (Path(row["run_dir"]) / EXIT).exists():
                row.update(self.registry.ingest(Path(row["run_dir"])))
                continue
            handle = json.loads(row["handle"]) if row["handle"] else {}
            handle.setdefault("run_dir", row["run_dir"])
            by_backend.setdefault(_backend_name(row["backend"]), {})[row["id"]] = handle
        index = {r["id"]: r for r in rows}
        for name, handles in by_backend.items():
            try:
                states = get_backend(name).poll(handles)
            except MihdError as exc:
                for rid in handles:
                    index[rid]["reason"] = str(exc)
                continue
            for rid, st in states.items():
                row = index[rid]
                row["reason"] = st.reason
                if st.handle is not None or st.state == GONE or (st.state == RUNNING and row["status"] == "queued"):
                    row.update(self.registry.ingest(Path(row["run_dir"])))  # picks up proc.json / result
                    if st.handle is not None:
                        self.registry.update(rid, handle=json.dumps(st.handle))
                        row["handle"] = json.dumps(st.handle)
                if st.state == GONE and row["status"] in ACTIVE and not (Path(row["run_dir"]) / EXIT).exists():
                    self.registry.update(rid, status="lost")
                    row["status"] = "lost"
                elif st.state == RUNNING and row["status"] == "queued":
                    row["status"] = "running"
                    row["started"] = row["started"] or st.started or time.time()
                    self.registry.update(rid, status="running", started=row["started"])
                elif st.state == QUEUED:
                    row["status"] = "queued"

    def _progress(self, row: dict):
        tracker, offset = self._trackers.get(row["id"]) or (ProgressTracker(row["n_cells"]), 0)
        events, offset = read_events(Path(row["run_dir"]), offset)
        tracker.feed(events)
        self._trackers[row["id"]] = (tracker, offset)
        return tracker.p

    def refresh(self, all: bool = False, recent: int = RECENT) -> list[RunView]:
        """Every active run, plus the `recent` latest finished ones (all of them with all=True)."""
        now = time.time()
        self._discover()
        if all:
            rows = self.registry.rows()
        else:  # active runs and the latest ended ones: the rest is final and not shown
            rows = self.registry.rows(
                "status IN ('queued', 'running') OR id IN "
                "(SELECT id FROM runs WHERE status NOT IN ('queued', 'running') ORDER BY id DESC LIMIT ?)",
                (recent,))
        for r in rows:  # a lost run whose exit.json arrived late (e.g. over a network filesystem)
            if r["status"] == "lost" and (Path(r["run_dir"]) / EXIT).exists():
                r.update(self.registry.ingest(Path(r["run_dir"])))
        self._refresh_active([r for r in rows if r["status"] in ACTIVE])
        return self._views(rows, now)

    def view(self, run_id: str) -> RunView:
        """One run by id or unique id prefix (or name), refreshed."""
        rid = self.resolve(run_id)
        return next(v for v in self.refresh(all=True) if v.id == rid)

    def resolve(self, run_id: str) -> str:
        self._discover()
        ids = self.registry.ids()
        if run_id in ids:
            return run_id
        matches = [i for i in ids if i.startswith(run_id)] or \
                  [r["id"] for r in self.registry.rows("name=?", (run_id,))]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise MihdError(f"run {run_id!r}: no such run (see `mihd runs ls --all`)")
        raise MihdError(f"run {run_id!r}: ambiguous, matches {', '.join(sorted(matches)[:5])}")

    def latest_scores(self) -> dict[str, dict]:
        """The latest finished scores per cell signature string (for the grid): {sig: {ari, nmi, run_id}}."""
        out: dict[str, dict] = {}
        for run_id, cells in sorted(self.registry.cells().items()):
            for c in cells:
                out[c["signature"]] = {"run_id": run_id, "ari": c["ari"], "nmi": c["nmi"],
                                       "label": c["label"], "sig": json.loads(c["sig"])}
        return out

    # -- building views ---------------------------------------------------------------------------
    def _views(self, rows: list[dict], now: float) -> list[RunView]:
        history = self.registry.durations()
        cells = self.registry.cells([r["id"] for r in rows])
        live = {}
        for r in rows:
            if r["status"] == "running":
                root = get_backend(_backend_name(r["backend"])).process_root(
                    json.loads(r["handle"]) if r["handle"] else {})
                if root:
                    live[r["id"]] = root
        samples = self.monitor.sample(live) if live else {}
        for r in rows:  # processes we cannot see (a Slurm job, another host): what the run itself measured
            if r["status"] == "running" and r["id"] not in live:
                usage = read_usage(Path(r["run_dir"]))
                if fresh(usage, now):
                    samples[r["id"]] = TreeSample(cpu_percent=usage["cpu_percent"] or 0.0, rss=usage["rss"],
                                                  nprocs=usage["nprocs"], gpu_mem=usage["gpu_mem"])
        views, expected_by = [], {}
        for r in rows:
            status = r["status"]
            started, ended = r["started"], r["ended"]
            end = ended if ended else (now if status in ACTIVE else None)
            elapsed = (end - started) if (started and end) else None
            queued_s = ((started or now) - r["created"]) if r["created"] and (started or status == "queued") else None
            key = (r["signature"], r["expect"])
            if key not in expected_by:
                cell_sigs = [sig_string(signature(c, r["backend"])) for c in json.loads(r["cells"] or "[]")]
                expected_by[key] = (expected_duration(r["signature"], history, r["expect"], cell_sigs),
                                    cell_seconds(cell_sigs, history) if len(cell_sigs) > 1 else None)
            expected, per_cell = expected_by[key]
            prog = self._progress(r) if status == "running" else None
            fraction = prog.weighted(per_cell) if prog else (1.0 if status == "done" else None)
            eta_s, conf = eta(elapsed, fraction, expected) if status == "running" and elapsed is not None \
                else (None, expected.confidence if status == "queued" else "none")
            if status == "queued":
                eta_s = expected.seconds
            overrun = bool(r["overrun"])
            if status == "running" and not overrun and is_overrun(elapsed, expected, self.factor):
                record_overrun(self.registry, r["id"], Path(r["run_dir"]), elapsed, expected, self.factor, now)
                overrun = True
            scores = [{k: c[k] for k in ("label", "signature", "ari", "nmi", "seconds")} for c in cells.get(r["id"], [])]
            aris = [s["ari"] for s in scores if s["ari"] is not None]
            best = max(range(len(scores)), key=lambda i: scores[i]["ari"] if scores[i]["ari"] is not None
                       else float("-inf")) if aris else None
            smp = samples.get(r["id"])
            views.append(RunView(
                id=r["id"], name=r["name"], label=r["label"], status=status, backend=r["backend"],
                run_dir=r["run_dir"], signature=r["signature"], n_cells=r["n_cells"] or 0,
                created=r["created"], started=started, ended=ended, queued_s=queued_s, elapsed=elapsed,
                expected_s=expected.seconds, expected_source=expected.source, eta_s=eta_s,
                eta_confidence=conf, progress=fraction, stage=prog.stage if prog else None,
                stage_done=prog.done if prog else None, stage_total=prog.total if prog else None,
                cell_index=prog.cell_index if prog else None, overrun=overrun,
                cell_results=dict(prog.cells) if prog else {}, cell_progress=prog.cell_fraction if prog else None,
                cpu_percent=smp.cpu_percent if smp else None, rss=smp.rss if smp else None,
                gpu_mem=smp.gpu_mem if smp else None, nprocs=smp.nprocs if smp else None,
                ari=scores[best]["ari"] if best is not None else None,
                nmi=scores[best]["nmi"] if best is not None else None, scores=scores,
                exit_code=r["exit_code"], exit_signal=r["exit_signal"], error=r["error"],
                reason=r.get("reason"), pid=r["pid"], job_id=r["job_id"], host=r["host"],
                kill_signal=r["kill_signal"], killed_at=r["killed_at"], killed_by=r["killed_by"]))
        return views


def list_runs(root=None, all: bool = False, factor: float | None = None, gpu: Gpu | None = None) -> list[RunView]:
    """One-shot listing (`mihd runs ls`); a long-lived caller should keep a RunWatcher instead."""
    watcher = RunWatcher(root, factor=factor, gpu=gpu)
    try:
        return watcher.refresh(all=all)
    finally:
        watcher.close()
