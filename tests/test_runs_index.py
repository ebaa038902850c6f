"""The host index follows the run dirs without rereading them: a finished run's file damaged (or repaired)
later is seen at the next listing, a refresh after nothing changed describes no run again, and a
long-lived watcher's bounded sweep still reaches every ended run."""

import json
import os
import shutil
import time

import pytest

from mihd.cli import main
from mihd.rundir import read_result, write_result
from mihd.runs.kill import kill_run
from mihd.runs.registry import Registry
from mihd.runs.status import RunWatcher

from runs_helpers import launch_fake, view, wait_for


@pytest.fixture(autouse=True)
def index_dir(tmp_path_factory, monkeypatch):
    """This test's own host-local index folder (subprocesses inherit it)."""
    monkeypatch.setenv("MIHD_INDEX_DIR", str(tmp_path_factory.mktemp("host-index")))


def finished_runs(root, n: int) -> list[str]:
    ids = [launch_fake(root, "--seconds", 0.1) for _ in range(n)]
    wait_for(lambda: all(view(root, i).status == "done" for i in ids), timeout=60)
    return ids


@pytest.mark.parametrize("name", ["result.json", "exit.json"])
def test_a_finished_runs_file_damaged_later_reads_corrupt_at_the_next_ls_with_no_reindex(tmp_path, capsys, name):
    run_id, = finished_runs(tmp_path, 1)
    assert main(["runs", "ls", "--all", "--root", str(tmp_path)]) == 0
    assert "done" in capsys.readouterr().out
    path = tmp_path / "runs" / run_id / name
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2])  # damaged in place: the run dir itself is untouched
    assert main(["runs", "ls", "--all", "--root", str(tmp_path)]) == 0
    assert f"{run_id}: corrupt: {name}: not JSON" in capsys.readouterr().out
    path.write_bytes(original)
    assert main(["runs", "ls", "--all", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "corrupt" not in out and "done" in out


def test_a_sync_after_nothing_changed_describes_no_run_and_one_changed_run_alone(tmp_path):
    ids = finished_runs(tmp_path, 3)
    reg = Registry(tmp_path)
    try:
        reg.sync()
        assert reg.sync() == 0
        (tmp_path / "runs" / ids[1] / "result.json").write_text("{}")
        assert reg.sync() == 1 and reg.sync() == 0
        assert reg.row(ids[1])["status"] == "done" and reg.cells([ids[1]]) == {}  # its scores went with its file
        assert [len(reg.cells([i])[i]) for i in (ids[0], ids[2])] == [1, 1]
    finally:
        reg.close()


def test_a_watcher_with_a_bounded_sweep_sees_a_damaged_run_within_a_full_turn(tmp_path):
    ids = finished_runs(tmp_path, 4)
    watcher = RunWatcher(tmp_path, sweep=1)  # what a dashboard does: a few stats a refresh
    try:
        watcher.refresh()
        (tmp_path / "runs" / ids[2] / "exit.json").write_text("[")
        seen = [next(v.status for v in watcher.refresh() if v.id == ids[2]) for _ in range(len(ids))]
        assert "corrupt" in seen and seen[-1] == "corrupt"
    finally:
        watcher.close()


def test_a_watcher_that_skips_an_unchanged_runs_folder_still_sees_runs_added_and_removed(tmp_path):
    first, second = finished_runs(tmp_path, 2)
    runs = tmp_path / "runs"
    watcher = RunWatcher(tmp_path, sweep=1)
    try:
        os.utime(runs, (time.time() - 60, time.time() - 60))  # an old listing: the next refreshes skip it
        assert {v.id for v in watcher.refresh()} == {first, second}
        assert {v.id for v in watcher.refresh()} == {first, second}
        third = launch_fake(tmp_path, "--seconds", 60)
        assert third in {v.id for v in watcher.refresh()}
        kill_run(tmp_path, third, "KILL", grace=1)
        shutil.rmtree(runs / first)
        os.utime(runs, (time.time() - 60, time.time() - 30))
        assert {v.id for v in watcher.refresh()} == {second, third}
    finally:
        watcher.close()


def test_results_follow_a_result_json_rewritten_or_damaged_after_its_run(tmp_path, capsys):
    run_id = launch_fake(tmp_path, "--seconds", 0.1, "--ari", 0.3)
    wait_for(lambda: view(tmp_path, run_id).status == "done")

    def aris() -> list[float]:
        assert main(["results", "--format", "json", "--root", str(tmp_path)]) == 0
        return [row["ari_mean"] for row in json.loads(capsys.readouterr().out)]

    assert aris() == [0.3]
    run_dir = tmp_path / "runs" / run_id
    result = read_result(run_dir)
    write_result(run_dir, {**result, "cells": [{**result["cells"][0], "ari": 0.9}]})  # rescored in place
    assert aris() == [0.9]
    (run_dir / "result.json").write_text("{")
    assert aris() == []  # a damaged result scores nothing (its run reads corrupt)
