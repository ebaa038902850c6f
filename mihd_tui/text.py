"""Text shown in the dashboard's lines (Static, Label).

`say(widget, content)` updates a line only when what it shows changed: a Static's update lays the whole screen
out again (most of the dashboard's idle CPU when the header, the status line and each sparkline's value were
set anew at every refresh)."""

from __future__ import annotations

from textual.widgets import Static


def say(widget: Static, content) -> None:
    """Show `content` in `widget` unless it shows it already."""
    if widget.content != content:
        widget.update(content)
