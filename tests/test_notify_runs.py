"""Notifications of real launched runs: the supervisor tells a run's end, a watcher tells the end no
supervisor saw, a researcher's own kill tells nothing, and hooks never touch the run."""

import json
import os
from pathlib import Path

import pytest

from mihd.runs.kill import kill_run
from mihd.runs.status import RunWatcher

from notify_helpers import Mailbox, recorded, recorder, smtp_server, write_hooks
from runs_helpers import alive, launch_fake, view, wait_for


def supervisor_gone(run_dir: Path) -> bool:
    proc = json.loads((run_dir / "proc.json").read_text())
    return (run_dir / "exit.json").exists() and not alive([proc["pid"]])


def test_the_supervisor_tells_failed_and_done_to_the_hooks_that_ask(tmp_path):
    failed_only, with_done = tmp_path / "failed.jsonl", tmp_path / "done.jsonl"
    write_hooks(tmp_path, [{"on": ["failed"], "command": recorder(failed_only)},
                           {"on": ["failed", "done"], "command": recorder(with_done)},
                           {"on": ["failed", "done"], "command": ["sleep", "600"], "timeout": 1}])
    bad = launch_fake(tmp_path, "--seconds", 0.2, "--exit", 3, name="$(touch pwned)")
    got = wait_for(lambda: recorded(failed_only), timeout=60)[0]["stdin"]  # nobody watches: no view() here
    assert got["event"] == "failed" and got["label"] == "$(touch pwned) (demo pca+texture concat gmm)" and got["reason"] == "exit code 3"
    assert got["run_id"] == bad and got["elapsed_s"] >= 0.2
    run_dir = tmp_path / "runs" / bad
    claim = json.loads((run_dir / ".notify-failed").read_text())
    assert claim["pid"] == json.loads((run_dir / "proc.json").read_text())["pid"]  # the supervisor fired it
    ok = launch_fake(tmp_path, "--seconds", 0.2)
    told = wait_for(lambda: len(recorded(with_done)) == 2 and recorded(with_done), timeout=60)
    assert told[1]["stdin"]["event"] == "done"
    wait_for(lambda: supervisor_gone(tmp_path / "runs" / ok), timeout=60)
    assert len(recorded(failed_only)) == 1 and not list(tmp_path.rglob("pwned")) and not Path("pwned").exists()
    v = view(tmp_path, ok)  # the hanging hook was killed and logged; the run is as it was
    assert v.status == "done" and v.exit_code == 0 and v.ari == pytest.approx(0.5)
    events = [json.loads(x) for x in (Path(v.run_dir) / "events.jsonl").read_text().splitlines()]
    told = [(e["hook"], e["ok"]) for e in events if e["kind"] == "notify"]
    assert ("command sleep", False) in told and len(told) == 2


def test_an_end_no_supervisor_saw_is_told_once_by_the_watchers(tmp_path):
    out = tmp_path / "got.jsonl"
    write_hooks(tmp_path, [{"on": ["failed"], "command": recorder(out)}])
    run_id = launch_fake(tmp_path, "--seconds", 60)
    run_dir = tmp_path / "runs" / run_id
    ident = wait_for(lambda: json.loads((run_dir / "proc.json").read_text()).get("child_pid")
                     and json.loads((run_dir / "proc.json").read_text()))
    os.kill(ident["pid"], 9)  # the supervisor first: it can tell nothing now
    wait_for(lambda: not alive([ident["pid"]]))
    os.killpg(ident["child_pid"], 9)
    wait_for(lambda: not alive([ident["child_pid"]]))
    watchers = [RunWatcher(tmp_path), RunWatcher(tmp_path)]
    try:
        wait_for(lambda: all(next(v for v in w.refresh() if v.id == run_id).status == "lost" for w in watchers))
        got = wait_for(lambda: recorded(out), timeout=30)
        for w in watchers:
            w.refresh()
    finally:
        for w in watchers:
            w.close()
    assert len(recorded(out)) == 1
    assert got[0]["stdin"]["state"] == "lost" and got[0]["stdin"]["event"] == "failed" and got[0]["stdin"]["reason"]


def test_a_run_killed_by_its_researcher_tells_no_one(tmp_path):
    out = tmp_path / "got.jsonl"
    write_hooks(tmp_path, [{"on": ["failed"], "command": recorder(out)}])
    run_id = launch_fake(tmp_path, "--seconds", 60)
    wait_for(lambda: view(tmp_path, run_id).status == "running")
    kill_run(tmp_path, run_id, grace=1)
    run_dir = tmp_path / "runs" / run_id
    wait_for(lambda: supervisor_gone(run_dir), timeout=60)
    assert view(tmp_path, run_id).status == "killed" and recorded(out) == []
    assert json.loads((run_dir / ".notify-failed").read_text())["by"] == "mihd runs kill"


def test_a_failed_run_mails_its_label_event_and_reason_to_a_real_smtp_server(tmp_path):
    box = Mailbox()
    server = smtp_server(box)
    try:
        write_hooks(tmp_path, [{"on": ["failed"], "smtp": {"host": "127.0.0.1", "port": server.port,
                                                           "from": "mihd@node01", "to": "me@lab.org"}}])
        run_id = launch_fake(tmp_path, "--seconds", 0.2, "--exit", 3, name="uni2 grid on 151673")
        msg = wait_for(lambda: box.messages, timeout=60)[0]
        subject = msg["Subject"].replace("\r", "").replace("\n", "")  # a long header comes folded
        assert subject.startswith("[mihd] run 'uni2 grid on 151673") and "' failed: exit code 3 (after " in subject
        body = msg.get_payload(decode=True).decode()
        assert f"run_id: {run_id}" in body and "event: failed" in body and "reason: exit code 3" in body
        run_dir = tmp_path / "runs" / run_id
        told = wait_for(lambda: [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()
                                 if '"notify"' in x])
        assert told[0]["hook"] == "mail to me@lab.org via 127.0.0.1:%d" % server.port and told[0]["said"] == "sent"
    finally:
        server.stop()


def test_a_notify_config_that_cannot_be_read_leaves_runs_as_they_are(tmp_path):
    (tmp_path / "notify.json").write_text('[{"on": ["failed"], "command": ')
    run_id = launch_fake(tmp_path, "--seconds", 0.2, "--exit", 3)
    run_dir = tmp_path / "runs" / run_id
    wait_for(lambda: supervisor_gone(run_dir), timeout=60)
    v = view(tmp_path, run_id)
    assert v.status == "failed" and v.exit_code == 3 and not list(run_dir.glob(".notify-*"))
    assert '"notify"' not in (run_dir / "events.jsonl").read_text()
