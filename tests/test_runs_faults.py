"""Run control under faults, with real processes and real files: a supervisor SIGKILLed while its command
goes on, every run dir file garbled in turn, random bytes in the registry, identities that must never
match, a kill whose targets leave the session, a moved workspace, options refused before submission."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from mihd.cli import main
from mihd.errors import MihdError
from mihd.runs.backends import get_backend
from mihd.identity import MARKER_VAR, process_identity
from mihd.runs.launch import launch
from mihd.runs.registry import Registry

from conftest import assert_one_line_error, run_mihd
from runs_helpers import CELL, alive, drop_index, fake_plan, launch_fake, view, wait_for


@pytest.fixture(autouse=True)
def index_dir(tmp_path_factory, monkeypatch):
    """This test's own host-local index folder (subprocesses inherit it)."""
    monkeypatch.setenv("MIHD_INDEX_DIR", str(tmp_path_factory.mktemp("host-index")))


def ident_of(run_dir: Path) -> dict:
    """proc.json once the supervisor has recorded its command."""
    return wait_for(lambda: (p := run_dir / "proc.json").exists()
                    and (i := json.loads(p.read_text())).get("child_pid") and i)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def marked(marker: str) -> set[int]:
    """Live processes carrying a run's environment marker (what `ps` cannot hide from a test)."""
    out = set()
    for p in psutil.process_iter():
        try:
            if p.environ().get(MARKER_VAR) == marker and p.status() != psutil.STATUS_ZOMBIE:
                out.add(p.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return out


# -- the supervisor killed -------------------------------------------------------------------------
def test_supervisor_killed_the_status_follows_the_command_to_done_also_after_a_rebuild(tmp_path):
    run_id = launch_fake(tmp_path, "--seconds", 8, "--ari", 0.37)  # long enough to be seen orphaned on a busy machine
    run_dir = tmp_path / "runs" / run_id
    ident = ident_of(run_dir)
    os.kill(ident["pid"], signal.SIGKILL)  # the OOM killer, say: the command goes on computing
    wait_for(lambda: gone(ident["pid"]))
    v = view(tmp_path, run_id)
    assert v.status == "orphaned" and v.active and "supervisor is gone" in v.reason
    assert v.progress is not None and v.elapsed > 0
    done = wait_for(lambda: (v := view(tmp_path, run_id)).status != "orphaned" and v)
    assert (done.status, done.ari) == ("done", pytest.approx(0.37)) and not (run_dir / "exit.json").exists()
    drop_index(tmp_path)
    reindex = run_mihd("runs", "reindex", root=tmp_path)
    assert reindex.returncode == 0, reindex.stderr
    assert view(tmp_path, run_id).status == "done"


def test_supervisor_killed_the_orphan_is_still_killable(tmp_path):
    run_id = launch_fake(tmp_path, "--seconds", 300, "--children", 2)
    run_dir = tmp_path / "runs" / run_id
    ident = ident_of(run_dir)
    procs = wait_for(lambda: len(p := marked(ident["marker"])) >= 5 and p)  # command, 2 children, 2 grandchildren
    os.kill(ident["pid"], signal.SIGKILL)
    wait_for(lambda: gone(ident["pid"]))
    assert view(tmp_path, run_id).status == "orphaned"
    out = run_mihd("runs", "kill", run_id, "--grace", "1s", root=tmp_path)
    assert out.returncode == 0 and "status killed, 0 processes left" in out.stdout, (out.stdout, out.stderr)
    assert alive(procs) == [] and view(tmp_path, run_id).status == "killed"
    assert json.loads((run_dir / "exit.json").read_text())["written_by"] == "mihd runs kill"


# -- garbled run dir files -------------------------------------------------------------------------
GARBLES = {
    "exit.json": b"\x00\x17garbled\xff",
    "spec.json": b"[1, 2, 3]",
    "events.jsonl": b'["a", "list"]\n',
    "result.json": b'{"slice": "demo", "status": "ok", "cells": "not a list"}',
    "proc.json": b'{"pid": "12"}',
    "handle.json": b'"a string"',
    "usage.json": b'{"t": "now", "rss": 1}',
}


def test_each_garbled_file_makes_its_run_corrupt_alone_and_a_repair_heals_it(tmp_path, capsys):
    bad_id = launch_fake(tmp_path, "--seconds", 0.2, "--ari", 0.3)
    good_id = launch_fake(tmp_path, "--seconds", 0.2, "--ari", 0.8)
    wait_for(lambda: view(tmp_path, bad_id).status == "done" and view(tmp_path, good_id).status == "done")
    bad = tmp_path / "runs" / bad_id
    for name, garbage in GARBLES.items():
        original = (bad / name).read_bytes()
        if name == "events.jsonl":
            garbage = original + garbage  # one bad line after good ones
        (bad / name).write_bytes(garbage)
        assert main(["runs", "reindex", "--root", str(tmp_path)]) == 0  # finished rows are read again
        assert "indexed 2 run dirs (0 active, 1 corrupt" in capsys.readouterr().out
        assert main(["runs", "ls", "--all", "--root", str(tmp_path)]) == 0, name
        out = capsys.readouterr().out
        assert f"{bad_id}: corrupt: {name}:" in out and len(out.splitlines()) == 4, out  # header, 2 runs, 1 note
        assert any(good_id in line and "done" in line and "0.800" in line for line in out.splitlines())
        assert main(["runs", "show", bad_id, "--root", str(tmp_path)]) == 0
        shown = capsys.readouterr().out
        assert "status  corrupt" in shown and f"error  {name}:" in shown
        assert main(["runs", "kill", bad_id, "--root", str(tmp_path)]) == 2  # nothing of it runs
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and (f"not running (corrupt: {name}:" in err or name in err), err
        (bad / name).write_bytes(original)
        assert view(tmp_path, bad_id).status == "done", name  # repaired: read again at the next refresh
        assert main(["runs", "reindex", "--root", str(tmp_path)]) == 0
        capsys.readouterr()


def test_garbled_exit_json_of_a_finished_run_never_reads_running(tmp_path):
    run_id = launch_fake(tmp_path, "--seconds", 0.2)
    wait_for(lambda: view(tmp_path, run_id).status == "done")
    (tmp_path / "runs" / run_id / "exit.json").write_text('{"code": 0, "ended": ')
    drop_index(tmp_path)
    v = view(tmp_path, run_id)
    assert v.status == "corrupt" and v.error.startswith("exit.json: not JSON") and not v.active
    proc = run_mihd("runs", "kill", run_id, root=tmp_path)
    assert_one_line_error(proc, "not running (corrupt: exit.json")


# -- the registry ------------------------------------------------------------------------------------
def test_random_bytes_in_the_registry_are_moved_aside_and_rebuilt(tmp_path):
    run_id = launch_fake(tmp_path, "--seconds", 0.2, "--ari", 0.55)
    wait_for(lambda: view(tmp_path, run_id).status == "done")
    index = Registry(tmp_path).path
    for command in (["runs", "ls"], ["runs", "show", run_id], ["runs", "reindex"]):
        for suffix in ("-wal", "-shm"):
            Path(f"{index}{suffix}").unlink(missing_ok=True)
        index.write_bytes(os.urandom(16384))
        proc = run_mihd(*command, root=tmp_path)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (command, proc.stderr)
        notes = proc.stderr.strip().splitlines()
        assert len(notes) == 1 and "unreadable" in notes[0] and "rebuilt from the run dirs" in notes[0], notes
        assert command[1] == "reindex" or "0.550" in proc.stdout
    assert len(list(index.parent.glob(f"{index.name}.unreadable-*"))) >= 1  # kept aside, not deleted
    assert view(tmp_path, run_id).status == "done"


# -- identities ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("field, value, status, refusal", [
    ("create_time", None, "done", "not running (done)"),
    ("boot_id", "another-boot", "done", "not running (done)"),
    ("host", "another-host", "running", "kill it from that machine"),
])
def test_an_identity_that_does_not_fully_match_is_never_taken_and_never_signalled(tmp_path, field, value,
                                                                                   status, refusal):
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        run_dir = tmp_path / "runs" / "20250101-000000-000-abcdef"
        run_dir.mkdir(parents=True)
        ident = process_identity(sleeper.pid)
        ident.update({"child_pid": sleeper.pid, "child_create_time": ident["create_time"], "started": 1.0})
        ident[field] = value
        if field == "create_time":
            ident["child_create_time"] = None
        (run_dir / "proc.json").write_text(json.dumps(ident))
        (run_dir / "spec.json").write_text(json.dumps({"id": run_dir.name, "backend": "local", "created": 1.0,
                                                       "cells": [CELL.to_dict()]}))
        (run_dir / "result.json").write_text(json.dumps({"slice": "demo", "status": "ok", "error": None,
                                                         "cells": []}))
        (run_dir / "events.jsonl").write_text('{"t": 2.0, "kind": "end", "status": "ok"}\n')
        assert view(tmp_path, run_dir.name).status == status  # a finished run, whatever that pid is now
        assert_one_line_error(run_mihd("runs", "kill", run_dir.name, root=tmp_path), refusal)
        if field == "create_time":
            with pytest.raises(MihdError, match="no create time recorded"):
                get_backend("local").kill({"run_dir": str(run_dir)}, "KILL", 1)
        assert sleeper.poll() is None  # the unrelated process was never signalled
    finally:
        sleeper.kill()
        sleeper.wait()


