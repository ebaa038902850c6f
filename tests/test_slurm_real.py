"""The Slurm backend against a real Slurm (the single node of scripts/slurm/start.sh, which scripts/test.sh
starts when run as root): a real demo cell queued, running, done with its ARI in the registry; kills that
leave no process; a restarted watcher; two jobs at once; a job gone without exit.json; a refused submit;
a grid fanned out as extraction jobs and a job array, its cells killed one by one or all at once."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mihd.runs.kill import kill_run
from mihd.runs.launch import launch
from mihd.runs.status import RunWatcher

from conftest import assert_one_line_error, run_mihd, with_demo
from fanout_helpers import GRID_14, assert_cells_waited_for_their_extractions, cache_statuses, processes_of, read
from runs_helpers import FAKE, alive, drop_index, fake_plan, session_pids, view, wait_for

REPO = Path(__file__).resolve().parents[1]
START, STOP = REPO / "scripts" / "slurm" / "start.sh", REPO / "scripts" / "slurm" / "stop.sh"


def _up() -> bool:
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return out.returncode == 0 and any(s.startswith(("idle", "mixed", "alloc")) for s in out.stdout.split())


@pytest.fixture(scope="session")
def slurm():
    """A Slurm that answers. Skips only where there are no Slurm commands at all (e.g. a laptop)."""
    if shutil.which("sbatch") is None:
        pytest.skip("sbatch is not on PATH: no Slurm here")
    started = False
    if not _up() and os.geteuid() == 0 and START.exists():
        subprocess.run(["bash", str(START)], check=True, capture_output=True, timeout=300)
        started = True
    assert _up(), "sbatch is on PATH but Slurm does not answer (start it: bash scripts/slurm/start.sh)"
    yield
    if started:
        subprocess.run(["bash", str(STOP)], capture_output=True, timeout=60)


@pytest.fixture
def ws(slurm, tmp_path):
    """A workspace whose Slurm jobs are cancelled (by id) when the test ends, whatever happened."""
    yield tmp_path
    for h in [*tmp_path.glob("runs/*/handle.json"), *tmp_path.glob("runs/*/extract/*/handle.json")]:
        job = json.loads(h.read_text()).get("job_id")
        if job:
            subprocess.run(["scancel", str(job)], capture_output=True)


def launch_fake(root, *args, options=None):
    return launch(root, fake_plan(backend="slurm", backend_options=options or {}),
                  raw_argv=[sys.executable, FAKE, "{run_dir}", *map(str, args)], cached=[True])


def in_squeue(job_id) -> bool:
    out = subprocess.run(["squeue", "--me", "-h", "-o", "%i", "-j", str(job_id)], capture_output=True, text=True)
    return str(job_id) in out.stdout.split()


@pytest.fixture
def demo_ws(ws, demo_h5ad):
    """The demo slice registered, with its pca and texture embeddings already in the cache."""
    with_demo(ws, demo_h5ad)
    for flag, name in (("--gene", "pca"), ("--vision", "texture")):
        proc = run_mihd("extract", "demo", flag, name, root=ws)
        assert proc.returncode == 0, proc.stderr
    return ws


def whole_node_free():
    """Tests that fill the node first wait for it to be empty, and say what holds it when it stays full."""
    def free():
        out = subprocess.run(["sinfo", "-h", "-o", "%C"], capture_output=True, text=True).stdout  # A/I/O/T
        return out.strip().split("/")[0] == "0"
    try:
        wait_for(free, timeout=60)
    except AssertionError:
        held = subprocess.run(["squeue", "-h", "-o", "%i %T %M %C %j"], capture_output=True, text=True).stdout
        raise AssertionError(f"the Slurm node stays busy with jobs of no test:\n{held}") from None


def test_demo_cell_goes_queued_running_done_with_its_ari_in_the_registry(demo_ws):
    root = demo_ws
    whole_node_free()
    blocker = launch_fake(root, "--seconds", 300, options={"cpus": 2})  # the node's every CPU
    wait_for(lambda: view(root, blocker).status == "running", timeout=60)
    proc = run_mihd("launch", "--backend", "slurm", "--cpus", "1", "--time", "10m", "--expect", "2m", "--",
                    "run", "demo", "--gene", "pca", "--vision", "texture", "--fusion", "concat", root=root)
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip()
    queued = wait_for(lambda: (v := view(root, run_id)).status == "queued" and v.reason and v)
    assert queued.reason.startswith("pending") and queued.backend == "slurm" and queued.job_id
    assert queued.elapsed is None and queued.queued_s >= 0 and queued.eta_s == 120
    time.sleep(1.5)
    assert kill_run(root, blocker, grace=10)["status"] == "killed"
    running = wait_for(lambda: (v := view(root, run_id)).status == "running" and v, timeout=60)
    assert running.queued_s >= 1.5 and running.elapsed < 60
    done = wait_for(lambda: (v := view(root, run_id)).status not in ("queued", "running") and v, timeout=240)
    print(f"\nslurm demo cell: queued {done.queued_s:.1f}s, ran {done.elapsed:.1f}s, ARI {done.ari:.3f}")
    assert done.status == "done" and done.exit_code == 0 and done.ari > 0.3, done
    assert done.queued_s >= 1.5 and done.elapsed > 0 and done.progress == 1.0
    w = RunWatcher(root)
    try:
        scores = [s for s in w.latest_scores().values() if s["run_id"] == run_id]
    finally:
        w.close()
    assert len(scores) == 1 and scores[0]["ari"] == pytest.approx(done.ari) and scores[0]["sig"]["backend"] == "slurm"
    run_dir = Path(done.run_dir)
    log = (run_dir / "run.log").read_text()
    assert "[mihd supervise]" in log and "ended with exit code 0" in log
    assert json.loads((run_dir / "exit.json").read_text())["code"] == 0
    assert {"start", "metric", "end"} <= {json.loads(line)["kind"] for line in (run_dir / "events.jsonl").open()}


def test_killed_job_ends_killed_with_no_process_of_it_left(ws):
    run_id = launch_fake(ws, "--seconds", 300, "--children", 3)
    v = wait_for(lambda: (v := view(ws, run_id)).status == "running" and v, timeout=60)
    run_dir = Path(v.run_dir)
    # the run, 3 children, 3 grandchildren (one outside the run's group, one that ignores TERM)
    tree = wait_for(lambda: len(p := session_pids(run_dir)) >= 7 and p)
    proc = run_mihd("runs", "kill", run_id, "--grace", "20s", root=ws)
    assert proc.returncode == 0 and "status killed, 0 processes left" in proc.stdout, proc.stdout + proc.stderr
    assert alive(tree) == [] and not in_squeue(v.job_id)
    v = view(ws, run_id)
    assert (v.status, v.kill_signal, v.exit_signal) == ("killed", "TERM", "TERM")
    assert "leftover processes" in (run_dir / "run.log").read_text()


def test_killed_while_queued_ends_killed_and_leaves_the_queue(ws):
    run_id = launch_fake(ws, "--seconds", 5, options={"sbatch_args": ["--hold"]})
    v = wait_for(lambda: (v := view(ws, run_id)).reason and v)
    assert (v.status, v.reason) == ("queued", "pending: held")
    out = kill_run(ws, run_id, grace=5)
    assert out["status"] == "killed" and out["survivors"] == 0 and not in_squeue(v.job_id)
    assert json.loads((Path(v.run_dir) / "exit.json").read_text())["written_by"] == "mihd runs kill"


def test_restarted_dashboard_shows_the_running_job(ws):
    run_id = launch_fake(ws, "--seconds", 60)
    v = wait_for(lambda: (v := view(ws, run_id)).status == "running" and (v.progress or 0) > 0 and v, timeout=60)
    drop_index(ws)  # a new dashboard, even one without the registry, finds it from the files
    proc = run_mihd("runs", "ls", "--json", root=ws, env={"SQUEUE_FORMAT": "%.5i %j", "SQUEUE_STATES": "CD",
                                                          "SLURM_TIME_FORMAT": "relative"})
    assert proc.returncode == 0, proc.stderr
    seen = next(r for r in json.loads(proc.stdout) if r["id"] == run_id)
    assert (seen["status"], seen["backend"], seen["job_id"], seen["reason"]) == ("running", "slurm", v.job_id, None)
    assert seen["progress"] > 0 and seen["stage"] == "fuse"
    w = RunWatcher(ws)  # and a watcher made anew in this process
    try:
        assert next(x for x in w.refresh() if x.id == run_id).status == "running"
    finally:
        w.close()


def test_running_job_shows_the_memory_it_measured_on_its_node(ws):
    run_id = launch_fake(ws, "--seconds", 60, "--mem", 50)
    # the login node cannot see a compute node's processes: the figures come from the job's usage.json
    v = wait_for(lambda: (v := view(ws, run_id)).status == "running" and (v.rss or 0) >= 50 << 20 and v, timeout=60)
    assert v.cpu_percent is not None and v.nprocs >= 1 and v.gpu_mem is None  # no GPU on this node
    assert kill_run(ws, run_id, grace=5)["status"] == "killed"
    assert view(ws, run_id).rss is None  # a finished run has no current use


def test_two_jobs_run_at_once(ws):
    whole_node_free()
    ids = [launch_fake(ws, "--seconds", 6, "--ari", ari) for ari in (0.4, 0.6)]

    def both_running():
        views = [view(ws, i) for i in ids]
        return all(v.status == "running" for v in views) and views

    wait_for(both_running, timeout=60)
    done = wait_for(lambda: all(view(ws, i).status == "done" for i in ids) and [view(ws, i) for i in ids],
                    timeout=60)
    (a, b) = done
    assert max(a.started, b.started) < min(a.ended, b.ended)  # their running times overlap
    assert {round(v.ari, 2) for v in done} == {0.4, 0.6} and a.job_id != b.job_id


def test_job_gone_without_exit_json_is_lost(ws):
    run_id = launch_fake(ws, "--seconds", 5, options={"sbatch_args": ["--hold"]})
    v = wait_for(lambda: (v := view(ws, run_id)).status == "queued" and v)
    subprocess.run(["scancel", str(v.job_id)], check=True)  # cancelled behind mihd's back
    lost = wait_for(lambda: (v := view(ws, run_id)).status == "lost" and v, timeout=30)
    assert "CANCELLED" in lost.reason and not (Path(lost.run_dir) / "exit.json").exists()
    stored = json.loads((Path(lost.run_dir) / "handle.json").read_text())
    assert stored["outcome"] == {"status": None, "note": "cancelled outside mihd (scancel)"}, stored
    assert "run_dir" not in stored
    assert '"kind": "lost"' in (Path(lost.run_dir) / "events.jsonl").read_text()  # kept for a rebuilt index


def test_refused_submit_is_one_line_and_a_failed_run(ws):
    proc = run_mihd("launch", "--backend", "slurm", "--partition", "nope", "--", "run", "demo", "--gene", "pca",
                    "--fusion", "gene_only",
                    root=ws)
    assert_one_line_error(proc, "sbatch", "partition")
    (v,) = RunWatcher(ws).refresh(all=True)
    assert v.status == "failed" and "partition" in v.error


def squeue_ids() -> list[str]:
    out = subprocess.run(["squeue", "--me", "-r", "-h", "-o", "%i"], capture_output=True, text=True)
    return out.stdout.split()


@pytest.fixture
def slurm_demo(ws, demo_h5ad):
    """The demo slice registered, nothing cached."""
    return with_demo(ws, demo_h5ad)


def test_grid_fans_out_as_extraction_jobs_and_a_job_array(slurm_demo):
    root = slurm_demo
    proc = run_mihd("launch", "--backend", "slurm", "--cpus", "1", "--max-parallel", "2", "--", *GRID_14, root=root)
    assert proc.returncode == 0, proc.stderr
    grid_id = proc.stdout.strip()
    grid = next((root / "runs").iterdir())
    handle = read(grid / "handle.json")
    script = (grid / "job.sbatch").read_text()
    assert "#SBATCH --array=0-13%2" in script
    assert f"#SBATCH --dependency=afterany:{':'.join(handle['extract_jobs'])}" in script
    assert len(handle["extract_jobs"]) == 3  # gene pca, gene scgpt, vision texture: nothing was cached
    v = wait_for(lambda: (v := view(root, grid_id)).cells and v, timeout=60)
    assert sorted(c.job_id for c in v.cells) == sorted(f"{handle['job_id']}_{t}" for t in range(14))
    # the longest cells take the lowest task ids, which Slurm starts first
    assert {c.job_id for c in v.cells if "staig_fusion" in c.label} == {f"{handle['job_id']}_{t}" for t in (0, 1)}
    pending = wait_for(lambda: [c.reason for c in view(root, grid_id).cells
                                if c.status == "queued" and (c.reason or "").startswith("pending: ")], timeout=60)
    assert pending[0] in ("pending: Dependency", "pending: JobArrayTaskLimit"), pending
    done = wait_for(lambda: (v := view(root, grid_id)).status not in ("queued", "running") and v, timeout=900, every=2)
    print(f"\nslurm array, 14 cells on 2 slots: {done.elapsed:.0f} s")
    pca = [c for c in done.cells if "pca" in c.label]
    scgpt = [c for c in done.cells if "scgpt" in c.label]
    assert all(c.status == "done" and c.ari is not None for c in pca), pca
    assert all(c.status == "failed" and c.error.startswith("extraction of gene scgpt failed: ") for c in scgpt), scgpt
    assert done.status == "failed" and done.error.startswith("7 of 14 cells failed")
    assert_cells_waited_for_their_extractions(grid)
    assert set(cache_statuses(grid)) == {"hit"}  # the extraction jobs were the only writers
    rows = json.loads(run_mihd("runs", "ls", "--json", "--all", root=root).stdout)
    assert [r["id"] for r in rows] == [grid_id] and len(rows[0]["cells"]) == 14
    ours = [handle["job_id"], *handle["extract_jobs"]]
    assert not any(j.split("_")[0] in ours for j in squeue_ids())


def test_killing_a_cell_cancels_its_task_and_killing_the_grid_leaves_no_job(slurm_demo):
    root = slurm_demo
    proc = run_mihd("launch", "--backend", "slurm", "--cpus", "1", "--max-parallel", "1", "--", "grid", "demo",
                    "--gene", "pca", "--vision", "texture", "--fusion", "staig_fusion,concat,mean",
                    "--cluster", "gmm", root=root)
    assert proc.returncode == 0, proc.stderr
    grid_id = proc.stdout.strip()
    handle = read(next((root / "runs").iterdir()) / "handle.json")
    v = wait_for(lambda: (v := view(root, grid_id)).cells and v.cells[0].status == "running" and v, timeout=300)
    assert v.cells[2].status == "queued" and f"{handle['job_id']}_2" in squeue_ids()
    out = kill_run(root, f"{grid_id}/2", grace=5)
    assert out["status"] == "killed" and f"{handle['job_id']}_2" not in squeue_ids()
    v = view(root, grid_id)
    assert (v.status, v.cells[0].status, v.cells[1].status, v.cells[2].status) == \
        ("running", "running", "queued", "killed")
    proc = run_mihd("runs", "kill", grid_id, "--grace", "5s", root=root)
    assert proc.returncode == 0 and "status killed, 0 processes left" in proc.stdout, proc.stdout + proc.stderr
    ours = [handle["job_id"], *handle["extract_jobs"]]
    wait_for(lambda: not any(j.split("_")[0] in ours for j in squeue_ids()), timeout=60)
    v = view(root, grid_id)
    assert v.status == "killed" and [c.status for c in v.cells] == ["killed"] * 3
    assert processes_of(Path(v.run_dir)) == []
