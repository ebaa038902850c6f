"""Notifications (mihd.runs.notify*): the config, command hooks, mail through a real SMTP server on
localhost, the once-per-run claim across processes, a hook's timeout, and the run left alone."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mihd.runs.notify import deliver, send
from mihd.runs.notify_config import hooks_for, read_hooks
from mihd.runs.notify_smtp import probe

from notify_helpers import Mailbox, free_port, recorded, recorder, smtp_server, write_hooks
from runs_helpers import wait_for

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def user_notify_file(tmp_path, monkeypatch):
    """The user's ~/.config/mihd/notify.json is this test's own (empty) one."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user-config"))
    return tmp_path / "user-config" / "mihd" / "notify.json"


def a_run_dir(root: Path, name: str = "r1") -> Path:
    run_dir = root / "runs" / name
    run_dir.mkdir(parents=True)
    return run_dir


def notify_events(run_dir: Path) -> list[dict]:
    lines = (run_dir / "events.jsonl").read_text().splitlines() if (run_dir / "events.jsonl").exists() else []
    return [e for e in map(json.loads, lines) if e["kind"] == "notify"]


def test_both_config_files_apply_and_each_problem_is_one_line(tmp_path, user_notify_file):
    root = tmp_path / "ws"
    write_hooks(root, [{"on": ["failed"], "command": ["true"]},
                       {"on": ["failed"], "pager": {}},
                       {"on": ["lat"], "command": ["true"]},
                       {"on": ["done"], "command": ["no-such-notifier-xyz"]},
                       {"on": ["late"], "smtp": {"host": "localhost", "to": "a@b"}}])
    user_notify_file.parent.mkdir(parents=True)
    user_notify_file.write_text('[{"on": ["overrun"], "command": ["true"]}]')
    hooks, problems = read_hooks(root)
    assert [(h.on, h.name) for h in hooks] == [(("failed",), "command true"),
                                               (("done",), "command no-such-notifier-xyz"),
                                               (("overrun",), "command true")]
    assert len(problems) == 4 and all("\n" not in p and "notify.json hook" in p for p in problems)
    assert "hook 2: unknown hook kind pager" in problems[0] and "hook 3: \"on\"" in problems[1]
    assert "'no-such-notifier-xyz' not found" in problems[2] and "'from' missing" in problems[3]
    assert [h.name for h in hooks_for(root, "done")] == ["command no-such-notifier-xyz"]  # done: only where listed
    user_notify_file.write_text("[{oops")
    assert any(p.startswith(f"{user_notify_file}: not valid JSON") for p in read_hooks(root)[1])


def test_a_command_hook_gets_the_event_as_data_never_through_a_shell(tmp_path):
    root, out = tmp_path / "ws", tmp_path / "got.jsonl"
    write_hooks(root, [{"on": ["failed"], "command": recorder(out)}])
    run_dir = a_run_dir(root)
    deliver(run_dir, {"event": "failed", "label": "$(touch pwned)", "reason": "`touch pwned2`; rm -rf x"})
    got = wait_for(lambda: recorded(out))[0]
    assert got["stdin"]["label"] == "$(touch pwned)" and got["env"]["MIHD_EVENT_LABEL"] == "$(touch pwned)"
    assert got["env"]["MIHD_EVENT_REASON"] == "`touch pwned2`; rm -rf x" and got["stdin"]["run_id"] == "r1"
    assert set(got["stdin"]) >= {"event", "run_id", "label", "state", "reason", "elapsed_s", "expected_s",
                                 "projected_s", "host"}
    assert not list(Path("/").glob("pwned*")) and not list(tmp_path.rglob("pwned*"))
    logged = wait_for(lambda: notify_events(run_dir))
    assert logged[0]["ok"] and logged[0]["event"] == "failed" and logged[0]["said"] == "exit 0"


