"""The Slurm backend against fixture texts: what squeue / scontrol / sbatch print on odd clusters (a user's
SQUEUE_FORMAT, states with suffixes, a controller that does not answer) and what a researcher then sees.

The texts go through the backend's one seam (SlurmCommands' runner), so everything above it is the real
code; tests/test_slurm_real.py runs the same paths against a real Slurm."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mihd.errors import MihdError
from mihd.runs.backends import GONE, QUEUED, RUNNING, UNKNOWN
from mihd.runs.backends import resolve_options
from mihd.runs.backends.slurm import Backend, batch_script, slurm_time
from mihd.runs.backends.slurm_commands import (SQUEUE_FORMAT, SlurmCommands, clean_env, normalise_state,
                                               parse_sbatch, parse_show_job, parse_squeue)

REPO = Path(__file__).resolve().parents[1]
SQUEUE = """\
41|PENDING|2027-01-01T00:00:00||Resources
42|PENDING|N/A||JobHeldUser
43|RUNNING|2025-03-01T10:00:00|node07|None
44|COMPLETING|2025-03-01T09:00:00|node07|None
45_3|PENDING|N/A||(launch failed requeued held)
"""

# `squeue` in a user's own layout (SQUEUE_FORMAT), as if our -o had been lost on the way
USER_FORMAT = """\
  JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)
     43     debug mihd-202     root  R       0:05      1 localhost
"""

SHOW_JOB = """\
JobId={job} JobName=mihd-20250301-100000-000-abcdef
   UserId=alice(1000) GroupId=alice(1000) MCS_label=N/A
   Priority=4294901750 Nice=0 Account=(null) QOS=(null)
   JobState={state} Reason={reason} Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode={code}
   RunTime=00:00:03 TimeLimit=UNLIMITED TimeMin=N/A
   SubmitTime=2025-03-01T10:00:00 EligibleTime=2025-03-01T10:00:00
   StartTime=2025-03-01T10:00:01 EndTime={end} Deadline=N/A
   Partition=debug AllocNode:Sid=login1:11222
   NodeList=node07
   TRES=cpu=1,mem=2000M,node=1,billing=1
   NtasksPerN:B:S:C=0:0:*:* CoreSpec=*
   Command=/home/alice/my runs/job.sbatch
   WorkDir=/home/alice
   Power=

