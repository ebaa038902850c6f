"""What a real run's alerts were told, each hook's outcome (sent, or why not), in `mihd runs show` (text and
--json) and in the dashboard's run detail."""

import json
import sys
from pathlib import Path

import pytest

from conftest import run_mihd
from notify_helpers import recorded, recorder, write_hooks
from runs_helpers import launch_fake, wait_for
from tui_helpers import app_for, cleanup, wait_until

pytestmark = pytest.mark.timeout(300)
PAGER_DOWN = "printf 'pager unreachable \\033]0;pwned\\007'; exit 4"  # a hook that fails, saying why in a run's words
PYTHON = f"command {Path(sys.executable).name}"


def failed_run_told(root: Path) -> str:
    """A run that failed, once both its hooks (one that works, one that fails) have been run and logged."""
    got = root / "got.jsonl"
    write_hooks(root, [{"on": ["failed"], "command": recorder(got)},
                       {"on": ["failed"], "command": ["sh", "-c", PAGER_DOWN]}])
    run_id = launch_fake(root, "--seconds", 0.2, "--exit", 3)
    events = root / "runs" / run_id / "events.jsonl"
    wait_for(lambda: events.exists() and events.read_text().count('"kind": "notify"') == 2, timeout=60)
    assert recorded(got)[0]["stdin"]["event"] == "failed"
    return run_id


def test_runs_show_lists_each_hook_outcome_with_why_one_failed(workspace):
    run_id = failed_run_told(workspace)
    shown = run_mihd("runs", "show", run_id, "--root", str(workspace))
    assert shown.returncode == 0, shown.stderr
    told = [line for line in shown.stdout.splitlines() if "  failed  command " in line]
    assert len(told) == 2 and told[0].strip().startswith("notified  20")
    sent = next(line for line in told if PYTHON in line)
    refused = next(line for line in told if "command sh" in line)
    assert sent.endswith(": sent") and refused.endswith(r": not sent: exit 4: pager unreachable \x1b]0;pwned\x07")
    assert "\x1b" not in shown.stdout

    as_json = json.loads(run_mihd("runs", "show", run_id, "--json", "--root", str(workspace)).stdout)["notified"]
    assert sorted((o["event"], o["hook"], o["ok"]) for o in as_json) == [
        ("failed", PYTHON, True), ("failed", "command sh", False)]
    assert [o["t"] for o in as_json] == sorted(o["t"] for o in as_json)
    assert next(o for o in as_json if not o["ok"])["said"].startswith("exit 4: pager unreachable")


def run_facts(app) -> str:
    found = app.screen.query("RunFacts")
    return str(found.first().render()) if found else ""


async def test_the_run_detail_shows_what_each_hook_was_told(workspace):
    run_id = failed_run_told(workspace)
    app = app_for(workspace)
    try:
        async with app.run_test(size=(160, 44)) as pilot:
            await wait_until(pilot, lambda: app.find_view(run_id) and app.find_view(run_id).status == "failed")
            app.open_run(run_id)
            facts = await wait_until(pilot, lambda: "notified" in run_facts(app) and run_facts(app), timeout=30)
    finally:
        cleanup(workspace)
    assert f"failed  {PYTHON}: sent" in facts
    assert "failed  command sh: not sent: exit 4: pager unreachable ^[]0;pwned^G" in facts and "\x1b" not in facts


def test_a_run_its_researcher_killed_says_why_no_hook_was_told(workspace):
    write_hooks(workspace, [{"on": ["failed", "done"], "command": recorder(workspace / "got.jsonl")}])
    run_id = launch_fake(workspace, "--seconds", 60)
    wait_for(lambda: (workspace / "runs" / run_id / "proc.json").exists(), timeout=60)
    killed = run_mihd("runs", "kill", run_id, "--grace", "2s", "--root", str(workspace))
    assert killed.returncode == 0, killed.stderr
    shown = run_mihd("runs", "show", run_id, "--root", str(workspace)).stdout
    line = next(line for line in shown.splitlines() if line.strip().startswith("notified"))
    assert "killed by" in line and "tells no one" in line
