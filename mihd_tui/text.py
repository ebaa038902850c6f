"""Text shown in the dashboard, and the one door for a run's own words into it.

Everything a run or a user put there (labels, errors, reasons, log lines, names, paths, what was typed) is shown
as plain text, never read as markup (`[b]`, `[/]` restyle or raise) and never obeyed as a control sequence
(`ESC[2J` blanked the screen, `ESC]0;…` set the window title):
- `plain(words)` inside the dashboard's own markup (`f"[b]{plain(v.label)}[/]"`);
- `words(text)` where nothing reads markup (a notice, a `Plain` line);
- `Plain`, a line whose whole content is such words;
- `plain_cells(cells)` for a DataTable row (it reads a str as markup).

`say(widget, content)` updates a line only when what it shows changed: a Static's update lays the whole screen
out again (most of the dashboard's idle CPU when the header, the status line and each sparkline's value were
set anew at every refresh)."""

from __future__ import annotations

from rich.text import Text
from textual.markup import escape
from textual.widgets import Label, Static

from mihd.safe_text import safe_text


def words(text) -> str:
    """A run's words where no markup is read: control sequences shown as text (`^[[2J`)."""
    return safe_text(str(text))


def plain(text) -> str:
    """A run's words inside our markup: shown as written."""
    return escape(words(text))


def plain_cells(cells: tuple) -> tuple:
    """A DataTable row's cells as shown: each str a Text of its words (Text cells are ours, kept)."""
    return tuple(Text(words(c), end="") if isinstance(c, str) else c for c in cells)


class Plain(Label):
    """A line of a run's (or a user's) words only: no markup, no control sequence."""

    def __init__(self, content: str = "", **kw) -> None:
        super().__init__(words(content), markup=False, **kw)

    def update(self, content="", *, layout: bool = True) -> None:
        super().update(words(content), layout=layout)


def say(widget: Static, content) -> None:
    """Show `content` in `widget` unless it shows it already."""
    if widget.content != (words(content) if isinstance(widget, Plain) else content):
        widget.update(content)
