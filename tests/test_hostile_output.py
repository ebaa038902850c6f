"""A run's output is untrusted: what it printed never drives the researcher's terminal, in the dashboard's log
view nor in `mihd runs logs` on a terminal; a pipe still gets the bytes as written."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest

from mihd.safe_text import safe_text
from mihd_tui.widgets.log_view import LogView
from mihd_tui.widgets.runs_table import RunsTable
from tui_helpers import app_for, frozen_run, wait_until

REPO = Path(__file__).resolve().parents[1]
CLEAR, HOME, TITLE = "\x1b[2J", "\x1b[H", "\x1b]0;pwned\x07"
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4=\x07"  # OSC 52: write the clipboard
LINK = "\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\"  # OSC 8
HOSTILE = [f"step 1 {CLEAR}{HOME}", f"title {TITLE}", f"copy {CLIPBOARD}", f"link {LINK}",
           "csi8 \x9b2J c1 \x9d0;t\x9c", "\x1b[31mred\x1b[0m words", "bell\x07 del\x7f bidi \u202eevil"]
# anything a terminal would obey: ESC, C0 but tab/newline/CR, DEL, C1
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def test_safe_text_shows_every_control_and_keeps_only_whole_sgr():
    assert safe_text(f"a{CLEAR}{HOME}b") == "a^[[2J^[[Hb"
    assert safe_text(f"t{TITLE}") == "t^[]0;pwned^G"
    assert safe_text(CLIPBOARD) == "^[]52;c;cm0gLXJmIH4=^G"
    assert safe_text("\x9b2J \x7f \u202e") == "\\x9b2J ^? \\u202e"
    assert safe_text("\x1b[1;31mred\x1b[0m") == "red"  # colours dropped where they cannot be shown
    assert safe_text("\x1b[1;31mred\x1b[0m", colour=True) == "\x1b[1;31mred\x1b[0m"  # or kept, whole
    assert safe_text(f"\x1b[31m{CLEAR}\x1b[31;2J", colour=True) == "\x1b[31m^[[2J^[[31;2J"
    assert safe_text("tab\tend\r\nnext") == "tab\tend\nnext"
    assert safe_text("10%\r50%\r100%") == "10%\n50%\n100%"  # a progress bar: nothing hidden behind another
    for line in HOSTILE:
        for colour in (False, True):
            shown = SGR_FREE(safe_text(line, colour))
            assert not CONTROL.search(shown), (line, shown)


def SGR_FREE(text: str) -> str:  # noqa: N802 - the kept colours are the only escapes allowed
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def hostile_run(root: Path) -> Path:
    run_dir = frozen_run(root)
    (run_dir / "run.log").write_text("\n".join(HOSTILE) + "\n")
    (run_dir / "exit.json").write_text(json.dumps({"code": 0, "signal": None, "ended": 2.0, "forwarded": []}))
    return run_dir


def on_a_terminal(*args: str) -> str:
    """What `mihd ARGS` writes to a real terminal (a pseudo-terminal, 80x24)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "mihd", *args], stdout=slave, stderr=slave, cwd=REPO)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        try:
            chunk = os.read(master, 65536) if ready else b""
        except OSError:  # the other end closed
            chunk = b""
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0, out
    return out.decode()


def test_runs_logs_on_a_terminal_shows_escapes_and_a_pipe_gets_the_bytes(workspace):
    run_dir = hostile_run(workspace)
    shown = on_a_terminal("runs", "logs", run_dir.name, "--root", str(workspace))
    assert "step 1 ^[[2J^[[H" in shown and "title ^[]0;pwned^G" in shown and "copy ^[]52;c;" in shown
    assert "\x1b[31mred\x1b[0m words" in shown  # colours, parsed whole, may stay
    assert not CONTROL.search(SGR_FREE(shown).replace("\r\n", "\n"))
    piped = subprocess.run([sys.executable, "-m", "mihd", "runs", "logs", run_dir.name, "--root", str(workspace)],
                           capture_output=True, cwd=REPO)
    assert piped.returncode == 0 and piped.stdout == (run_dir / "run.log").read_bytes()


def test_runs_logs_streams_a_log_longer_than_a_read_and_a_line_without_end(workspace):
    run_dir = hostile_run(workspace)
    body = "".join(f"line {i} {'x' * 90}\n" for i in range(3000)) + "last words, no newline"
    (run_dir / "run.log").write_text(body)
    shown = on_a_terminal("runs", "logs", run_dir.name, "--root", str(workspace)).replace("\r\n", "\n")
    assert shown == body


