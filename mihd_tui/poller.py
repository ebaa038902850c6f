"""The dashboard's one polling thread: runs, grid, cache inventory and GPUs, gathered into a Snapshot.

All SQLite access of the dashboard happens on this thread (sqlite3 connections are bound to the thread
that made them), at the app's interval, or at once when woken (after a launch, a kill, a new grid spec).
Costly parts are redone only when their input changed: the cache inventory when the cache's files
changed, the scores and the duration history when a run ended; ended runs are checked for changed files a
bounded slice per refresh (SWEEP), so a refresh costs what is active and what changed, not what the
workspace holds. No Textual imports here.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from mihd.cache import inventory_stamp, read_entries
from mihd.grid import Grid, GridSpec, gene_choices, slice_choices
from mihd.grid_state import GridState
from mihd.inventory import InFlight, InventoryRow, in_flight, inventory
from mihd.runs.gpu import Gpu, GpuDevice, default_gpu
from mihd.runs.status import RunView, RunWatcher
from mihd.workspace import run_path

SWEEP = 50  # ended runs (and grid parts) checked for changed files per refresh: 10,000 runs in 200 refreshes (10 min)


@dataclass
class Snapshot:
    t: float
    spec: GridSpec
    views: list[RunView]
    grid: Grid
    slices: list[str]
    genes: list[str]
    gpu: list[GpuDevice]
    gpu_reason: str
    entries: list[dict]
    inventory: list[InventoryRow]
    history: dict[str, list[float]]
    extra: dict[str, RunView] = field(default_factory=dict)  # runs asked for by id (older than the list)
    computing: list[InFlight] = field(default_factory=list)  # cache entries being computed now
    error: str | None = None


class Poller:
    def __init__(self, root: Path, factor: float | None = None, gpu: Gpu | None = None):
        self.root = Path(root)
        self.gpu = gpu or default_gpu()
        self.factor = factor
        self.wake = threading.Event()
        self.paused = threading.Event()
        self._watcher: RunWatcher | None = None
        self._grid = GridState(root=self.root)
        self._cache_stamp = None
        self._entries: list[dict] = []
        self._ended: frozenset = frozenset()
        self._scores: dict = {}
        self._all_scores: list[dict] = []
        self._history: dict = {}
        self._wanted: set[str] = set()
        self._extra: dict[str, RunView] = {}
        self._lock = threading.Lock()

    def want(self, run_id: str) -> None:
        """Include run `run_id` in the next snapshots even when it is not among the recent runs."""
        with self._lock:
            self._wanted.add(run_id)
        self.wake.set()

    @property
    def watcher(self) -> RunWatcher:
        if self._watcher is None:
            self._watcher = RunWatcher(self.root, factor=self.factor, gpu=self.gpu, sweep=SWEEP)
        return self._watcher

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()

    def _cache_changed(self) -> bool:
        stamp = inventory_stamp(self.root)
        changed = stamp != self._cache_stamp
        self._cache_stamp = stamp
        return changed

    def snapshot(self, spec: GridSpec) -> Snapshot:
        now = time.time()
        watcher = self.watcher
        views = watcher.refresh()
        ended = frozenset((v.id, v.status) for v in views if not v.active)
        if ended != self._ended or not self._scores:
            cells = watcher.registry.cells()
            self._scores = watcher.latest_scores(cells)
            sigs = {s: json.loads(s) for s in {c["sig"] for run in cells.values() for c in run}}  # few distinct
            self._all_scores = [{"run_id": run_id, "ari": c["ari"], "sig": sigs[c["sig"]]}
                                for run_id, run in cells.items() for c in run]
            self._history = watcher.registry.durations()
            self._ended = ended
        if self._cache_changed():
            self._entries = read_entries(self.root)
        with self._lock:
            wanted = self._wanted - {v.id for v in views} - {i for i, v in self._extra.items() if not v.active}
        for run_id in wanted:
            try:
                self._extra[run_id] = watcher.view(run_id)
            except Exception:  # a run dir deleted meanwhile: nothing to show
                with self._lock:
                    self._wanted.discard(run_id)
        run_dirs = {s["run_id"]: str(run_path(self.root, s["run_id"])) for s in self._scores.values()}
        grid = self._grid.compute(spec, views, self._scores, self._entries, run_dirs, self._all_scores)
        devices = self.gpu.devices()
        return Snapshot(
            t=now, spec=spec, views=views, grid=grid, slices=slice_choices(self.root, self._entries),
            genes=gene_choices(self._entries, spec.slice), gpu=devices, gpu_reason=self.gpu.reason,
            entries=self._entries, inventory=inventory(self._entries, now), history=self._history,
            extra=dict(self._extra), computing=in_flight(self.root, now))
