"""`mihd runs wait`: blocks until real launched runs end, one line each as it ends; 0 / 1 / 124 / 2."""

import subprocess
import sys
import time
from pathlib import Path

from mihd.runs.kill import kill_run

from runs_helpers import launch_fake, view, wait_for

REPO = Path(__file__).resolve().parents[1]


def wait_cmd(root, *args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mihd", "runs", "wait", *map(str, args), "--root", str(root)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_wait_prints_each_run_as_it_ends_and_exits_0_when_all_are_done(tmp_path):
    slow = launch_fake(tmp_path, "--seconds", 4, "--ari", 0.7, name="slow one")
    quick = launch_fake(tmp_path, "--seconds", 0.5, "--ari", 0.61)
    began = time.monotonic()
    out = wait_cmd(tmp_path, slow, quick.rsplit("-", 1)[1])  # an id, and the random tail the dashboard shows
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and time.monotonic() - began >= 3.5  # it waited for the slow one
    assert lines[0].startswith(f"{quick}  done  ") and lines[0].endswith("ARI 0.610")
    assert lines[1].startswith(f"{slow}  done  slow one (demo pca+texture concat gmm)  ") and lines[1].endswith("ARI 0.700")


def test_wait_exits_1_when_one_failed_or_was_killed(tmp_path):
    bad = launch_fake(tmp_path, "--seconds", 0.3, "--exit", 3, name="bad")
    good = launch_fake(tmp_path, "--seconds", 0.3)
    assert wait_cmd(tmp_path, "bad", good).returncode == 1
    doomed = launch_fake(tmp_path, "--seconds", 60)
    waiter = subprocess.Popen([sys.executable, "-m", "mihd", "runs", "wait", doomed, "--root", str(tmp_path)],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    wait_for(lambda: view(tmp_path, doomed).status == "running")
    kill_run(tmp_path, doomed, grace=1)
    assert waiter.wait(60) == 1 and f"{doomed}  killed" in waiter.stdout.read()


def test_wait_times_out_with_124_and_refuses_a_bad_reference(tmp_path):
    live = launch_fake(tmp_path, "--seconds", 60)
    out = wait_cmd(tmp_path, live, "--timeout", "1s")
    assert out.returncode == 124 and out.stdout == "" and f"still active: {live}" in out.stderr
    bad = wait_cmd(tmp_path, live, "no-such-run")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "mihd: error: run 'no-such-run': no such run (see `mihd runs ls --all`)"
    assert wait_cmd(tmp_path, "x/../y").returncode == 2
    kill_run(tmp_path, live, grace=1)