"""


def show(job, state, reason="None", code="0:0", end="2025-03-01T10:00:04"):
    return SHOW_JOB.format(job=job, state=state, reason=reason, code=code, end=end)


class Cluster:
    """A runner that answers like a cluster would, from texts; counts the calls it gets."""

    def __init__(self, squeue="", jobs=None, squeue_rc=0, squeue_err=""):
        self.squeue, self.jobs, self.squeue_rc, self.squeue_err = squeue, jobs or {}, squeue_rc, squeue_err
        self.calls = []

    def __call__(self, argv):
        self.calls.append(argv)
        if argv[0] == "squeue":
            return self.squeue_rc, self.squeue, self.squeue_err
        if argv[:3] == ["scontrol", "show", "job"]:
            text = self.jobs.get(argv[3])
            if text is None:
                return 1, "", "slurm_load_jobs error: Invalid job id specified\n"
            return 0, text, ""
        if argv[0] == "sbatch":
            return self.sbatch_answer
        if argv[0] == "scancel":
            return 0, "", ""
        raise AssertionError(argv)

    sbatch_answer = (0, "77\n", "")


def backend(cluster):
    return Backend(SlurmCommands(cluster))


def run_dir(tmp_path, name="r1", started=None, exit_=None):
    d = tmp_path / "runs" / name
    d.mkdir(parents=True)
    if started is not None:
        (d / "proc.json").write_text(json.dumps({"pid": 1, "started": started, "host": "node07"}))
    if exit_ is not None:
        (d / "exit.json").write_text(json.dumps(exit_))
    return d


def handle(d, job):
    return {"backend": "slurm", "run_dir": str(d), "job_id": job, "submitted": time.time() - 600}


# -- parsing ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, state", [
    ("CANCELLED by 0", "CANCELLED"), ("CANCELLED+", "CANCELLED"), ("OUT_OF_ME+", "OUT_OF_MEMORY"),
    ("OUT_OF_MEMORY", "OUT_OF_MEMORY"), ("NODE_FAIL", "NODE_FAIL"), ("TIMEOUT", "TIMEOUT"), ("PD", "PENDING"),
    ("R", "RUNNING"), ("CG", "COMPLETING"), ("running", "RUNNING"), ("NEW_STATE", "NEW_STATE"),
])
def test_states_with_suffixes_truncations_and_short_codes(text, state):
    assert normalise_state(text) == state


def test_squeue_lines_parse_with_reasons_and_start_only_once_running():
    jobs = parse_squeue(SQUEUE)
    assert (jobs["41"].state, jobs["41"].reason, jobs["41"].start) == ("PENDING", "Resources", None)
    assert jobs["43"].state == "RUNNING" and jobs["43"].reason is None and jobs["43"].nodes == "node07"
    assert jobs["43"].start == time.mktime((2025, 3, 1, 10, 0, 0, 0, 0, -1))
    assert jobs["45_3"].reason == "(launch failed requeued held)"


def test_a_users_squeue_layout_is_an_error_not_a_guess():
    with pytest.raises(MihdError, match="squeue: unexpected output line"):
        parse_squeue(USER_FORMAT)


def test_the_environment_cannot_change_what_squeue_prints():
    env = clean_env({"SQUEUE_FORMAT": "%.5i %j", "SQUEUE_FORMAT2": "jobid", "SQUEUE_STATES": "CD",
                     "SLURM_TIME_FORMAT": "relative", "PATH": "/usr/bin"})
    assert env == {"SLURM_TIME_FORMAT": "standard", "PATH": "/usr/bin"}
    cluster = Cluster()
    SlurmCommands(cluster).squeue()
    assert cluster.calls == [["squeue", "--me", "-r", "-h", "-o", SQUEUE_FORMAT]]


def test_scontrol_show_job_keeps_values_with_spaces_and_equals():
    info = parse_show_job(show("43", "CANCELLED by 0", code="0:15"))
    assert (info.job_id, info.state, info.exit_code, info.nodes) == ("43", "CANCELLED", "0:15", "node07")
    assert info.end == time.mktime((2025, 3, 1, 10, 0, 4, 0, 0, -1))
    assert parse_show_job("") is None


def test_sbatch_job_id_with_and_without_cluster():
    assert parse_sbatch("123\n") == "123" and parse_sbatch("124;cluster2\n") == "124"
    with pytest.raises(MihdError, match="no job id"):
        parse_sbatch("Submitted batch job 5\n")


# -- state mapping ---------------------------------------------------------------------------------
def test_queued_with_reason_running_with_start_and_one_squeue_per_cache_period(tmp_path):
    cluster = Cluster(SQUEUE)
    be = backend(cluster)
    dirs = {j: run_dir(tmp_path, f"r{j}") for j in ("41", "42", "43", "44")}
    handles = {f"r{j}": handle(d, j) for j, d in dirs.items()}
    st = be.poll(handles)
    assert (st["r41"].state, st["r41"].reason) == (QUEUED, "pending: Resources")
    assert (st["r42"].state, st["r42"].reason) == (QUEUED, "pending: held")
    assert st["r43"].state == RUNNING and st["r43"].started == time.mktime((2025, 3, 1, 10, 0, 0, 0, 0, -1))
    assert (st["r44"].state, st["r44"].reason) == (RUNNING, "ending: Slurm is stopping the job")
    for _ in range(5):
        be.poll(handles)
    assert sum(c[0] == "squeue" for c in cluster.calls) == 1  # a dashboard polling often costs one call
    fresh = {**handles["r41"], "submitted": time.time() + 1}  # launched after the cached answer
    be.poll({"r41": fresh})
    assert sum(c[0] == "squeue" for c in cluster.calls) == 2


def test_supervisor_started_after_the_cached_answer_means_running(tmp_path):
    be = backend(Cluster(SQUEUE))
    d = run_dir(tmp_path)
    be.poll({"r1": handle(d, "41")})
    time.sleep(0.02)
    (d / "proc.json").write_text(json.dumps({"pid": 1, "started": 1234.5}))
    st = be.poll({"r1": handle(d, "41")})["r1"]
    assert (st.state, st.started) == (RUNNING, 1234.5)


@pytest.mark.parametrize("state, reason", [("NODE_FAIL", "NodeDown"), ("OUT_OF_MEMORY", "OutOfMemory"),
                                           ("TIMEOUT", "TimeLimit"), ("CANCELLED by 1000", "None")])
def test_ended_without_exit_json_is_gone_with_slurms_word_kept_in_the_run_dir(tmp_path, state, reason):
    d = run_dir(tmp_path, started=1.0)  # the supervisor ran long ago and never wrote exit.json
    be = backend(Cluster("", {"43": show("43", state, reason)}))
    st = be.poll({"r1": handle(d, "43")})["r1"]
    word = state.split()[0]
    assert st.state == GONE and word in st.reason and "slurm-43.out" in st.reason
    stored = json.loads((d / "handle.json").read_text())
    said = {"TIMEOUT": "killed by Slurm: time limit reached", "CANCELLED": "cancelled outside mihd (scancel)"}
    assert said.get(word, word) in stored["outcome"]["note"] and "run_dir" not in stored  # neutral words, no path
    assert stored["outcome"]["status"] == (None if word == "CANCELLED" else "failed") and st.handle == stored


def test_just_ended_job_waits_for_its_exit_json_then_exit_json_decides(tmp_path):
    d = run_dir(tmp_path, started=time.time() - 5)
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    cluster = Cluster("", {"43": show("43", "COMPLETED", end=now)})
    be = backend(cluster)
    st = be.poll({"r1": handle(d, "43")})["r1"]
    assert st.state == UNKNOWN and "waiting for its exit.json" in st.reason
    (d / "exit.json").write_text(json.dumps({"code": 0}))
    assert be.poll({"r1": handle(d, "43")})["r1"] == type(st)(GONE)  # the watcher reads exit.json


def test_job_ended_by_its_time_limit_is_a_failed_run_that_says_timeout(tmp_path):
    """Slurm TERMs the job at its limit; the supervisor forwards it and writes exit.json. Without Slurm's
    word that reads as a kill; with it, the run is failed with TIMEOUT, also after a reindex."""
    from mihd.runs.run_row import describe

    d = run_dir(tmp_path, started=1.0, exit_={"code": None, "signal": "TERM", "ended": 2.0, "forwarded": ["TERM"]})
    (d / "handle.json").write_text(json.dumps(handle(d, "44")))
    timed_out = show("44", "TIMEOUT", "TimeLimit").replace("TimeLimit=UNLIMITED", "TimeLimit=02:00:00")
    st = backend(Cluster("", {"44": timed_out})).poll({"r1": handle(d, "44")})["r1"]
    assert st.state == GONE and st.reason == "killed by Slurm: time limit 2:00:00 reached"
    row, _ = describe(d)
    assert row["status"] == "failed" and row["error"].startswith("killed by Slurm: time limit 2:00:00 reached")
    # a handle.json of an earlier release kept Slurm's word as slurm_state: still read
    (d / "handle.json").write_text(json.dumps({"backend": "slurm", "job_id": "44", "slurm_state": "TIMEOUT",
                                               "slurm_reason": "TimeLimit"}))
    row, _ = describe(d)
    assert row["status"] == "failed" and row["error"].startswith("Slurm TIMEOUT (TimeLimit)")


@pytest.mark.parametrize("by_mihd", [False, True])
def test_a_scancel_from_outside_says_so_and_a_kill_from_mihd_does_not(tmp_path, by_mihd):
    """Both end as TERM forwarded and Slurm's CANCELLED; only mihd's own kill leaves a kill event."""
    from mihd.runs.run_row import describe

    d = run_dir(tmp_path, started=1.0, exit_={"code": None, "signal": "TERM", "ended": 2.0, "forwarded": ["TERM"]})
    (d / "handle.json").write_text(json.dumps(handle(d, "45")))
    if by_mihd:
        (d / "events.jsonl").write_text(json.dumps({"t": 2.0, "kind": "kill", "signal": "TERM", "by": "me"}) + "\n")
    st = backend(Cluster("", {"45": show("45", "CANCELLED by 0")})).poll({"r1": handle(d, "45")})["r1"]
    row, _ = describe(d)
    assert row["status"] == "killed"
    if by_mihd:
        assert "outside" not in st.reason and "outside" not in (row["note"] or "")
    else:
        assert st.reason == row["note"] == "cancelled outside mihd (scancel)"


def test_the_time_limit_of_a_running_job_is_read_once_a_minute(tmp_path):
    running = show("46", "RUNNING").replace("TimeLimit=UNLIMITED", "TimeLimit=1-02:00:00")
    cluster = Cluster("46|RUNNING|2025-03-01T10:00:00|node07|None\n", {"46": running})
    be = backend(cluster)
    d = run_dir(tmp_path, started=1.0)
    for _ in range(3):
        assert be.poll({"r1": handle(d, "46")})["r1"].time_limit == 93600
    assert sum(c[:2] == ["scontrol", "show"] for c in cluster.calls) == 1


def test_forgotten_job_and_never_submitted_run_are_gone(tmp_path):
    be = backend(Cluster(""))
    d = run_dir(tmp_path)
    st = be.poll({"a": handle(d, "99"), "b": {"backend": "slurm", "run_dir": str(d)}})
    assert st["a"].state == GONE and "no longer known" in st["a"].reason
    assert st["b"].state == GONE and "never submitted" in st["b"].reason


def test_squeue_failure_reads_unknown_not_its_last_state(tmp_path, monkeypatch):
    from mihd.runs.backends import get_backend
    from mihd.runs.status import RunWatcher

    root = tmp_path
    d = run_dir(root, "20250301-100000-000-abcdef", started=time.time())
    (d / "spec.json").write_text(json.dumps({"id": d.name, "backend": "slurm", "cells": [],
                                             "created": time.time()}))
    (d / "handle.json").write_text(json.dumps(handle(d, "43")))
    cluster = Cluster(squeue_rc=1, squeue_err="slurm_load_jobs error: Unable to contact slurm controller\n")
    be = get_backend("slurm")
    monkeypatch.setattr(be, "commands", SlurmCommands(cluster))
    monkeypatch.setattr(be, "_live_at", 0.0)
    w = RunWatcher(root)
    try:
        v = w.refresh()[0]
    finally:
        w.close()
    assert v.status == "unknown" and v.reason == "Slurm not answering" and v.active  # not its last state


# -- submit ----------------------------------------------------------------------------------------
def test_options_from_workspace_config_overridden_and_checked(tmp_path):
    (tmp_path / "slurm.json").write_text(json.dumps({"partition": "gpu", "account": "lab",
                                                     "sbatch_args": ["--qos=low"]}))
    opts = resolve_options(tmp_path, "slurm", {"partition": "cpu", "time": "90m", "cpus": 4, "mem": "16G",
                                      "sbatch_args": ["--constraint=a100"], "account": None})
    assert opts == {"partition": "cpu", "account": "lab", "time": "01:30:00", "cpus": 4, "mem": "16G",
                    "sbatch_args": ["--qos=low", "--constraint=a100"]}
    assert slurm_time("30") == "30" and slurm_time("1-12") == "1-12" and slurm_time("2:00:00") == "2:00:00"
    assert slurm_time("26h") == "1-02:00:00"
    for bad, needle in [({"mem": "lots"}, "--mem"), ({"time": "soon"}, "--time"), ({"cpus": 0}, "--cpus"),
                        ({"sbatch_args": ["--output=/tmp/x"]}, "set by mihd"),
                        ({"sbatch_args": ["qos=high"]}, "--sbatch-arg")]:
        with pytest.raises(MihdError, match=needle):
            resolve_options(tmp_path, "slurm", bad)
    (tmp_path / "slurm.json").write_text(json.dumps({"partitoin": "gpu"}))
    with pytest.raises(MihdError, match="slurm.json: unexpected"):
        resolve_options(tmp_path, "slurm", {})


def test_batch_script_runs_the_supervisor_with_this_python_and_working_dir(tmp_path):
    d = run_dir(tmp_path)
    text = batch_script(d, ["prog", "it's"], {"cpus": 2, "gres": "gpu:1",
                                              "sbatch_args": ["--qos=high", "--comment=my first run"]},
                        "/home/a b")
    assert text.startswith("#!/bin/bash\n")
    assert "#SBATCH --cpus-per-task=2" in text and "#SBATCH --gres=gpu:1" in text
    assert '#SBATCH --chdir="/home/a b"' in text and '#SBATCH --comment="my first run"' in text
    assert f"#SBATCH --output={d}/slurm-%j.out" in text and "#SBATCH --qos=high" in text
    assert f"{sys.executable} -m mihd.runs.supervise {d} -- prog 'it'\"'\"'s' &" in text
    assert "cd '/home/a b' || exit 1" in text


def test_failed_sbatch_is_a_one_line_error_and_a_failed_run(tmp_path):
    cluster = Cluster()
    cluster.sbatch_answer = (1, "", "sbatch: error: invalid partition specified: nope\n"
                                    "sbatch: error: Batch job submission failed: Invalid partition name specified\n")
    d = run_dir(tmp_path)
    with pytest.raises(MihdError, match="sbatch: sbatch: error: invalid partition specified: nope"):
        backend(cluster).submit(d, ["true"], {"partition": "nope"})
    assert "invalid partition" in json.loads((d / "exit.json").read_text())["error"]
    assert (d / "job.sbatch").exists()


def test_kill_of_pending_job_cancels_it_and_of_running_job_signals_the_batch_shell(tmp_path):
    d = run_dir(tmp_path)
    for state, expected in [("PENDING", ["scancel", "41"]),
                            ("RUNNING", ["scancel", "--signal=INT", "--batch", "41"])]:
        cluster = Cluster("", {"41": show("41", state)})
        be = backend(cluster)
        calls = []

        def answer(argv, cluster=cluster, calls=calls):
            if argv[0] == "scancel":
                calls.append(argv)
                cluster.jobs["41"] = show("41", "CANCELLED")
            return cluster(argv)

        be.commands.runner = answer
        out = be.kill(handle(d, "41"), "INT", grace=1)
        assert calls == [expected] and out["ended"] and out["survivors"] == 0 and not out["escalated"]


def test_slurm_module_stays_light():
    code = ("import sys, mihd.runs.backends.slurm; "
            "print(sorted(m for m in ('torch', 'scanpy', 'sklearn', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