def test_an_event_fires_once_however_many_processes_deliver_it(tmp_path):
    root, out = tmp_path / "ws", tmp_path / "got.jsonl"
    write_hooks(root, [{"on": ["late", "failed"], "command": recorder(out)}])
    run_dir = a_run_dir(root)
    code = ("import sys; from pathlib import Path; from mihd.runs.notify import deliver, settle; "
            "deliver(Path(sys.argv[1]), {'event': sys.argv[2]}); settle(30)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(run_dir), event], cwd=REPO)
             for event in ["late"] * 6 + ["failed"] * 2]
    assert [p.wait(60) for p in procs] == [0] * 8
    assert sorted(g["stdin"]["event"] for g in recorded(out)) == ["failed", "late"]
    deliver(run_dir, {"event": "late"})  # and later, too
    assert len(recorded(out)) == 2 and len(notify_events(run_dir)) == 2


def test_a_hanging_or_failing_hook_is_killed_after_its_timeout_and_logged(tmp_path):
    root, out = tmp_path / "ws", tmp_path / "got.jsonl"
    write_hooks(root, [{"on": ["overrun"], "command": ["sleep", "600"], "timeout": 1},
                       {"on": ["overrun"], "command": ["sh", "-c", "echo no route; exit 3"]},
                       {"on": ["overrun"], "command": recorder(out)}])
    run_dir = a_run_dir(root)
    deliver(run_dir, {"event": "overrun"})
    logged = wait_for(lambda: notify_events(run_dir), timeout=30)
    assert [(e["hook"], e["ok"], e["said"]) for e in logged] == [
        ("command sleep", False, "killed after 1 s (timeout)"), ("command sh", False, "exit 3: no route"),
        (f"command {Path(sys.executable).name}", True, "exit 0")]
    assert logged[0]["seconds"] < 10 and recorded(out)  # the others did not wait for the hanging one
    sleeping = subprocess.run(["pgrep", "-f", "^sleep 600$"], capture_output=True, text=True).stdout.split()
    assert not sleeping


def test_mail_reaches_a_real_smtp_server_with_label_event_and_reason(tmp_path):
    box = Mailbox()
    server = smtp_server(box)
    try:
        root = tmp_path / "ws"
        write_hooks(root, [{"on": ["failed"], "smtp": {"host": "127.0.0.1", "port": server.port,
                                                       "from": "mihd@lab.org", "to": ["me@lab.org"]}}])
        run_dir = a_run_dir(root)
        deliver(run_dir, {"event": "failed", "label": "dlpfc uni2 grid", "reason": "CUDA out of memory"})
        wait_for(lambda: box.messages, timeout=30)
        msg = box.messages[0]
        assert "dlpfc uni2 grid" in msg["Subject"] and "failed" in msg["Subject"]
        assert "CUDA out of memory" in msg["Subject"] and msg["To"] == "me@lab.org"
        body = msg.get_payload(decode=True).decode()
        assert "event: failed" in body and "label: dlpfc uni2 grid" in body and "reason: CUDA out of memory" in body
        assert wait_for(lambda: notify_events(run_dir))[0]["said"] == "sent"
    finally:
        server.stop()


def test_mail_with_login_and_a_refusing_or_absent_server(tmp_path):
    from aiosmtpd.smtp import AuthResult

    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret")

    box = Mailbox()
    server = smtp_server(box, authenticator=authenticator, auth_require_tls=False)
    refusing = smtp_server(Mailbox(refuse="554 5.7.1 relaying denied"))
    try:
        secret = tmp_path / "pw"
        secret.write_text("s3cret\n")
        secret.chmod(0o600)
        smtp = {"host": "127.0.0.1", "port": server.port, "from": "m@x", "to": "me@x", "user": "me",
                "password_file": str(secret)}
        hooks, problems = read_hooks(_root_with(tmp_path / "a", [{"on": ["done"], "smtp": smtp}]))
        assert problems == []
        secret.chmod(0o644)
        assert "readable by others" in read_hooks(tmp_path / "a")[1][0]
        event = {"event": "test", "label": "t", "run_id": "x"}
        down = {**smtp, "port": free_port(), "user": None}
        del down["user"], down["password_file"]
        refused = {**down, "port": refusing.port}
        _, bad = read_hooks(_root_with(tmp_path / "b", [{"on": ["done"], "smtp": {**smtp, "password_file": str(
            tmp_path / "nope")}}]))
        assert "No such file" in bad[0]
        outcomes = send(hooks + read_hooks(_root_with(tmp_path / "c", [{"on": ["done"], "smtp": down},
                                                                       {"on": ["done"], "smtp": refused}]))[0], event)
        assert [o["ok"] for o in outcomes] == [True, False, False]
        assert logins == [(b"me", b"s3cret")] and len(box.messages) == 1
        assert outcomes[1]["said"].startswith("cannot reach the server") and "554" in outcomes[2]["said"]
        assert probe(down).startswith("cannot reach") and probe(smtp) is None
    finally:
        server.stop()
        refusing.stop()


