"""Slurm time limits against the real single-node Slurm: a job whose projection passes its 1-minute limit is
flagged before Slurm ends it (by the job's own supervisor and by a watcher), the end reads `killed by Slurm:
time limit 0:01:00 reached`, an outside `scancel` reads `cancelled outside mihd (scancel)`, and a running
job reads `unknown (Slurm not answering)` while slurmctld is down."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mihd.plan import Cell
from mihd.runs.grid_watch import GRID_EVERY
from mihd.runs.launch import launch
from mihd.runs.status import RunWatcher
from runs_helpers import FAKE, fake_plan, session_pids, view, wait_for
from test_slurm_real import START, launch_fake, slurm, ws  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(400)]
ENDING = "ending: Slurm is stopping the job"  # what a job reads while Slurm completes it
STAIG = Cell("demo", "pca", "texture", "staig_fusion", "gmm", "standard")


def launch_training(root, seconds: int, time_limit: str | None = None) -> str:
    """A training cell of 2 steps a second for `seconds` s, as a Slurm job."""
    options = {"time": time_limit} if time_limit else {}
    return launch(root, fake_plan((STAIG,), backend="slurm", backend_options=options),
                  raw_argv=[sys.executable, FAKE, "{run_dir}", "--seconds", str(seconds), "--stage", "train",
                            "--steps", str(2 * seconds)], cached=[True])


def events(root: Path, run_id: str, kind: str) -> list[dict]:
    path = root / "runs" / run_id / "events.jsonl"
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["kind"] == kind] if path.exists() else []


def test_a_job_that_will_hit_its_time_limit_is_flagged_then_said_killed_by_slurm(ws):
    run_id = launch_training(ws, 200, "1")
    late = wait_for(lambda: events(ws, run_id, "late"), timeout=55)[0]  # its own supervisor, in the job
    assert late["reason"].startswith("will hit its time limit 0:01:00 (projected 0:03:"), late
    watcher = RunWatcher(ws)
    try:
        seen = wait_for(lambda: watcher.view(run_id).late, timeout=20, every=1.0)
        assert seen.startswith("will hit its time limit 0:01:00 (projected 0:03:")
    finally:
        watcher.close()
    ended = wait_for(lambda: view(ws, run_id).status in ("failed", "killed") and view(ws, run_id), timeout=120, every=1)
    assert ended.status == "failed" and ended.error.startswith("killed by Slurm: time limit 0:01:00 reached"), ended
    assert len(events(ws, run_id, "late")) == 1


def test_an_outside_scancel_says_so(ws):
    run_id = launch_training(ws, 200)
    job = json.loads((ws / "runs" / run_id / "handle.json").read_text())["job_id"]
    wait_for(lambda: events(ws, run_id, "stage"), timeout=60)  # its command runs under its supervisor
    subprocess.run(["scancel", str(job)], check=True)
    # asked once a second, as a watcher does (it reads a bare `killed`, or `ending: ...` while Slurm completes the
    # job, until Slurm has said CANCELLED)
    ended = wait_for(lambda: (v := view(ws, run_id)).status not in ("running", "queued") and v.reason
                     not in (None, ENDING) and v, timeout=60, every=1.0)
    assert ended.status == "killed" and ended.reason == "cancelled outside mihd (scancel)", ended


def test_a_job_slurm_is_ending_after_an_outside_scancel_says_so_not_completing(ws):
    run_id = launch_fake(ws, "--seconds", 300, "--children", 3)  # a child ignores TERM: Slurm ends it for seconds
    wait_for(lambda: view(ws, run_id).status == "running", timeout=60)
    wait_for(lambda: len(session_pids(ws / "runs" / run_id)) >= 7)  # the run, its children and grandchildren
    job = json.loads((ws / "runs" / run_id / "handle.json").read_text())["job_id"]
    subprocess.run(["scancel", str(job)], check=True)
    seen = []

    def said():
        v = view(ws, run_id)
        seen.append((v.status, v.reason))
        return v.status not in ("running", "queued") and v.reason == "cancelled outside mihd (scancel)"
    wait_for(said, timeout=60, every=0.5)  # asked as a watcher does: while Slurm says COMPLETING, and after
    meanwhile = {reason for status, reason in seen if status == "running"}
    assert ENDING in meanwhile and "completing" not in meanwhile, seen


def test_a_running_job_reads_unknown_while_slurmctld_is_down(ws):
    run_id = launch_training(ws, 120)
    wait_for(lambda: view(ws, run_id).status == "running", timeout=60)
    pid = int(Path("/run/mihd-slurm/slurmctld.pid").read_text())
    subprocess.run(["kill", str(pid)], check=True)
    try:
        wait_for(lambda: subprocess.run(["squeue", "-h"], capture_output=True).returncode != 0, timeout=30)
        down = view(ws, run_id)
        assert down.status == "unknown" and down.reason == "Slurm not answering", down
        ls = subprocess.run([sys.executable, "-m", "mihd", "runs", "ls", "--root", str(ws)], capture_output=True, text=True)
        assert "unknown (Slurm not answering)" in ls.stdout, ls.stdout + ls.stderr
    finally:
        subprocess.run(["bash", str(START)], capture_output=True, timeout=300)
        subprocess.run(["scancel", json.loads((ws / "runs" / run_id / "handle.json").read_text())["job_id"]])


def test_a_cell_of_a_job_array_cancelled_from_outside_says_so(ws, demo_h5ad):
    from conftest import run_mihd, with_demo

    root = with_demo(ws, demo_h5ad)
    proc = run_mihd("launch", "--backend", "slurm", "--cpus", "1", "--max-parallel", "1", "--", "grid", "demo",
                    "--gene", "pca", "--vision", "texture", "--fusion", "staig_fusion,concat", "--cluster", "gmm",
                    root=root)
    assert proc.returncode == 0, proc.stderr
    grid_id = proc.stdout.strip()
    grid = root / "runs" / grid_id
    cell0 = grid / "cells" / "0" / "events.jsonl"
    wait_for(lambda: cell0.exists() and '"stage"' in cell0.read_text(), timeout=400)  # cell 0 runs its command
    job = json.loads((grid / "cells" / "0" / "handle.json").read_text())["job_id"]
    subprocess.run(["scancel", str(job)], check=True)
    # asked once a second, as a watcher does (the cell reads a bare `killed` until Slurm has said CANCELLED)
    cell = wait_for(lambda: (c := view(root, grid_id).cells[0]).status == "killed" and c.reason and c, timeout=90,
                    every=1.0)
    assert cell.reason == "cancelled outside mihd (scancel)", cell  # once Slurm has said CANCELLED
    subprocess.run(["scancel", json.loads((grid / "handle.json").read_text())["job_id"]])


def test_a_slurm_grid_nobody_watches_is_flagged_late_by_its_cells_jobs(ws, demo_h5ad):
    """No process runs for a Slurm grid as a whole: its array tasks judge it from its parts, and tell once."""
    from conftest import run_mihd, with_demo

    root = with_demo(ws, demo_h5ad)
    warm = run_mihd("run", "demo", "--gene", "pca", "--vision", "texture", "--fusion", "gene_only", "--cluster",
                    "kmeans", root=root)  # the embeddings cached: the grid's jobs train at once
    assert warm.returncode == 0, warm.stderr
    proc = run_mihd("launch", "--backend", "slurm", "--cpus", "1", "--max-parallel", "2", "--expect", "20s", "--",
                    "grid", "demo", "--gene", "pca", "--vision", "texture", "--fusion", "staig_fusion", "--cluster",
                    "kmeans,gmm", "--seeds", "3", root=root)  # minutes of training, on any machine
    assert proc.returncode == 0, proc.stderr
    grid_id = proc.stdout.strip()
    try:
        late = wait_for(lambda: events(root, grid_id, "late"), timeout=300, every=1.0)[0]
        assert late["reason"].startswith("will overrun: projected ") and ", expected 20s (at " in late["reason"]
        assert late["at"] < 0.2 and late["projected"] > 60 and late["source"] == "given", late
        time.sleep(2 * GRID_EVERY + 1)  # each job judged it again meanwhile: the first to see it told
        assert len(events(root, grid_id, "late")) == 1
    finally:
        subprocess.run(["scancel", json.loads((root / "runs" / grid_id / "handle.json").read_text())["job_id"]])