def test_runs_ls_and_show_print_a_hostile_name_and_error_escaped(workspace):
    run_dir = hostile_run(workspace)
    spec = json.loads((run_dir / "spec.json").read_text())
    spec["plan"]["name"] = f"n{TITLE}"
    (run_dir / "spec.json").write_text(json.dumps(spec))
    result = json.loads((run_dir / "result.json").read_text())
    result.update(status="failed", error=f"boom {CLEAR}{CLIPBOARD}", cells=[])
    (run_dir / "result.json").write_text(json.dumps(result))
    for args in (("runs", "ls", "--all"), ("runs", "show", run_dir.name)):
        shown = on_a_terminal(*args, "--root", str(workspace))
        assert run_dir.name[:8] in shown and not CONTROL.search(shown.replace("\r\n", "\n")), shown


@pytest.mark.timeout(120)
async def test_the_log_view_shows_a_hostile_log_as_text_and_the_screen_stays_whole(workspace):
    """ESC[2J ESC[H blanked the header, tabs and sparklines on a real terminal; a title or clipboard
    sequence went through. Every segment the screen draws is free of controls, the log shows them as `^[`."""
    run_dir = hostile_run(workspace)
    app = app_for(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.find_view(run_dir.name) is not None)
        app.open_run(run_dir.name)
        log = await wait_until(pilot, lambda: app.screen.query(LogView) and app.screen.query_one(LogView))
        await wait_until(pilot, lambda: len(log.raw) >= len(HOSTILE))
        await pilot.press("l")
        await pilot.pause(0.3)
        assert list(log.raw)[:2] == ["step 1 ^[[2J^[[H", "title ^[]0;pwned^G"]
        rows = screen_rows(app)
        assert not [r for r in rows if CONTROL.search(r)]
        assert "concat" in rows[0] or "run" in rows[0]  # the header and tabs are where they were
        assert any("Log" in r and "Result" in r for r in rows[:8])
        assert any("^[[2J^[[H" in r for r in rows)


@pytest.mark.timeout(120)
async def test_a_hostile_error_in_the_run_detail_title_shows_as_text(workspace):
    """A failed part's error is its log's last line: `ESC[2J` in it blanked the detail's header and tabs."""
    run_dir = hostile_run(workspace)
    result = json.loads((run_dir / "result.json").read_text())
    result.update(status="failed", error=f"boom {CLEAR}{HOME}{TITLE} end", cells=[])
    (run_dir / "result.json").write_text(json.dumps(result))
    (run_dir / "exit.json").write_text(json.dumps({"code": 1, "signal": None, "ended": 2.0, "forwarded": []}))
    app = app_for(workspace)
    async with app.run_test(size=(200, 50)) as pilot:
        await wait_until(pilot, lambda: app.find_view(run_dir.name) is not None)
        app.open_run(run_dir.name)
        await wait_until(pilot, lambda: app.screen.query("#detail-title")
                         and "boom" in str(app.screen.query_one("#detail-title").render()))
        await pilot.pause(0.3)
        assert not [r for r in screen_rows(app) if CONTROL.search(r)]
        assert "boom ^[[2J^[[H^[]0;pwned^G end" in screen_rows(app)[0]
        await pilot.press("escape")
        table = await wait_until(pilot, lambda: not app.screen.query(LogView) and app.screen.query_one(RunsTable))
        table.focus()
        table.move_cursor(row=table.get_row_index(run_dir.name))
        await wait_until(pilot, lambda: "boom" in str(app.screen.query_one("#cell-info").render()))
        assert not [r for r in screen_rows(app) if CONTROL.search(r)]  # the status line quotes the error too


def screen_rows(app) -> list[str]:
    """The text of every screen line as the terminal would get it."""
    return ["".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips()]


@pytest.mark.timeout(120)
async def test_a_notice_quoting_a_run_shows_its_controls_as_text(workspace):
    """A notice carries a run's label or error (a failure, a late run): `ESC]0;…` in it set the window title."""
    app = app_for(workspace)
    async with app.run_test(size=(120, 30)) as pilot:
        app.notify(f"run failed: boom {CLEAR}{TITLE} end")
        toasts = await wait_until(pilot, lambda: [str(n.message) for n in app._notifications])  # what its toast shows
        assert not [t for t in toasts if CONTROL.search(t)], toasts
        assert any("boom ^[[2J^[]0;pwned^G end" in t for t in toasts), toasts