# -- escalation --------------------------------------------------------------------------------------
DAEMON = """\
import os, signal, sys, time
for s in (signal.SIGINT, signal.SIGTERM):
    signal.signal(s, signal.SIG_IGN)
if os.fork():  # double fork: the daemon is nobody's child and in a session of its own
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(600)
"""
COMMAND = """\
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2] + "/daemon.pid"])
subprocess.Popen([sys.executable, "-c", "import os, signal, time; os.setsid(); "
                  "signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(600)"])
time.sleep(600)
"""


def test_escalation_signals_every_process_again_and_names_what_escaped_the_session(tmp_path):
    run_id = launch(tmp_path, fake_plan(), raw_argv=[sys.executable, "-c", COMMAND, DAEMON, "{run_dir}"],
                    cached=[True])
    run_dir = tmp_path / "runs" / run_id
    ident = ident_of(run_dir)
    daemon = int(wait_for(lambda: (p := run_dir / "daemon.pid").exists() and p.read_text()))
    procs = wait_for(lambda: len(p := marked(ident["marker"])) >= 3 and p)  # command, setsid child, daemon
    assert daemon in procs and os.getsid(daemon) != ident["sid"]
    proc = run_mihd("runs", "kill", run_id, "--signal", "INT", "--grace", "1s", root=tmp_path)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    lines = proc.stdout.splitlines()
    assert "sent INT, then KILL to what was left; status killed, 0 processes left" in lines[0]
    assert f"{daemon} python" in lines[1] and "outside the run's session" in lines[1]
    assert alive(procs) == [] and marked(ident["marker"]) == set()


