"""What `mihd runs ls` and the dashboard show: one RunView per run, refreshed from run dirs and backends.

A RunWatcher is meant to live as long as its caller (the dashboard keeps one): it keeps each live run's
last usage.json sample (CPU % and memory as its supervisor measured them; the monitor samples /proc only for a
run without a fresh one), each live run's events offset (only new bytes are read) and the NVML probe. Finished runs cost a few stats per refresh (the registry's stamps; `sweep` bounds how many a
long-lived watcher checks each time): only a changed one is read again. New run dirs (launched elsewhere,
or a deleted registry) are found by one scandir and indexed.

Status follows what the processes do: `running` while the supervisor runs, `orphaned` while the command
runs on without it, then done/failed from the run's own result/events (or exit.json), and `lost` only when
nothing of the run is left and it said nothing; that decision is written into the run dir (a `lost`
event) so a rebuilt index keeps it. A run dir with a bad file is `corrupt` (error: `<file>: <why>`), alone.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MihdError
from ..rundir import EXIT, USAGE, event_problem, read_events
from ..workspace import resolve_root
from .backends import GONE, ORPHANED, QUEUED, RUNNING, UNKNOWN, get_backend
from .cells import headline, sig_string, signature
from .eta import Expected, ProgressTracker, cell_plans, queued_eta
from .fanout import is_fanned
from .fanout_status import grid_progress, late_cell, refresh_grid
from .grid_index import Rollups, fanned, parts_changed, reusing
from .grid_view import CellView
from .forecast import expectations
from .gpu import Gpu, default_gpu
from .ids import check_ref, match
from .late import late_reason, projection, tell
from .monitor import Monitor, TreeSample
from .notify import deliver
from .overrun import is_overrun, overrun_factor, record_overrun
from .reasons import failure_reason
from .registry import Registry
from .run_end import backend_name, record_lost, signalled_job
from .run_files import ACTIVE, ACTIVE_SQL, TERMINAL, files_stamp
from .run_row import row_handle
from .stages import ShareBook
from .usage import fresh, read_usage

RECENT = 20  # finished runs shown by `ls` without --all
UNANSWERED = "unknown"  # an active run's status while its backend does not answer (slurmctld down)
COMPUTING = ("running", "orphaned")  # its command runs (with or without its supervisor)
SCORE_KEYS = ("label", "signature", "ari", "nmi", "random_init", "seconds")  # what a view keeps of each cell


@dataclass
class RunView:
    id: str
    name: str | None
    label: str
    status: str                  # queued | running | orphaned | done | failed | killed | lost | corrupt
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
    eta_confidence: str          # unknown | low | medium | high (mihd.runs.eta says what each rests on)
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
    ari: float | None = None     # best over the run's cells (a study: its best combination's mean, cells.headline)
    nmi: float | None = None
    random_init: bool = False    # that best score was made with random-init weights
    scores: list[dict] = field(default_factory=list)  # per cell: SCORE_KEYS
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
    cells: list[CellView] = field(default_factory=list)  # a fanned-out grid's cells (grid_view.CellView)
    late: str | None = None      # while running: why its trustworthy projection ends late (late.py), else None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE or self.status == UNANSWERED

    def to_dict(self) -> dict:
        """Its fields as JSON-ready values (its own lists and dicts are shared, not copied: 10,000 views list
        in a blink, where a deep copy took seconds)."""
        return {**self.__dict__, "cells": [c.to_dict() for c in self.cells]}


def _announce_ends(rows) -> None:
    """Fire the end of each run this refresh saw end (notify.py): the supervisor fired it already, unless it
    never got to (SIGKILLed, a Slurm job killed at its limit, a lost run); the claim keeps it to once."""
    for row in rows:
        event = "done" if row["status"] == "done" else "failed"
        reason = None if event == "done" else failure_reason(row) or row.get("note")
        deliver(Path(row["run_dir"]), {"event": event, "state": row["status"], "reason": reason})


def not_answering(backend: str) -> str:
    return f"{'Slurm' if backend == 'slurm' else backend} not answering"


class RunWatcher:
    def __init__(self, root=None, factor: float | None = None, monitor: Monitor | None = None,
                 gpu: Gpu | None = None, sweep: int | None = None):
        """`sweep`: how many ended runs each refresh checks for changed files (Registry.sync's `check`;
        None: all of them, as a one-shot listing wants)."""
        self.root = resolve_root(root)
        self.registry = Registry(self.root)
        self.sweep = sweep
        self.factor = overrun_factor(factor)
        self.gpu = gpu if gpu is not None else default_gpu()
        self.monitor = monitor or Monitor(self.gpu)
        self._trackers: dict[str, tuple[ProgressTracker, int]] = {}
        self._shares = ShareBook(self.registry)
        self._fan_states: dict[str, dict] = {}  # fanned-out grid id -> its parts' backend states
        self._late: dict[str, str | None] = {}     # run id -> its late flag at the last refresh
        self._usage: dict[str, tuple[int, dict | None]] = {}  # run id -> (usage.json's mtime, its sample)

    @property
    def notes(self) -> list[str]:
        """What the registry healed or rebuilt, one line each (the CLI prints them on stderr)."""
        return self.registry.notes

    def close(self) -> None:
        self.registry.close()

    # -- refreshing -------------------------------------------------------------------------------
    def _refresh_active(self, rows: list[dict]) -> None:
        """Bring active rows up to date: exit.json first, then what the backends say (ended rows, a corrupt
        one included, are described again by the registry's sync when their files change)."""
        by_backend: dict[str, dict[str, dict]] = {}
        for row in rows:
            if is_fanned(row["run_dir"]):  # its cells are asked, not the grid
                self._fan_states[row["id"]] = refresh_grid(self.registry, row)
                continue
            if (Path(row["run_dir"]) / EXIT).exists() and not signalled_job(row):
                row.update(self.registry.ingest(Path(row["run_dir"])))
                continue
            by_backend.setdefault(backend_name(row["backend"]), {})[row["id"]] = row_handle(row)
        index = {r["id"]: r for r in rows}
        for name, handles in by_backend.items():
            try:
                states = get_backend(name).poll(handles)
            except MihdError as exc:  # a queued job may run by now: its state is unknown, not its last one
                for rid in handles:
                    index[rid]["reason"], index[rid]["unanswered"] = str(exc), name
                continue
            for rid, st in states.items():
                self._follow(index[rid], st)

    def _follow(self, row: dict, st) -> None:
        run_dir = Path(row["run_dir"])
        if st.state == GONE:  # nothing of it runs: its own files say how it ended, else it is lost
            row.update(self.registry.ingest(run_dir, gone=True))
            if row["status"] == "lost":
                record_lost(run_dir, st.reason or "none of its processes runs and it left no exit.json")
                row.update(self.registry.ingest(run_dir, gone=True))
            row["reason"] = st.reason or row["note"]
            return
        if st.handle is not None or st.state == UNKNOWN or (st.state == RUNNING and row["status"] == "queued"):
            row.update(self.registry.ingest(run_dir))  # proc.json, a result, another host's events
        row["reason"], row["time_limit"] = st.reason, st.time_limit  # the limit: what late judges by too
        if row["status"] not in ACTIVE:
            return
        if st.state == RUNNING and row["status"] != "running" or st.state == ORPHANED and row["status"] != "orphaned":
            row["status"] = "running" if st.state == RUNNING else "orphaned"
            row["started"] = row["started"] or st.started or time.time()
            self.registry.update(row["id"], status=row["status"], started=row["started"])
        elif st.state == QUEUED:
            row["status"] = "queued"

    def _progress(self, row: dict, expected, history: dict, now: float):
        tracker, offset = self._trackers.get(row["id"]) or (self._tracker(row, expected, history), 0)
        events, offset = read_events(Path(row["run_dir"]), offset)
        tracker.feed([e for e in events if not event_problem(e)])
        self._trackers[row["id"]] = (tracker, offset)
        return tracker.estimate(now)

    def _tracker(self, row: dict, expected, history: dict) -> ProgressTracker:
        """A run's ETA tracker: each cell's history and stage shares (learned from finished runs of it)."""
        cells = json.loads(row["cells"] or "[]")
        sigs = [sig_string(signature(c, row["backend"])) for c in cells]
        plans = cell_plans([c.get("fusion") for c in cells], sigs, history, {s: self._shares.get(s) for s in sigs})
        return ProgressTracker(row["n_cells"], plans, expected, row["started"])

    def refresh(self, all: bool = False, recent: int = RECENT) -> list[RunView]:
        """Every active run, plus the `recent` latest finished ones (all of them with all=True)."""
        self.registry.sync(check=self.sweep)
        return self._refreshed(self.registry.rows(*_selection(all, recent)))

    def refresh_json(self, all: bool = False, recent: int = RECENT) -> list[str]:
        """refresh(), one JSON text per run (`mihd runs ls --json`). An ended run's view is final (its expected
        time the one it was judged by, as a grid's rollup), so its text is made once and kept in the index until
        its row is described again: listing 10,000 ended runs builds and writes out none of them again."""
        self.registry.sync(check=self.sweep)
        where, params = _selection(all, recent)
        kept = self.registry.kept_views(where, params)
        rows = self.registry.rows(f"({where}) AND (id NOT IN (SELECT run_id FROM views) OR status IN ({ACTIVE_SQL}))",
                                  params)
        ended = {r["id"]: r["stamp"] for r in rows if r["status"] not in ACTIVE}
        made = {v.id: json.dumps(v.to_dict(), default=str) for v in self._refreshed(rows)}
        self.registry.keep_views([(made[i], i, stamp) for i, stamp in ended.items()])
        return [text for _, text in sorted({**kept, **made}.items())]

    def _refreshed(self, rows: list[dict]) -> list[RunView]:
        now = time.time()
        active = [r for r in rows if r["status"] in ACTIVE]
        self._refresh_active(active)
        _announce_ends(r for r in active if r["status"] in TERMINAL + ("lost",))
        return self._views(rows, now)

    def view(self, run_id: str) -> RunView:
        """One run by id or unique id prefix (or name), refreshed from its own row and files alone (what one-run
        actions read: show, kill, rm): an ended run described again when its files (a grid's parts' files) changed,
        an active one asked of its backend; no other run is read, however many the workspace holds."""
        row = self.registry.row(self.resolve(run_id))
        run_dir = Path(row["run_dir"])
        if row["status"] not in ACTIVE and (files_stamp(run_dir) != row["stamp"] or fanned(row) and parts_changed(
                self.registry.conn, row["id"], run_dir)):
            self.registry.ingest(run_dir)
            row = self.registry.row(row["id"])
        return self._refreshed([row])[0]

    def backend_of(self, view: RunView) -> tuple[object, dict]:
        """The run's backend and its handle (with the run dir), as kill and poll take them."""
        row = self.registry.row(view.id) or {"run_dir": view.run_dir}
        return get_backend(backend_name(view.backend)), row_handle({**row, "run_dir": view.run_dir})

    def may_still_run(self, view: RunView) -> bool:
        """Active, or corrupt (a bad file) while its backend still sees its processes or cannot say."""
        if view.status in ACTIVE:
            return True
        if view.status != "corrupt":
            return False
        backend, handle = self.backend_of(view)
        try:
            return backend.poll({view.id: handle})[view.id].state != GONE
        except MihdError:
            return True

    def resolve(self, run_id: str) -> str:
        """The id `run_id` names (mihd.runs.ids: an id, a unique prefix of 4+ characters or a name; never a path)."""
        check_ref(run_id)
        self.registry.sync(check=0)  # run dirs made or removed since: the index's other rows are not read again
        return match(run_id, self.registry.ids(), lambda name: [r["id"] for r in self.registry.rows("name=?", (name,))])

    def latest_scores(self, cells: dict[str, list[dict]] | None = None) -> dict[str, dict]:
        """The latest finished scores per cell signature string (for the grid): {sig: {ari, nmi, run_id}};
        `cells`: the registry's cells() when the caller has read them already."""
        out: dict[str, dict] = {}
        for run_id, cells in sorted((self.registry.cells() if cells is None else cells).items()):
            for c in cells:
                out[c["signature"]] = {"run_id": run_id, "ari": c["ari"], "nmi": c["nmi"],
                                       "label": c["label"], "sig": c["sig"]}
        return {k: {**v, "sig": json.loads(v["sig"])} for k, v in out.items()}  # the latest of each, parsed once

    # -- building views ---------------------------------------------------------------------------
    def _views(self, rows: list[dict], now: float) -> list[RunView]:
        if not rows:
            return []
        history = self.registry.durations()
        cells = self.registry.cells([r["id"] for r in rows])
        samples = {r["id"]: smp for r in rows if r["status"] in COMPUTING and (smp := self._measured(r, now))}
        for r in rows:
            if r["status"] not in COMPUTING:
                self._usage.pop(r["id"], None)
        live = {}  # the rest (its first seconds, its supervisor gone): its processes sampled here, where visible
        for r in rows:
            if r["status"] in COMPUTING and r["id"] not in samples:
                root = get_backend(backend_name(r["backend"])).process_root(row_handle(r))
                if root:
                    live[r["id"]] = root
        samples.update(self.monitor.sample(live) if live else {})
        views, expected_by = [], {}
        rollups = Rollups(self.registry.conn, [r for r in rows if r["status"] not in ACTIVE and fanned(r)])
        for r in rows:
            status = r["status"]
            started, ended = r["started"], r["ended"]
            end = ended if ended else (now if status in ACTIVE else None)
            elapsed = (end - started) if (started and end) else None
            queued_s = ((started or now) - r["created"]) if r["created"] and (started or status == "queued") else None
            key = (r["signature"], r["expect"])
            if key not in expected_by:
                cell_sigs = [sig_string(signature(c, r["backend"])) for c in json.loads(r["cells"] or "[]")]
                # the expected time given at launch judges overrun; the ETA paces by the history when there is one
                expected_by[key] = expectations(r["signature"], cell_sigs, history, r["expect"])
            expected, paced = expected_by[key]
            fan = self._grid(r, rollups, history, now) if status != "corrupt" and fanned(r) else None
            prog = self._progress(r, paced, history, now) if status in COMPUTING and not fan else None
            fraction = prog.fraction if prog else (1.0 if status == "done" else None)
            eta_s, conf = (prog.eta_s, prog.confidence) if prog else (None, "unknown")
            if status == "queued":
                eta_s, conf = queued_eta(paced)
            given = expected.source == "given"
            if fan:  # cells side by side: their own progress, the critical path, overrun judged per cell
                expected = expected if given or not fan.expected_s else Expected(fan.expected_s, "cells")
                fraction, eta_s, conf = fan.fraction, fan.eta_s, fan.confidence
            overrun = bool(r["overrun"])
            if status in COMPUTING and not overrun and (fan.overrun if fan and not given else
                                                        is_overrun(elapsed, expected, self.factor)):
                record_overrun(self.registry, r["id"], Path(r["run_dir"]), elapsed, expected, self.factor, now,
                               r["label"])
                overrun = True
            late = self._judge_late(r, elapsed, eta_s, conf, fraction, expected) if status in COMPUTING else None
            late = late or (late_cell(fan.cells) if fan and status in COMPUTING else None)
            scores = [{**{k: c[k] for k in SCORE_KEYS}, "random_init": bool(c["random_init"])}
                      for c in cells.get(r["id"], [])]
            top = headline(scores)
            smp = samples.get(r["id"])
            views.append(RunView(
                id=r["id"], name=r["name"], label=r["label"], backend=r["backend"],
                status=UNANSWERED if r.get("unanswered") else status,
                run_dir=r["run_dir"], signature=r["signature"], n_cells=r["n_cells"] or 0,
                created=r["created"], started=started, ended=ended, queued_s=queued_s, elapsed=elapsed,
                expected_s=expected.seconds, expected_source=expected.source, eta_s=eta_s,
                eta_confidence=conf, progress=fraction, stage=prog.stage if prog else None,
                stage_done=prog.done if prog else None, stage_total=prog.total if prog else None,
                cell_index=prog.cell_index if prog else None, overrun=overrun,
                cell_results=dict(prog.cells) if prog else {}, cell_progress=prog.cell_fraction if prog else None,
                cpu_percent=smp.cpu_percent if smp else None, rss=smp.rss if smp else None,
                gpu_mem=smp.gpu_mem if smp else None, nprocs=smp.nprocs if smp else None,
                ari=top["ari"], nmi=top["nmi"], scores=scores, random_init=top["random_init"],
                exit_code=r["exit_code"], exit_signal=r["exit_signal"], error=failure_reason(r),
                reason=not_answering(r["unanswered"]) if r.get("unanswered") else r.get("reason") or r.get("note"),
                pid=r["pid"], job_id=r["job_id"], host=r["host"],
                kill_signal=r["kill_signal"], killed_at=r["killed_at"], killed_by=r["killed_by"],
                cells=fan.cells if fan else [], late=late))
        rollups.save()
        return views

    def _measured(self, row: dict, now: float) -> TreeSample | None:
        """What the run measured of itself (usage.json: its supervisor samples its whole tree every few seconds,
        PSS where readable), while fresh: a local run's as a Slurm job's, with no scan of /proc here; the file is
        read again only when it changed."""
        path = f"{row['run_dir']}/{USAGE}"
        try:
            stamp = os.stat(path).st_mtime_ns
        except OSError:
            return None
        kept = self._usage.get(row["id"])
        if kept is None or kept[0] != stamp:
            kept = self._usage[row["id"]] = (stamp, read_usage(Path(row["run_dir"])))
        usage = kept[1]
        if not fresh(usage, now) or usage["cpu_percent"] is None:
            return None
        return TreeSample(cpu_percent=usage["cpu_percent"], rss=usage["rss"], nprocs=usage["nprocs"],
                          gpu_mem=usage["gpu_mem"])

    def _judge_late(self, row: dict, elapsed, eta_s, conf: str, fraction, expected: Expected) -> str | None:
        """The run's late flag (late.py) as of now; the first watcher or supervisor to see it appends the
        `late` event and tells the hooks (alerts.py)."""
        was = self._late.get(row["id"])
        late = late_reason(elapsed, eta_s, conf, fraction, expected, self.factor, was, row.get("time_limit"))
        self._late[row["id"]] = late
        tell(Path(row["run_dir"]), late, was, elapsed, projection(elapsed, eta_s, conf), expected, fraction, False,
             self.factor, row["label"])
        return late

    def _grid(self, row: dict, rollups: Rollups, history: dict, now: float):
        """A fanned-out grid's cells and progress: an ended grid's from the index (made once after it changed),
        an active one's from its parts, those whose files did not change answered from the index."""
        def progress():
            return grid_progress(row, self._fan_states.get(row["id"], {}), history, self.factor, now)

        if row["status"] not in ACTIVE:
            return rollups.get(row, progress)
        with reusing(self.registry.conn):
            return progress()


def _selection(all: bool, recent: int) -> tuple[str, tuple]:
    """The registry rows a listing shows: all, or the active ones and the `recent` latest ended ones."""
    if all:
        return "1", ()
    return (f"status IN ({ACTIVE_SQL}) OR id IN "
            f"(SELECT id FROM runs WHERE status NOT IN ({ACTIVE_SQL}) ORDER BY id DESC LIMIT ?)", (recent,))


def list_runs(root=None, all: bool = False, factor: float | None = None, gpu: Gpu | None = None) -> list[RunView]:
    """One-shot listing (`mihd runs ls`); a long-lived caller should keep a RunWatcher instead."""
    watcher = RunWatcher(root, factor=factor, gpu=gpu)
    try:
        return watcher.refresh(all=all)
    finally:
        watcher.close()
