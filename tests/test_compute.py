"""What a process may compute with: cores (affinity, cgroup quota, Slurm, MIHD_THREADS), the device, and
training that uses exactly that, reproducibly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, assert_one_line_error, run_mihd
from mihd.compute import cgroup_cpu_limit
from mihd.errors import MihdError

CORES = sorted(os.sched_getaffinity(0))
CLEAN = {k: v for k, v in os.environ.items()
         if k not in ("MIHD_THREADS", "SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS", "OMP_WAIT_POLICY")}


def child(code: str, env: dict | None = None, cpus: set[int] | None = None) -> str:
    """Run `code` in a fresh interpreter (optionally pinned to `cpus`, as taskset does); its stdout."""
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**CLEAN, **(env or {})}, preexec_fn=pin)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


CORES_CODE = "from mihd.compute import allowed_cores; print(*allowed_cores())"


def test_cores_follow_the_affinity():
    assert child(CORES_CODE, cpus={CORES[0]}) == "1 affinity"
    assert child(CORES_CODE) == f"{len(CORES)} affinity"


def test_slurm_and_mihd_threads_set_the_count():
    assert child(CORES_CODE, {"SLURM_CPUS_PER_TASK": "1"}) == "1 SLURM_CPUS_PER_TASK"
    assert child(CORES_CODE, {"MIHD_THREADS": "1", "SLURM_CPUS_PER_TASK": "8"}) == "1 MIHD_THREADS"
    # a share is never more than the cores the process may run on
    assert child(CORES_CODE, {"MIHD_THREADS": "64"}, cpus={CORES[0]}) == "1 MIHD_THREADS"
    with pytest.raises(AssertionError, match="MIHD_THREADS: 'two' is not a whole number >= 1"):
        child(CORES_CODE, {"MIHD_THREADS": "two"})


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_is_the_tightest_along_the_path(tmp_path):
    _write(tmp_path / "job" / "cpu.max", "max 100000\n")
    _write(tmp_path / "job" / "step" / "cpu.max", "150000 100000\n")
    assert cgroup_cpu_limit("0::/job/step\n", tmp_path) == 1.5
    _write(tmp_path / "job" / "cpu.max", "100000 100000\n")  # the parent's quota binds the child
    assert cgroup_cpu_limit("0::/job/step\n", tmp_path) == 1.0
    assert cgroup_cpu_limit("0::/elsewhere\n", tmp_path / "job" / "step") == 1.5  # container: own cgroup at root


def test_cgroup_v1_quota_and_no_quota(tmp_path):
    cpu = tmp_path / "cpu,cpuacct" / "slurm" / "job_7"
    _write(cpu / "cpu.cfs_quota_us", "400000\n")
    _write(cpu / "cpu.cfs_period_us", "100000\n")
    _write(tmp_path / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")
    _write(tmp_path / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    text = "9:memory:/slurm/job_7\n4:cpu,cpuacct:/slurm/job_7\n3:cpuset:/\n"
    assert cgroup_cpu_limit(text, tmp_path) == 4.0
    assert cgroup_cpu_limit("4:cpu,cpuacct:/\n", tmp_path) is None


def test_the_cli_makes_runtime_threads_sleep_and_sizes_them_before_torch_loads():
    code = ("import os, sys, mihd.cli; "
            "print(os.environ['OMP_WAIT_POLICY'], os.environ['OMP_NUM_THREADS'], os.environ['OPENBLAS_NUM_THREADS'], "
            "'torch' in sys.modules, 'numpy' in sys.modules)")
    # a count inherited from a launcher on another allocation is replaced; an explicit wait policy is kept
    out = child(code, {"OMP_NUM_THREADS": "64", "OMP_WAIT_POLICY": "ACTIVE"}, cpus={CORES[0]})
    assert out == "ACTIVE 1 1 False False"
    assert child(code, {"MIHD_THREADS": "1"}).startswith("PASSIVE 1 1 ")


TRAIN_CODE = """
import json, sys
import numpy as np, torch
sys.path.insert(0, "tests")
from test_fusion import _slice
from mihd.fusion import run_cell_arrays
g, v, coords, _ = _slice()
seen = set()
def progress(stage, done, total, **fields):
    if stage == "train":
        seen.add(torch.get_num_threads())
labels, fused, _ = run_cell_arrays(g, v, coords, fusion=sys.argv[1], cluster="gmm", n_clusters=3, seed=5,
                                   device="cpu", progress=progress)
print(json.dumps({"threads": sorted(seen), "labels": labels.tolist(), "fused": fused.tobytes().hex()}))
"""


def train(fusion: str, env: dict | None = None, cpus: set[int] | None = None) -> dict:
    return json.loads(child(f"import sys; sys.argv[1:] = [{fusion!r}]\n" + TRAIN_CODE, env, cpus))


@pytest.mark.parametrize("fusion", ["staig_fusion", "attention"])
def test_training_uses_the_given_threads_and_is_bit_identical_on_cpu(fusion):
    one = train(fusion, {"MIHD_THREADS": "1"})
    assert one["threads"] == [1]
    runs = [train(fusion, cpus=set(CORES[:2])) for _ in range(2)]
    assert runs[0]["threads"] == [min(2, len(CORES))]
    assert runs[0]["fused"] == runs[1]["fused"] and runs[0]["labels"] == runs[1]["labels"]


def test_scan_uses_the_given_threads_and_is_bit_identical():
    code = """
import sys, numpy as np, torch
from mihd.scan import scan_refine
x = np.random.default_rng(0).normal(size=(600, 24)).astype(np.float32)
seen = set()
out = scan_refine(x, 4, epochs=3, seed=2, device="cpu", progress=lambda *a: seen.add(torch.get_num_threads()))
print(sorted(seen), __import__("hashlib").sha1(out.tobytes()).hexdigest())
"""
    a = child(code, {"SLURM_CPUS_PER_TASK": "1"})
    assert a.startswith("[1] ")
    b, c = (child(code, cpus=set(CORES[:2])) for _ in range(2))
    assert b.startswith(f"[{min(2, len(CORES))}] ") and b == c


def _no_gpu() -> bool:
    import torch

    return not torch.cuda.is_available()


@pytest.mark.skipif(not _no_gpu(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_line(demo_root):
    from test_fusion import _slice

    from mihd.fusion import run_cell_arrays

    g, v, coords, _ = _slice()
    with pytest.raises(MihdError, match=r"^--device cuda: no CUDA GPU is visible to this process \(use --device cpu or auto\)$"):
        run_cell_arrays(g, v, coords, fusion="staig_fusion", cluster="gmm", n_clusters=3, device="cuda")
    assert run_mihd("extract", "demo", "--vision", "texture", root=demo_root).returncode == 0
    proc = run_mihd("refine", "scan", "demo", "--vision", "texture", "--device", "cuda", root=demo_root)
    assert_one_line_error(proc, "--device cuda: no CUDA GPU")


@pytest.mark.skipif(_no_gpu(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("fusion", ["staig_fusion", "attention"])
def test_gpu_training_scores_like_the_cpu(fusion):
    from test_fusion import _slice

    from mihd.fusion import run_cell_arrays
    from mihd.metrics import ari

    g, v, coords, truth = _slice()
    scores = {d: ari(run_cell_arrays(g, v, coords, fusion=fusion, cluster="gmm", n_clusters=3, seed=1, device=d)[0], truth)
              for d in ("cpu", "cuda")}
    assert abs(scores["cpu"] - scores["cuda"]) <= 0.01, scores
