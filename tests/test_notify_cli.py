"""`mihd notify test`, the notify check of `mihd doctor`, and a bad notify config said once at launch."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from notify_helpers import Mailbox, free_port, recorded, recorder, smtp_server, write_hooks

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(tmp_path):
    import os

    return {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "user-config")}  # nothing there: the workspace's alone


def mihd(env, *args):
    return subprocess.run([sys.executable, "-m", "mihd", *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env=env)


def test_notify_test_sends_through_every_hook_and_says_what_each_did(tmp_path, env):
    box = Mailbox()
    server = smtp_server(box)
    try:
        root, out = tmp_path / "ws", tmp_path / "got.jsonl"
        write_hooks(root, [{"on": ["failed"], "command": recorder(out)},
                           {"on": ["done"], "smtp": {"host": "127.0.0.1", "port": server.port, "from": "m@lab",
                                                     "to": "me@lab"}}])
        ok = mihd(env, "notify", "test", "--root", root)
        assert ok.returncode == 0 and ok.stderr == ""
        lines = ok.stdout.splitlines()
        assert len(lines) == 2 and lines[0].startswith("ok") and "exit 0" in lines[0]
        assert lines[1].startswith("ok") and "mail to me@lab" in lines[1] and lines[1].endswith(": sent")
        assert recorded(out)[0]["stdin"]["event"] == "test" and "test" in box.messages[0]["Subject"]
        down = free_port()
        write_hooks(root, [{"on": ["failed"], "command": ["no-such-notifier-xyz"]},
                           {"on": ["late"], "smtp": {"host": "127.0.0.1", "port": down, "from": "m", "to": "t"}}])
        bad = mihd(env, "notify", "test", "--root", root)
        assert bad.returncode == 1
        assert bad.stderr.splitlines() == [f"mihd: warning: {root / 'notify.json'} hook 1: command "
                                           "'no-such-notifier-xyz' not found (or not executable)"]
        assert [line.split()[0] for line in bad.stdout.splitlines()] == ["FAILED", "FAILED"]
        assert "cannot reach the server: Connection refused" in bad.stdout
        doctor = mihd(env, "doctor", "--json", "--root", root)
        check = next(c for c in json.loads(doctor.stdout) if c["name"].strip() == "notify")
        assert check["level"] == "warn" and "no-such-notifier-xyz" in check["detail"]
        assert "Connection refused" in check["detail"]
    finally:
        server.stop()


def test_a_notify_config_that_is_not_json_is_one_warning_at_launch_and_in_doctor(tmp_path, env):
    root = tmp_path / "ws"
    root.mkdir()
    (root / "notify.json").write_text('[{"on": ["failed"], "command": ["true"]},')
    launch = mihd(env, "launch", "--root", root, "--", "run", "no-such-slice", "--gene", "pca", "--fusion", "concat")
    warnings = [line for line in launch.stderr.splitlines() if line.startswith("mihd: warning:")]
    assert len(warnings) == 1 and f"{root / 'notify.json'}: not valid JSON" in warnings[0]
    assert launch.returncode == 2  # the launch's own error still comes, after the warning
    doctor = mihd(env, "doctor", "--json", "--root", root)
    check = next(c for c in json.loads(doctor.stdout) if c["name"].strip() == "notify")
    assert check["level"] == "warn" and "not valid JSON" in check["detail"]
    (root / "notify.json").unlink()
    none = mihd(env, "notify", "test", "--root", root)
    assert none.returncode == 1 and "no hooks configured" in none.stdout
