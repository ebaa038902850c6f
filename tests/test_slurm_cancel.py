"""An outside `scancel` against the real single-node Slurm (KillWait=5 s, scripts/slurm/slurm.conf): Slurm KILLs
the whole job KillWait seconds after its TERM, so the supervisor must have ended the command and its leftovers
and written exit.json by then, even when they ignore or outlive TERM; else the run would read `lost`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mihd.runs.backends.slurm_commands import SlurmCommands
from mihd.runs.launch import launch
from runs_helpers import fake_plan, session_pids, view, wait_for
from test_slurm_real import in_squeue, launch_fake, slurm, ws  # noqa: F401  (fixtures)

SLOW_TO_STOP = ("import signal, sys, time\n"
                "def stop(*_):\n    time.sleep(30); sys.exit(3)\n"
                "signal.signal(signal.SIGTERM, stop); print('up', flush=True); time.sleep(600)")

TIMEOUT = "MessageTimeout          = 10 sec\n"  # `scontrol show config` lines


def cancelled_outside(ws, run_id: str) -> dict:
    """scancel the run's job, wait until Slurm has let go (it KILLed whatever was left), return its exit.json."""
    run_dir = ws / "runs" / run_id
    job = json.loads((run_dir / "handle.json").read_text())["job_id"]
    subprocess.run(["scancel", str(job)], check=True)
    wait_for(lambda: not in_squeue(job), timeout=60, every=0.2)
    assert (run_dir / "exit.json").exists(), (run_dir / "run.log").read_text()[-800:]
    seen = view(ws, run_id)
    assert seen.status == "killed" and seen.reason == "cancelled outside mihd (scancel)", seen
    return json.loads((run_dir / "exit.json").read_text())


@pytest.mark.parametrize("answer, seconds", [
    ((0, f"{TIMEOUT}KillWait                = 30 sec\nKillOnBadExit           = 0\n", ""), 30.0),
    ((0, TIMEOUT, ""), None),
    ((1, "", "slurm_load_ctl_conf error: Unable to contact slurm controller"), None),
])
def test_the_time_slurm_gives_between_term_and_kill_is_read_from_its_config(answer, seconds):
    assert SlurmCommands(lambda argv: answer).kill_wait() == seconds  # None: the supervisor assumes a short one


@pytest.mark.slurm
@pytest.mark.timeout(200)
def test_an_outside_scancel_of_a_run_whose_child_ignores_term_ends_with_exit_json_and_reads_cancelled(ws):
    run_id = launch_fake(ws, "--seconds", 300, "--children", 3)  # one child ignores TERM
    run_dir = ws / "runs" / run_id
    wait_for(lambda: view(ws, run_id).status == "running", timeout=60)
    wait_for(lambda: len(session_pids(run_dir)) >= 7)  # the run, its children and grandchildren
    assert cancelled_outside(ws, run_id)["signal"] == "TERM"
    assert "leftover processes of the run" in (run_dir / "run.log").read_text()


@pytest.mark.slurm
@pytest.mark.timeout(200)
def test_an_outside_scancel_of_a_command_slower_to_stop_than_slurm_waits_ends_with_exit_json(ws):
    run_id = launch(ws, fake_plan(backend="slurm"), raw_argv=[sys.executable, "-c", SLOW_TO_STOP], cached=[True])
    log = ws / "runs" / run_id / "run.log"
    wait_for(lambda: log.exists() and "up" in log.read_text().splitlines(), timeout=60)  # its TERM handler is set
    assert cancelled_outside(ws, run_id)["signal"] == "KILL"
    assert "KILLed the command: it outlived the time left before Slurm's KILL" in log.read_text()
