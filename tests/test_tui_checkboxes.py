"""The launch dialog's check boxes read checked or not in their text, not only in their colour: what a plain
screen capture or a colour-blind researcher sees."""

from __future__ import annotations

import pytest
from textual.widgets import Checkbox

from mihd_tui.screens.launch import LaunchDialog
from tui_helpers import app_for, move_to, wait_until

pytestmark = pytest.mark.timeout(120)


def drawn(widget) -> str:
    """The widget's text as drawn on screen, colours left out."""
    return "".join(widget.render_line(y).text for y in range(widget.size.height)).strip()


async def test_the_launch_dialogs_check_boxes_say_checked_or_not_without_colour(demo_root):
    app = app_for(demo_root)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.snapshot and app.snapshot.grid)
        await move_to(pilot, "gene_only", "none")
        await pilot.press("enter")
        dialog = await wait_until(pilot, lambda: isinstance(app.screen, LaunchDialog) and app.screen)
        override, refine = dialog.query_one("#override", Checkbox), dialog.query_one("#refine", Checkbox)
        await wait_until(pilot, lambda: override.size.height)
        assert (override.value, refine.value) == (False, True)
        assert (drawn(override), drawn(refine)) == ("▐ ▌ override cache", "▐X▌ spatial refine")
        override.focus()
        await pilot.press("space")
        await wait_until(pilot, lambda: override.value)
        await pilot.pause()
        assert drawn(override) == "▐X▌ override cache"
        refine.focus()
        await pilot.press("space")
        await wait_until(pilot, lambda: not refine.value)
        await pilot.pause()
        assert drawn(refine) == "▐ ▌ spatial refine"
