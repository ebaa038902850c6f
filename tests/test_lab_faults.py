"""A lab's shared workspace where one member's files are private (a umask 077, a chmod 600): every other
member's listing, results and dashboard go on, that run reads `unreadable (owner X)`, never `corrupt` nor a
traceback; a cache entry whose blob is private is flagged in `cache ls` as `cache verify` finds it; a run dir
made read-only mid-run still gets its end said. Real users of one group (useradd, as root)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil
import pytest
from conftest import assert_one_line_error
from test_fault_group import USERS, as_user, lab  # noqa: F401  (lab: the fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to add two users of one group")
ANN, BOB = USERS
LAUNCH_FAKE = ("-c", "import sys; sys.path.insert(0, 'tests'); from runs_helpers import launch_fake; "
                     "print(launch_fake(sys.argv[1], *sys.argv[2:]))")
LAUNCH_SLEEP = ("-c", "import sys; from mihd.runs.launch import launch; sys.path.insert(0, 'tests'); "
                      "from runs_helpers import fake_plan; print(launch(sys.argv[1], fake_plan(), "
                      "raw_argv=['sleep', sys.argv[2]], cached=[True]))")


def launched(user: str, root: Path, *args, how=LAUNCH_FAKE, umask: int = 0o002) -> Path:
    proc = as_user(user, root, str(root), *map(str, args), python=how, umask=umask)
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr
    return root / "runs" / proc.stdout.strip()


def ended(run_dir: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not (run_dir / "exit.json").exists():
        assert time.monotonic() < deadline, f"{run_dir} never ended"
        time.sleep(0.2)


def ok(proc) -> str:
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    return proc.stdout


DASHBOARD = """
import asyncio, json, sys
sys.path.insert(0, 'tests')
from textual.widgets import Log
from mihd_tui.widgets.runs_table import RunsTable
from tui_helpers import app_for, wait_until

async def main():
    app = app_for(sys.argv[1])
    seen = []
    app.notify = lambda message, **kw: seen.append(str(message))
    async with app.run_test(size=(120, 40)) as pilot:
        try:
            await wait_until(pilot, lambda: all(app.find_view(i) for i in sys.argv[2:]), timeout=30)
            await pilot.pause(1.0)  # a few refreshes more: no notice repeats
        except AssertionError:
            pass
        views = {i: [v.status, v.error] if (v := app.find_view(i)) else None for i in sys.argv[2:]}
        table = app.screen.query_one(RunsTable)  # open the run whose files are private
        table.focus()
        table.move_cursor(row=table.get_row_index(sys.argv[3]))
        await pilot.press("enter")
        await pilot.pause(2.0)
        log = [str(line) for line in app.screen.query_one(Log).lines] if app.screen.query(Log) else []
        title = str(app.screen.query_one("#detail-title").render()) if app.screen.query("#detail-title") else ""
        print(json.dumps({"views": views, "notices": seen, "log": log, "title": title}))

