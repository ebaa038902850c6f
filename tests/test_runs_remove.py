"""`mihd runs rm`: finished runs leave the disk and every list; an active run is never touched."""

from __future__ import annotations

import json

from conftest import run_mihd
from runs_helpers import CELL, alive, launch_fake, session_pids, view, wait_for

from mihd.runs.kill import kill_run
from mihd.runs.registry import Registry


def _ids(root) -> set[str]:
    return {r["id"] for r in json.loads(run_mihd("runs", "ls", "--all", "--json", root=root).stdout)}


def test_rm_removes_finished_runs_and_refuses_a_running_one(tmp_path):
    done = launch_fake(tmp_path, "--seconds", 0.2, "--ari", 0.42, name="quick")
    failed = launch_fake(tmp_path, "--seconds", 0.2, "--exit", 3)
    live = launch_fake(tmp_path, "--seconds", 60)
    wait_for(lambda: view(tmp_path, done).status == "done" and view(tmp_path, failed).status == "failed", 30)
    wait_for(lambda: view(tmp_path, live).status == "running", 30)
    live_dir = tmp_path / "runs" / live
    pids = wait_for(lambda: session_pids(live_dir))

    proc = run_mihd("runs", "rm", "quick", failed, live, root=tmp_path)  # a name, an id, a running one
    assert proc.returncode == 2, proc
    assert proc.stdout.splitlines() == [f"removed {done}  quick ({CELL.label})  (done)", f"removed {failed}  {CELL.label}  (failed)"]
    assert proc.stderr.strip() == f"mihd: error: run {live}: running; stop it first (mihd runs kill {live})"
    assert not (tmp_path / "runs" / done).exists() and not (tmp_path / "runs" / failed).exists()
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [live]  # nothing hidden left behind either
    assert live_dir.is_dir() and alive(pids) and _ids(tmp_path) == {live}
    reg = Registry(tmp_path)
    try:
        assert set(reg.cells()) <= {live} and reg.row(done) is None
    finally:
        reg.close()

    kill_run(tmp_path, live, grace=2.0)
    proc = run_mihd("runs", "rm", live, root=tmp_path)
    assert proc.returncode == 0 and proc.stdout == f"removed {live}  {CELL.label}  (killed)\n", proc
    assert _ids(tmp_path) == set() and not live_dir.exists()


def test_rm_a_corrupt_run_whose_processes_are_gone(tmp_path):
    run = launch_fake(tmp_path, "--seconds", 0.2)
    wait_for(lambda: view(tmp_path, run).status == "done", 30)
    (tmp_path / "runs" / run / "exit.json").write_text("[1, 2")  # a bad file: the run shows as corrupt
    assert run_mihd("runs", "reindex", root=tmp_path).returncode == 0
    assert view(tmp_path, run).status == "corrupt"
    proc = run_mihd("runs", "rm", run, root=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith(f"removed {run}  ") and "(corrupt)" in proc.stdout, proc
    assert _ids(tmp_path) == set()
