"""On the real single-node Slurm: a job's end is told from the job itself, by its supervisor, which lets
the hooks finish before the job (and every process of it) ends."""

import json
import subprocess

import pytest

from notify_helpers import recorded, recorder, write_hooks
from runs_helpers import wait_for
from test_slurm_real import launch_fake, slurm, ws  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slurm


def test_a_failed_slurm_job_is_told_by_its_own_supervisor(ws):
    out = ws / "got.jsonl"
    write_hooks(ws, [{"on": ["failed"], "command": recorder(out)}])
    run_id = launch_fake(ws, "--seconds", 1, "--exit", 3)
    got = wait_for(lambda: recorded(out), timeout=180)[0]["stdin"]  # nobody watches: no watcher refresh here
    assert got["event"] == "failed" and got["run_id"] == run_id and got["reason"] == "exit code 3"
    run_dir = ws / "runs" / run_id
    claim = json.loads((run_dir / ".notify-failed").read_text())
    assert claim["pid"] == json.loads((run_dir / "proc.json").read_text())["pid"]


def test_a_job_slurm_ends_says_how_in_the_event_time_limit_or_scancel(ws):
    out = ws / "got.jsonl"
    write_hooks(ws, [{"on": ["failed"], "command": recorder(out)}])
    timed = launch_fake(ws, "--seconds", 600, options={"time": "1"})  # Slurm ends it at 1 minute
    outside = launch_fake(ws, "--seconds", 600)
    run_dir = ws / "runs" / outside
    wait_for(lambda: (run_dir / "proc.json").exists(), timeout=120)
    subprocess.run(["scancel", str(json.loads((run_dir / "handle.json").read_text())["job_id"])], check=True)

    def told(run_id):
        return [g["stdin"] for g in recorded(out) if g["stdin"]["run_id"] == run_id]

    got = wait_for(lambda: told(outside), timeout=120)[0]
    assert got["state"] == "killed" and got["reason"] == "cancelled outside mihd (scancel)"
    got = wait_for(lambda: told(timed), timeout=240)[0]
    assert got["state"] == "failed" and got["reason"] == "killed by Slurm: time limit 0:01:00 reached"  # as runs show
    assert len(recorded(out)) == 2
