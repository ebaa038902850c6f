"""Run control with real processes: detached runs, progress, done with scores, lost, kill of whole trees,
refusals, overrun recorded once, a rebuilt registry, two launchers at once."""

import json
import multiprocessing
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from mihd.errors import MihdError
from mihd.jsonio import write_json_atomic
from mihd.rundir import read_events
from mihd.runs.backends import get_backend
from mihd.identity import process_identity
from mihd.runs.kill import kill_run
from mihd.runs.registry import Registry
from mihd.runs.status import RunWatcher, list_runs

from runs_helpers import CELL, alive, drop_index, launch_fake, session_pids, view, wait_for

REPO = Path(__file__).resolve().parents[1]


def test_run_survives_its_launcher_then_shows_progress_and_scores(tmp_path):
    code = ("import sys; sys.path[:0] = [{tests!r}]; from runs_helpers import launch_fake; "
            "print(launch_fake({root!r}, '--seconds', 3, '--ari', 0.61))")
    out = subprocess.run([sys.executable, "-c", code.format(tests=str(REPO / "tests"), root=str(tmp_path))],
                         capture_output=True, text=True, timeout=30, cwd=REPO, check=True)
    run_id = out.stdout.strip()  # the launcher process has exited here
    # no history: the ETA is unknown until the stage has reported a few steps, then measured from them
    first = wait_for(lambda: (v := view(tmp_path, run_id)).status == "running" and (v.progress or 0) > 0 and v)
    assert first.stage == "fuse" and first.rss > 0
    running = wait_for(lambda: (v := view(tmp_path, run_id)).status == "running" and v.eta_s is not None and v)
    assert running.eta_s > 0 and running.eta_confidence != "unknown"
    done = wait_for(lambda: (v := view(tmp_path, run_id)).status == "done" and v)
    assert done.ari == pytest.approx(0.61) and done.scores[0]["nmi"] == pytest.approx(0.305)
    assert done.progress == 1.0 and done.exit_code == 0 and done.elapsed >= 3
    assert "cell 0 step 10/10" in (Path(done.run_dir) / "run.log").read_text()


def test_failed_run_and_expected_duration_from_history(tmp_path):
    ids = [launch_fake(tmp_path, "--seconds", 0.3) for _ in range(2)]
    bad = launch_fake(tmp_path, "--seconds", 0.1, "--exit", 3)
    wait_for(lambda: all(view(tmp_path, i).status in ("done", "failed") for i in ids + [bad]))
    assert view(tmp_path, bad).status == "failed" and view(tmp_path, bad).exit_code == 3
    fresh = launch_fake(tmp_path, "--seconds", 5)
    v = view(tmp_path, fresh)
    assert v.expected_source == "history" and 0.3 <= v.expected_s < 3
    assert v.eta_confidence in ("low", "medium")  # 2 runs are a hint: never high
    kill_run(tmp_path, fresh, grace=1)


def test_a_new_grid_is_expected_from_its_cells_timed_inside_an_earlier_grid(tmp_path):
    cells = [replace(CELL, fusion=f) for f in ("concat", "mean", "attention")]
    first = launch_fake(tmp_path, "--seconds", 0.6, "--cells", 3, cells=cells)  # 0.2 s a cell
    wait_for(lambda: view(tmp_path, first).status == "done")
    fresh = launch_fake(tmp_path, "--seconds", 30, "--cells", 2, cells=cells[:2])
    v = view(tmp_path, fresh)
    assert (v.expected_source, v.expected_s) == ("cells", pytest.approx(0.4))
    kill_run(tmp_path, fresh, grace=1)


def test_kill_leaves_no_process_of_the_tree_twenty_times(tmp_path):
    runs = [launch_fake(tmp_path, "--seconds", 300, "--children", 3) for _ in range(20)]
    watcher = RunWatcher(tmp_path)
    dirs = {v.id: Path(v.run_dir) for v in watcher.refresh(all=True)}
    # each run: supervisor's child, 3 children, 3 grandchildren (one outside the group, one TERM-proof)
    trees = {r: wait_for(lambda r=r: len(p := session_pids(dirs[r])) >= 7 and p) for r in runs}
    for r in runs:
        out = kill_run(tmp_path, r, signal="TERM", grace=0.5, watcher=watcher)
        assert out["status"] == "killed" and out["escalated"]
    survivors = alive(set().union(*trees.values()))
    print(f"\nkills: {len(runs)}, processes before: {sum(map(len, trees.values()))}, survivors: {len(survivors)}")
    assert survivors == []
    v = view(tmp_path, runs[0])
    assert (v.status, v.kill_signal, v.exit_signal) == ("killed", "TERM", "TERM") and v.killed_by
    kinds = [e["kind"] for e in read_events(Path(v.run_dir))[0]]
    assert kinds.count("kill") == 1
    watcher.close()


def test_kill_refuses_reused_pid_and_other_users_process(tmp_path):
    run_id = launch_fake(tmp_path, "--seconds", 60)
    run_dir = Path(view(tmp_path, run_id).run_dir)
    ident = wait_for(lambda: (i := json.loads((run_dir / "proc.json").read_text())).get("child_pid") and i)
    forged = {**ident, "create_time": ident["create_time"] - 1000,  # as if both pids now were someone else's
              "child_create_time": ident["child_create_time"] - 1000}
    write_json_atomic(run_dir / "proc.json", forged)
    with pytest.raises(MihdError, match="pid reused"):  # the backend's own check, at the seam
        get_backend("local").kill({"run_dir": str(run_dir)}, "TERM", 1)
    with pytest.raises(MihdError, match="not running"):  # the watcher already sees it as gone
        kill_run(tmp_path, run_id)
    assert psutil.pid_exists(ident["pid"]) and psutil.pid_exists(ident["child_pid"])
    os.killpg(ident["child_pid"], 9)

