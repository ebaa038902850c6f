"""On the real single-node Slurm: a job's end is told from the job itself, by its supervisor, which lets
the hooks finish before the job (and every process of it) ends."""

import json

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