def test_a_kill_signal_is_not_reported_as_escalated(tmp_path):
    run_id = launch_fake(tmp_path, "--seconds", 300)
    ident_of(tmp_path / "runs" / run_id)
    proc = run_mihd("runs", "kill", run_id, "--signal", "KILL", root=tmp_path)
    assert proc.returncode == 0 and "sent KILL; status killed, 0 processes left" in proc.stdout, proc.stdout


# -- paths, names, refusals ----------------------------------------------------------------------------
def test_a_moved_workspace_is_watched_and_killed_from_its_new_place(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    run_id = launch_fake(old, "--seconds", 300)
    ident = ident_of(old / "runs" / run_id)
    events = old / "runs" / run_id / "events.jsonl"
    wait_for(lambda: events.exists() and '"stage"' in events.read_text())  # the command has opened its files
    handle = (old / "runs" / run_id / "handle.json").read_text()
    assert str(tmp_path) not in handle  # run dirs hold no absolute path of their own
    old.rename(new)
    assert view(new, run_id).status == "running"
    proc = run_mihd("runs", "kill", run_id, "--grace", "1s", root=new)
    assert proc.returncode == 0 and "status killed" in proc.stdout, (proc.stdout, proc.stderr)
    assert '"kind": "kill"' in (new / "runs" / run_id / "events.jsonl").read_text()
    assert gone(ident["child_pid"]) and not old.exists()


def test_refused_backend_options_leave_no_run_behind(tmp_path):
    with pytest.raises(MihdError, match="--cpus 0: expected a whole number"):
        launch(tmp_path, fake_plan(backend="slurm", backend_options={"cpus": 0}), raw_argv=["true"], cached=[True])
    (tmp_path / "slurm.json").write_text(json.dumps({"mem": "lots"}))
    proc = run_mihd("launch", "--backend", "slurm", "--", "run", "demo", "--gene", "pca", "--fusion", "gene_only",
                    root=tmp_path)
    assert_one_line_error(proc, "slurm.json: mem 'lots'")
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []
    assert main(["runs", "ls", "--all", "--root", str(tmp_path)]) == 0


def test_a_name_with_a_newline_keeps_the_table_one_line_a_run(tmp_path, capsys):
    proc = run_mihd("launch", "--name", "two\nlines", "--", "run", "demo", "--gene", "pca", "--fusion",
                    "gene_only", root=tmp_path)
    assert_one_line_error(proc, "--name")
    run_dir = tmp_path / "runs" / "20250101-000000-000-abcdef"  # an older run dir that has one
    run_dir.mkdir(parents=True)
    (run_dir / "spec.json").write_text(json.dumps({"id": run_dir.name, "name": "two\nlines", "backend": "local",
                                                   "cells": [CELL.to_dict()], "created": 1.0}))
    (run_dir / "exit.json").write_text(json.dumps({"code": 0, "ended": 2.0, "forwarded": []}))
    assert main(["runs", "ls", "--root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "two\\nlines" in lines[1] and "done" in lines[1]


def test_the_launched_command_carries_the_marker_and_proc_json_the_full_identity(tmp_path):
    run_id = launch_fake(tmp_path, "--seconds", 300)
    ident = ident_of(tmp_path / "runs" / run_id)
    assert ident["boot_id"] and ident["host"] and ident["create_time"] and ident["child_pgid"] == ident["child_pid"]
    assert psutil.Process(ident["child_pid"]).environ()[MARKER_VAR] == ident["marker"]
    assert MARKER_VAR not in psutil.Process(ident["pid"]).environ()  # the supervisor is not its own target
    assert main(["runs", "kill", run_id, "--grace", "1s", "--root", str(tmp_path)]) == 0