def test_kill_refuses_another_users_process(tmp_path):
    other = subprocess.Popen(["sleep", "30"], user="nobody")
    try:
        odir = tmp_path / "runs" / "20000101-000000-000-000000"
        odir.mkdir(parents=True)
        ct = psutil.Process(other.pid).create_time()
        write_json_atomic(odir / "spec.json", {"id": odir.name, "backend": "local", "cells": [], "created": ct})
        write_json_atomic(odir / "proc.json", {**process_identity(other.pid), "child_pid": other.pid + 100000,
                                               "started": ct})
        with pytest.raises(MihdError, match="another user"):
            kill_run(tmp_path, odir.name)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_vanished_run_is_lost_not_running(tmp_path):
    run_id = launch_fake(tmp_path, "--seconds", 60)
    run_dir = Path(view(tmp_path, run_id).run_dir)
    ident = wait_for(lambda: json.loads((run_dir / "proc.json").read_text()).get("child_pid")
                     and json.loads((run_dir / "proc.json").read_text()))
    os.killpg(ident["child_pid"], 9)
    os.kill(ident["pid"], 9)  # the supervisor dies too: nobody writes exit.json
    # SIGKILL lands when the kernel gets to it: on a loaded machine the command outlived this line ("orphaned")
    wait_for(lambda: not alive([ident["child_pid"], ident["pid"]]))
    v = view(tmp_path, run_id)
    assert v.status == "lost" and not (run_dir / "exit.json").exists()
    Registry(tmp_path).reindex()
    assert view(tmp_path, run_id).status == "lost"


def test_overrun_flagged_and_recorded_once(tmp_path):
    run_id = launch_fake(tmp_path, "--seconds", 60, expect=0.5)
    watchers = [RunWatcher(tmp_path), RunWatcher(tmp_path)]
    wait_for(lambda: all(next(v for v in w.refresh() if v.id == run_id).overrun for w in watchers))
    for w in watchers:
        w.refresh()
    events = read_events(Path(view(tmp_path, run_id).run_dir))[0]
    assert [e["kind"] for e in events].count("overrun") == 1
    assert view(tmp_path, run_id).expected_source == "given"
    kill_run(tmp_path, run_id, grace=1)
    for w in watchers:
        w.close()


def test_deleted_registry_is_rebuilt_with_nothing_lost(tmp_path):
    ids = [launch_fake(tmp_path, "--seconds", 0.2, "--ari", 0.1 * (i + 1)) for i in range(3)]
    live = launch_fake(tmp_path, "--seconds", 60)
    wait_for(lambda: all(view(tmp_path, i).status == "done" for i in ids))
    before = {v.id: (v.status, v.ari, v.label) for v in list_runs(tmp_path, all=True)}
    drop_index(tmp_path)
    after = {v.id: (v.status, v.ari, v.label) for v in list_runs(tmp_path, all=True)}
    assert after == before and after[live][0] == "running"
    kill_run(tmp_path, live, grace=1)


def _launch_many(root, n):
    sys.path[:0] = [str(REPO / "tests")]
    from runs_helpers import fake_plan, launch as _launch

    return [_launch(root, fake_plan(), raw_argv=[sys.executable, "-c", "pass"], cached=[True]) for _ in range(n)]


def test_two_launchers_at_once_lose_no_record(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.starmap(_launch_many, [(str(tmp_path), 15), (str(tmp_path), 15)])
    ids = {i for r in results for i in r}
    assert len(ids) == 30
    assert Registry(tmp_path).ids() == ids


def test_a_watcher_started_mid_run_shows_the_eta_of_one_that_watched_from_the_start(tmp_path):
    """A dashboard quit and started again reads the run's whole events at once: its ETA is the one a dashboard that
    never left shows (not a wild first figure), with a history and without one."""
    for _ in range(3):  # a history of three 4-second runs
        done = launch_fake(tmp_path, "--seconds", 4, "--cells", 2)
        wait_for(lambda: view(tmp_path, done).status == "done", timeout=30)
    fresh_signature = [replace(CELL, fusion="mean")]
    for cells, label in ((None, "with history"), (fresh_signature, "no history")):
        kw = {"cells": fresh_signature} if cells else {}
        run_id = launch_fake(tmp_path, "--seconds", 6, "--cells", 1 if cells else 2, **kw)
        along = RunWatcher(tmp_path)
        try:
            compared = []
            while (v := next(x for x in along.refresh(all=True) if x.id == run_id)).status in ("queued", "running"):
                if v.eta_s is not None and v.eta_s > 0:
                    late = RunWatcher(tmp_path)  # reattached: everything it knows is read now
                    try:
                        again = next(x for x in late.refresh(all=True) if x.id == run_id)
                    finally:
                        late.close()
                    now = next(x for x in along.refresh(all=True) if x.id == run_id)
                    if again.status == now.status == "running" and now.eta_s is not None:
                        compared.append((again.eta_s, now.eta_s, again.eta_confidence, now.eta_confidence))
                time.sleep(0.3)
        finally:
            along.close()
        assert len(compared) >= 3, (label, compared)
        for late_eta, along_eta, late_conf, along_conf in compared:
            assert late_eta is not None and abs(late_eta - along_eta) <= 0.5, (label, compared)
            assert late_conf == along_conf, (label, compared)
