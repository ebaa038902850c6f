"""Run control decisions over synthetic inputs: durations, signatures, ETA, progress, overrun, GPU seam."""

import psutil
import pytest

from mihd.errors import MihdError
from mihd.plan import Cell
from mihd.present import fmt_duration
from mihd.runs.cells import run_signature, sig_string, signature, stored, stored_label
from mihd.runs.durations import parse_duration
from mihd.runs.eta import CellPlan, Expected, ProgressTracker, expected_duration
from mihd.runs.gpu import Gpu
from mihd.runs.launch import new_run_id
from mihd.runs.monitor import Monitor
from mihd.runs.overrun import is_overrun, overrun_factor
from runs_helpers import fake_nvml


def test_durations_round_trip_and_errors():
    assert parse_duration("90s") == 90 and parse_duration("5m") == 300
    assert parse_duration("1h30m") == 5400 and parse_duration("45") == 45
    for bad in ("", "5x", "m5", "0s", "1h-2m"):
        with pytest.raises(MihdError, match="--expect"):
            parse_duration(bad)
    assert fmt_duration(42) == "42s" and fmt_duration(185) == "3m05s" and fmt_duration(3720) == "1h02m"
    assert fmt_duration(None) == "-"


def test_run_ids_sort_by_time_and_are_unique():
    ids = [new_run_id(1_700_000_000 + i * 0.001) for i in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert len({new_run_id(1_700_000_000.5) for _ in range(200)}) == 200


def test_signature_includes_cached_and_backend_and_matches_result_cells():
    cell = Cell("demo", "pca", "uni2", "concat", "gmm")
    result_cell = {"signature": {"slice": "demo", "gene": "pca", "vision": "uni2", "variant": "standard",
                                 "fusion": "concat", "cluster": "gmm"}, "cache": {"gene": "hit", "vision": "hit"}}
    assert sig_string(signature(cell, "local", True)) == sig_string(signature(result_cell, "local"))
    assert sig_string(signature(stored(cell, True), "local")) == sig_string(signature(cell, "local", True))
    missed = {**result_cell, "cache": {"gene": "hit", "vision": "miss"}}
    assert signature(missed)["cached"] is False
    assert run_signature([cell], "local", [True]) != run_signature([cell], "slurm", [True])
    assert run_signature([cell], "local", [True]) != run_signature([cell], "local", [False])
    mean = Cell("demo", "pca", "uni2", "mean", "gmm")
    assert run_signature([cell, mean], "local", [True, True]).startswith("grid:")
    assert stored_label([stored(cell, True)]) == "demo pca+uni2 concat gmm" == cell.label
    assert stored_label([stored(cell, True), stored(mean, True)]) == "demo grid 2 cells"
    assert stored_label([{"slice": "demo"}], "named") == "named" and stored_label([]) == "-"


def test_expected_duration_from_history_given_and_cells():
    hist = {"a": [100, 110, 90, 105, 95], "b": [50], "c": [10, 100, 30]}
    e = expected_duration("a", hist)
    assert (e.seconds, e.source, e.n, e.confidence, e.tentative) == (100, "history", 5, "high", False)
    assert expected_duration("b", hist).confidence == "low" and expected_duration("b", hist).tentative  # one run
    assert expected_duration("c", hist).confidence == "low"  # spread history: trusted less
    assert expected_duration("a", hist, expect=30).seconds == 30
    assert expected_duration("a", hist, expect=30).source == "given"
    assert expected_duration("zzz", hist).seconds is None and expected_duration("zzz", hist).confidence == "unknown"
    grid = expected_duration("grid:x", hist, cell_signatures=["a", "b"])
    assert (grid.seconds, grid.source, grid.n, grid.tentative) == (150, "cells", 1, True)
    hist["cell:d"] = [40, 44]  # d only ever ran inside grids
    assert expected_duration("grid:y", hist, cell_signatures=["a", "d"]).seconds == 142
    assert expected_duration("d", hist).seconds is None  # a lone run of d is not judged by in-grid times


def test_progress_from_events():
    t = ProgressTracker(n_cells=2)
    assert t.feed([{"t": 0.0, "kind": "start", "cells": 2}]).fraction == 0.0
    p = t.feed([{"t": 1.0, "kind": "cell", "index": 0, "of": 2, "cell": {"fusion": "concat"}},
                {"t": 2.0, "kind": "stage", "stage": "load", "done": 1, "total": 1},
                {"t": 3.0, "kind": "stage", "stage": "fuse", "done": 1, "total": 1}])
    assert p.cell_fraction == pytest.approx(0.30) and p.stage == "fuse"  # load 5 % + fuse 25 % of a plain cell
    p = t.feed([{"t": 4.0, "kind": "metric", "index": 0, "ari": 0.5},
                {"t": 4.0, "kind": "cell", "index": 1, "of": 2, "cell": {"fusion": "concat"}},
                {"t": 4.5, "kind": "stage", "stage": "load", "done": 1, "total": 1}])
    assert p.fraction == pytest.approx((1 + 0.05) / 2) and p.cell_index == 1
    assert p.cells == {0: {"ari": 0.5, "nmi": None, "random_init": None, "error": None}}  # the grid shows it now
    assert t.feed([{"t": 6.0, "kind": "end", "status": "ok"}]).fraction == 1.0


def test_progress_weighs_cells_by_their_expected_seconds():
    """A quick first cell (10 s) and a slow second one (90 s), half through the second: 55 % done, not 75 %."""
    plans = [CellPlan(10.0, 3, {"fuse": 1.0}), CellPlan(90.0, 3, {"fuse": 1.0})]
    t = ProgressTracker(2, plans, Expected(None), started=0.0)
    p = t.feed([{"t": 0.0, "kind": "cell", "index": 0, "of": 2}, {"t": 10.0, "kind": "metric", "index": 0},
                {"t": 10.0, "kind": "cell", "index": 1, "of": 2},
                {"t": 55.0, "kind": "stage", "stage": "fuse", "done": 50, "total": 100}])
    assert p.fraction == pytest.approx((10 + 0.5 * 90) / 100)


def test_overrun_rule_and_factor():
    hist = Expected(100, "history", 3, "medium")
    assert not is_overrun(140, hist) and is_overrun(151, hist)
    assert is_overrun(121, hist, factor=1.2)
    given = Expected(60, "given", 0, "medium")
    assert not is_overrun(59, given) and is_overrun(61, given)  # what the researcher said is authoritative
    assert not is_overrun(10_000, Expected(None))
    assert overrun_factor("2") == 2.0
    with pytest.raises(MihdError):
        overrun_factor("-1")


def test_gpu_seam_devices_and_no_gpu():
    import os

    gpu = Gpu(nvml=fake_nvml(pids_mem={os.getpid(): 1 << 30, 999_999: 5}))
    (dev,) = gpu.devices()
    assert (dev.name, dev.util, dev.mem_total) == ("Fake H100", 57.0, 80 << 30)
    sample = Monitor(gpu).sample({"me": (os.getpid(), None)})["me"]
    assert sample.gpu_mem == 1 << 30 and sample.rss > 0 and sample.nprocs >= 1
    none = Gpu(nvml=fake_nvml(fail_init=True))
    assert none.probe() is False and none.devices() == [] and "no GPU" in none.reason
    assert Monitor(none).sample({"me": (os.getpid(), None)})["me"].gpu_mem is None


def test_a_tree_whose_children_come_and_go_reads_each_cpu_second_once_and_never_above_every_core():
    """A parent that runs short CPU-bound children in pairs (each burns 0.4 s of CPU, then is reaped): the
    sampled CPU % adds up to the CPU the children used, not twice that (a reaped child's time also lands
    in its parent's children_* times), and no sample reads above every core busy."""
    import subprocess
    import sys
    import time

    from mihd.runs.monitor import CPU_CAP

    burn = "import time\nwhile time.process_time() < 0.4: pass"
    parent = ("import subprocess, sys\nfor _ in range(4):\n"
              f"    ps = [subprocess.Popen([sys.executable, '-c', {burn!r}]) for _ in range(2)]\n"
              "    [p.wait() for p in ps]\n")
    proc = subprocess.Popen([sys.executable, "-c", parent])
    monitor, samples = Monitor(None), []
    try:
        ctime = psutil.Process(proc.pid).create_time()
        last = time.time()
        monitor.sample({"t": (proc.pid, ctime)})
        while proc.poll() is None:
            time.sleep(0.3)
            got = monitor.sample({"t": (proc.pid, ctime)}).get("t")
            now = time.time()
            if got is not None:
                samples.append((got.cpu_percent, now - last))
            last = now
    finally:
        proc.wait()
    used = sum(pct / 100 * gap for pct, gap in samples)
    assert max(pct for pct, _ in samples) <= CPU_CAP
    assert used < 1.5 * 8 * 0.4 + 1.0, (used, samples)  # 8 children x 0.4 s, plus the interpreters' start-up
