"""A study on the real single-node Slurm: extraction jobs per slice, then every cell x slice as one job array
submitted in one sbatch; read back across slices; a 168-cell study submitted and cancelled at once."""

import json
import shutil
import time
from pathlib import Path

import pytest

from conftest import run_mihd, with_demo
from fanout_helpers import FUSIONS, read
from runs_helpers import view, wait_for
from test_slurm_real import slurm, squeue_ids, ws  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slurm


def with_copies(root: Path, demo_h5ad: Path, n: int) -> list[str]:
    """The demo slice and n - 1 copies of it registered as demo2, demo3, ...: a cohort of n slices."""
    from mihd.data.registry import register

    with_demo(root, demo_h5ad)
    names = ["demo"]
    for i in range(2, n + 1):
        copy = root / "copies" / f"demo{i}.h5ad"
        copy.parent.mkdir(exist_ok=True)
        shutil.copy(root / "demo" / "demo.h5ad", copy)
        register(root, f"demo{i}", copy)
        names.append(f"demo{i}")
    return names


def ours_in_queue(handle: dict) -> list[str]:
    ours = {handle["job_id"], *handle["extract_jobs"]}
    return [j for j in squeue_ids() if j.split("_")[0] in ours]


def test_a_study_on_slurm_is_one_job_array_after_extractions_per_slice(ws, demo_h5ad):
    root = ws
    with_copies(root, demo_h5ad, 2)
    proc = run_mihd("launch", "--backend", "slurm", "--cpus", "1", "--max-parallel", "2", "--", "grid", "demo,demo2",
                    "--gene", "pca", "--vision", "texture", "--fusion", "concat,gene_only", "--cluster", "kmeans",
                    root=root)
    assert proc.returncode == 0, proc.stderr
    study = proc.stdout.strip()
    grid = next((root / "runs").iterdir())
    handle = read(grid / "handle.json")
    assert "#SBATCH --array=0-3%2" in (grid / "job.sbatch").read_text()
    assert sorted(p.parent.name for p in grid.glob("extract/*/job.sbatch")) == [
        "demo-gene-pca", "demo-vision-texture-standard", "demo2-gene-pca", "demo2-vision-texture-standard"]
    assert len(handle["extract_jobs"]) == 4
    shown = run_mihd("runs", "show", study, root=root).stdout
    assert "           cells  " in shown and "slice  demo2: " in shown, shown
    done = wait_for(lambda: (v := view(root, study)).status not in ("queued", "running") and v, timeout=900, every=2)
    print(f"\nslurm study, 2 slices x 2 cells, nothing cached, 2 slots: {done.elapsed:.0f} s")
    assert done.status == "done", [c.error for c in done.cells]
    assert sorted(c.job_id for c in done.cells) == sorted(f"{handle['job_id']}_{t}" for t in range(4))
    out = json.loads(run_mihd("results", "--across-slices", "--format", "json", root=root).stdout)
    assert sorted(r["fusion"] for r in out) == ["concat", "gene_only"] and {r["n_slices"] for r in out} == {2}
    assert ours_in_queue(handle) == []


def test_a_168_cell_study_is_one_sbatch_and_one_kill_cancels_it(ws, demo_h5ad):
    root = ws
    slices = with_copies(root, demo_h5ad, 12)
    started = time.monotonic()
    proc = run_mihd("launch", "--backend", "slurm", "--cpus", "1", "--max-parallel", "4", "--", "grid", ",".join(slices),
                    "--gene", "pca", "--vision", "texture", "--fusion", FUSIONS, "--cluster", "gmm,kmeans", root=root)
    launched = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    study = proc.stdout.strip()
    grid = next((root / "runs").iterdir())
    handle = read(grid / "handle.json")
    print(f"\nslurm study of 168 cells (12 slices x 7 fusions x 2 clusterers): launched in {launched:.1f} s "
          f"(24 extraction jobs + 1 array)")
    assert "#SBATCH --array=0-167%4" in (grid / "job.sbatch").read_text()
    assert len(handle["extract_jobs"]) == 24 and len(list(grid.glob("**/job.sbatch"))) == 25
    v = wait_for(lambda: (v := view(root, study)).cells and v, timeout=60)
    assert len(v.cells) == 168 and v.label == "study 12 slices, 168 cells"
    assert len({c.job_id.split("_")[0] for c in v.cells}) == 1  # one array
    shown = run_mihd("runs", "show", study, root=root).stdout.splitlines()
    counts = [ln.split(None, 1)[1] for ln in shown if ln.split()[:1] == ["cells"]]
    assert counts and "168 queued" in counts[0], shown
    assert sum(ln.split()[:1] == ["slice"] and ": 14 queued" in ln for ln in shown) == 12, shown
    started = time.monotonic()
    proc = run_mihd("runs", "kill", study, "--grace", "5s", root=root)
    print(f"killed in {time.monotonic() - started:.1f} s")
    assert proc.returncode == 0 and "status killed" in proc.stdout, proc.stdout + proc.stderr
    wait_for(lambda: ours_in_queue(handle) == [], timeout=60)
    v = view(root, study)
    assert v.status == "killed" and {c.status for c in v.cells} == {"killed"}
