"""`mihd doctor`: one screen on the workspace's file system, space, writability, Slurm, GPUs, torch and
encoder weights; exit 1 when something blocks work."""

from __future__ import annotations

import json

from conftest import assert_one_line_error, run_mihd
from runs_helpers import fake_nvml
from mount_helpers import fill, mount

from mihd.doctor import mount_of, run_checks
from mihd.runs.gpu import Gpu


def _levels(proc) -> dict[str, str]:
    return {c["name"].strip(): c["level"] for c in json.loads(proc.stdout)}


def test_doctor_reports_every_check_on_one_screen(workspace, tmp_path):
    weights = tmp_path / "weights"
    (weights / "hipt").mkdir(parents=True)
    (weights / "hipt" / "dino_vits16.pth").write_bytes(b"not read by doctor")
    proc = run_mihd("doctor", root=workspace, env={"MIHD_WEIGHTS": str(weights)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) <= 24  # one screen
    for name in ("file system", "free space", "workspace", "cache", "slurm", "gpus", "torch", "encoders", "uni2", "scgpt"):
        assert any(f"  {name} " in f"{line} " for line in lines), (name, proc.stdout)
    fs_line = next(line for line in lines if "file system" in line)
    assert mount_of(workspace)[1] in fs_line
    hipt = next(line for line in lines if "  hipt " in line)
    assert hipt.startswith("ok") and str(weights / "hipt" / "dino_vits16.pth") in hipt and "MIHD_WEIGHTS" in hipt
    uni2 = next(line for line in lines if "  uni2 " in line)
    assert uni2.startswith("WARN") and "looked in" in uni2 and str(weights / "uni2") in uni2
    assert "pca" in next(line for line in lines if "  encoders " in line)


def test_doctor_shows_gpus_through_nvml(workspace):
    checks = {c.name: c for c in run_checks(workspace, gpu=Gpu(nvml=fake_nvml(devices=2)))}
    assert checks["gpus"].level == "ok" and "NVML sees 2" in checks["gpus"].detail and "Fake H100" in checks["gpus"].detail
    none = {c.name: c for c in run_checks(workspace, gpu=Gpu(nvml=fake_nvml(fail_init=True)))}
    assert none["gpus"].level == "warn" and "NVML Shared Library Not Found" in none["gpus"].detail


def test_doctor_fails_on_a_full_disk(small_disk):
    fill(small_disk, leave=4096)
    proc = run_mihd("doctor", "--json", root=small_disk)
    assert proc.returncode == 1
    levels = _levels(proc)
    assert levels["free space"] == "fail" and levels["workspace"] == "ok"
    assert "tmpfs" in {c["name"]: c["detail"] for c in json.loads(proc.stdout)}["file system"]


def test_doctor_fails_on_a_read_only_workspace_and_names_it(workspace, tmp_path, mounts):
    ro = tmp_path / "ro"
    ro.mkdir()
    mount("--bind", str(workspace), str(ro))
    mounts.append(ro)
    mount("-o", "remount,ro,bind", str(ro))
    proc = run_mihd("doctor", root=ro)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    line = next(line for line in proc.stdout.splitlines() if "  workspace " in line)
    assert line.startswith("FAIL") and "read-only" in line and proc.stdout.rstrip().endswith("blocked: workspace")


def test_doctor_on_a_missing_workspace_is_one_line(tmp_path):
    assert_one_line_error(run_mihd("doctor", root=tmp_path / "nowhere"), "no such workspace")


def test_doctor_without_slurm_says_runs_stay_local(workspace, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = run_mihd("doctor", "--json", root=workspace, env={"PATH": str(empty)})
    assert proc.returncode == 0, proc.stderr
    slurm = next(c for c in json.loads(proc.stdout) if c["name"] == "slurm")
    assert slurm["level"] == "warn" and "sinfo not found" in slurm["detail"] and "local backend" in slurm["detail"]