asyncio.run(main())
"""


def test_a_private_run_never_blinds_the_other_members(lab):
    root = lab
    mine = launched(BOB, root, "--seconds", 0.2, "--ari", 0.8)
    private = launched(ANN, root, "--seconds", 0.2, "--ari", 0.3, umask=0o077)  # its run dir is 0700
    shut = launched(ANN, root, "--seconds", 0.2, "--ari", 0.4)
    for run_dir in (private, mine, shut):
        ended(run_dir)
    assert private.stat().st_mode & 0o777 == 0o700
    for f in shut.iterdir():  # a run dir bob may enter, whose files are ann's alone
        os.chmod(f, 0o600)
    owner = f"unreadable (owner {ANN})"

    for command in (["runs", "ls"], ["runs", "ls", "--all"], ["runs", "reindex"], ["results"],
                    ["runs", "show", mine.name], ["runs", "logs", mine.name]):
        out = ok(as_user(BOB, root, *command))
        if command[:2] == ["runs", "ls"]:
            lines = out.splitlines()
            assert any(mine.name in ln and "done" in ln and "0.800" in ln for ln in lines), out
            for run_dir in (private, shut):
                assert any(ln.startswith(f"{run_dir.name}: {owner}") for ln in lines), out
                assert not any(run_dir.name in ln and "corrupt" in ln for ln in lines), out
    listed = {r["id"]: r for r in json.loads(ok(as_user(BOB, root, "runs", "ls", "--json", "--all")))}
    assert listed[private.name]["status"] == listed[shut.name]["status"] == "unreadable", listed
    assert listed[mine.name]["status"] == "done"
    shown = ok(as_user(BOB, root, "runs", "show", private.name))
    assert "status  unreadable" in shown and owner in shown, shown
    assert_one_line_error(as_user(BOB, root, "runs", "logs", private.name), owner)

    # the dashboard lists them all, with no notice repeating
    board = json.loads(ok(as_user(BOB, root, str(root), private.name, shut.name, mine.name, python=("-c", DASHBOARD))))
    assert (board["views"][mine.name] or [None])[0] == "done", board
    for run_dir in (private, shut):
        assert board["views"][run_dir.name][0] == "unreadable" and owner in board["views"][run_dir.name][1], board
    assert len(board["notices"]) == len(set(board["notices"])), board["notices"]
    assert board["log"] == [owner.replace("unreadable", "run.log: unreadable")], board  # its detail opens, saying so
    assert owner in board["title"] and "unreadable unreadable" not in board["title"], board["title"]

    # ann makes it readable again: the next listing reads it as done
    os.chmod(private, 0o2775)
    for f in [*private.iterdir(), *shut.iterdir()]:  # chmod -R g+rX
        os.chmod(f, 0o664)
    listed = {r["id"]: r for r in json.loads(ok(as_user(BOB, root, "runs", "ls", "--json", "--all")))}
    assert listed[private.name]["status"] == listed[shut.name]["status"] == "done", listed


def test_a_run_dir_made_read_only_mid_run_still_gets_its_end_said(lab):
    root = lab
    run_dir = launched(ANN, root, 3, how=LAUNCH_SLEEP)
    deadline = time.monotonic() + 30
    while "child_pid" not in ((run_dir / "proc.json").exists() and json.loads((run_dir / "proc.json").read_text())
                              or {}):
        assert time.monotonic() < deadline, "never started"
        time.sleep(0.1)
    sup = json.loads((run_dir / "proc.json").read_text())["pid"]
    os.chmod(run_dir, 0o555)  # made read-only by its owner while it runs
    deadline = time.monotonic() + 30
    while psutil.pid_exists(sup) and psutil.Process(sup).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the supervisor never ended"
        time.sleep(0.2)
    log = (run_dir / "run.log").read_text()
    assert "Traceback" not in log, log
    assert "ended with exit code 0" in log and "cannot write exit.json" in log and '"code": 0' in log, log
    assert not (run_dir / "exit.json").exists()
    os.chmod(run_dir, 0o2775)


def test_a_private_blob_is_flagged_in_the_listing_as_verify_finds_it(lab):
    root = lab
    ok(as_user(ANN, root, "extract", "demo", "--gene", "pca"))
    meta = next((root / "embeddings" / "entries" / "demo").glob("gene~pca~-.json"))
    blob = meta.parent / json.loads(meta.read_text())["blob"]
    os.chmod(blob, 0o600)  # the metadata stays readable: only the array is ann's alone
    verify = as_user(BOB, root, "cache", "verify")
    assert f"unreadable (owner {ANN})" in verify.stdout, verify.stdout
    listing = ok(as_user(BOB, root, "cache", "ls"))
    assert f"UNREADABLE (OWNER {ANN.upper()})" in listing.upper(), listing
    assert "UNREADABLE" not in ok(as_user(ANN, root, "cache", "ls")).upper()  # its owner reads it
    os.chmod(blob, 0o664)
    assert "UNREADABLE" not in ok(as_user(BOB, root, "cache", "ls")).upper()
