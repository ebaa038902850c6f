"""A run's own words (labels, errors, reasons, log lines, names, what was typed) reach the dashboard through one
door, mihd_tui/text.py, which shows them as written: never markup, never a control sequence."""

from __future__ import annotations

import ast
from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import Static

from mihd_tui.text import Plain, plain, plain_cells

TUI = Path(__file__).resolve().parents[1] / "mihd_tui"
HOSTILE = "[b]bold?[/b] [/] \x1b[2J\x1b]0;title\x07 done"
AS_WRITTEN = "[b]bold?[/b] [/] ^[[2J^[]0;title^G done"


def test_no_dashboard_module_but_the_door_escapes_or_turns_markup_off_itself():
    found = []
    for path in sorted(TUI.rglob("*.py")):
        if path == TUI / "text.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in ("textual.markup", "rich.markup", "mihd.safe_text"):
                found.append(f"{path.relative_to(TUI)}:{node.lineno} imports {node.module}")
            if isinstance(node, ast.keyword) and node.arg == "markup" and getattr(node.value, "value", None) is False:
                found.append(f"{path.relative_to(TUI)}:{node.lineno} markup=False")
    assert found == [], "a run's words go through mihd_tui/text.py (plain, Plain, plain_cells, words):\n" + "\n".join(found)


class Lines(App):
    def compose(self) -> ComposeResult:
        yield Plain(HOSTILE, id="line")
        yield Static(f"[b]run[/b] {plain(HOSTILE)}", id="ours")


async def test_a_runs_words_show_as_written_alone_inside_our_markup_and_in_a_table_row():
    app = Lines()
    async with app.run_test(size=(100, 6)) as pilot:
        await pilot.pause()
        assert str(app.query_one("#line", Plain).render()) == AS_WRITTEN
        assert str(app.query_one("#ours", Static).render()) == f"run {AS_WRITTEN}"
        app.query_one("#line", Plain).update(HOSTILE + "!")
        assert str(app.query_one("#line", Plain).render()) == AS_WRITTEN + "!"
    assert plain_cells((HOSTILE, 3))[0].plain == AS_WRITTEN and plain_cells((HOSTILE, 3))[1] == 3