def _root_with(root: Path, hooks: list) -> Path:
    write_hooks(root, hooks)
    return root


def test_no_hook_no_claim_and_parts_of_a_grid_fire_nothing(tmp_path):
    root, out = tmp_path / "ws", tmp_path / "got.jsonl"
    run_dir = a_run_dir(root)
    deliver(run_dir, {"event": "failed"})
    assert not list(run_dir.iterdir())  # nothing configured: nothing written
    write_hooks(root, [{"on": ["failed"], "command": recorder(out)}])
    part = run_dir / "cells" / "3"
    part.mkdir(parents=True)
    deliver(part, {"event": "failed"})
    deliver(run_dir, {"event": "bogus"})
    assert not list(part.iterdir()) and not (run_dir / ".notify-bogus").exists()
    deliver(tmp_path / "no" / "runs" / "gone", {"event": "failed"})  # never raises
    os.chown(run_dir, os.getuid() + 1, -1)  # another lab member's run: their hooks, not this user's
    deliver(run_dir, {"event": "failed"})
    assert not (run_dir / ".notify-failed").exists()
    os.chown(run_dir, os.getuid(), -1)
    deliver(run_dir, {"event": "failed"})
    assert (run_dir / ".notify-failed").exists() and wait_for(lambda: recorded(out))


def test_mail_through_starttls_and_login_as_an_institutions_relay_wants(tmp_path, monkeypatch):
    import ssl

    from aiosmtpd.smtp import AuthResult

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this server's certificate, as a site CA
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, session.ssl is not None))
        return AuthResult(success=auth_data.password == b"s3cret")

    box = Mailbox()
    server = smtp_server(box, tls_context=tls, require_starttls=True, authenticator=authenticator)
    try:
        secret = tmp_path / "pw"
        secret.write_text("s3cret\n")
        secret.chmod(0o600)
        relay = {"host": "localhost", "port": server.port, "from": "me@lab.org", "to": "me@lab.org", "user": "me",
                 "password_file": str(secret)}
        both = [{"on": ["failed"], "smtp": {**relay, "starttls": True}}, {"on": ["failed"], "smtp": relay}]
        hooks, problems = read_hooks(_root_with(tmp_path / "ws", both))
        assert problems == []
        tls_on, plain = send(hooks, {"event": "failed", "label": "uni2 grid", "run_id": "x", "reason": "OOM"})
        assert tls_on["ok"] and logins == [(b"me", True)] and "uni2 grid" in box.messages[0]["Subject"]
        assert not plain["ok"] and len(box.messages) == 1  # the relay wants STARTTLS first: refused, said why
        assert plain["said"] == "refused: SMTP AUTH extension not supported by server."  # TLS first, then AUTH
        monkeypatch.delenv("SSL_CERT_FILE")  # a certificate nobody vouches for: no password goes out
        (untrusted,) = send(hooks[:1], {"event": "failed", "label": "x", "run_id": "x"})
        assert untrusted["said"].startswith("TLS failed: CERTIFICATE_VERIFY_FAILED") and len(logins) == 1
    finally:
        server.stop()
