"""How the dashboard looks, at 80x24 and 200x50 (SVG snapshots; update with --snapshot-update).

The workspace is frozen: a fixed root path, one finished run with fixed id, times and result, no cache,
no live runs, no encoder weights and a GPU-less NVML, so every frame is the same on every machine and day.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mihd_tui.app import MihdApp
from mihd_tui.widgets.grid_table import GridTable
from tui_helpers import frozen_run, kept_view, no_gpu, wait_until

ROOT = Path("/tmp/mihd-tui-snapshot-ws")


@pytest.fixture
def frozen_root(monkeypatch):
    monkeypatch.setenv("MIHD_WEIGHTS", str(ROOT / "no-weights"))  # no pretrained weights anywhere: the same
    monkeypatch.setenv("HF_HUB_CACHE", str(ROOT / "no-hf-cache"))  # `⊘` cells on every machine
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    frozen_run(ROOT)
    yield ROOT
    shutil.rmtree(ROOT, ignore_errors=True)


def make_app(root):
    kept_view(root)
    return MihdApp(root, interval=3600, gpu=no_gpu(), setup_demo=False)


async def _main_ready(pilot):
    await wait_until(pilot, lambda: pilot.app.snapshot is not None and pilot.app.screen.query(GridTable)
                     and pilot.app.screen.query_one(GridTable).grid is not None)
    table = pilot.app.screen.query_one(GridTable)
    table.move_cursor(row=table.grid.rows.index("concat"), column=table.grid.columns.index("texture"))
    await pilot.pause(0.3)


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_main_screen(snap_compare, frozen_root, size):
    assert snap_compare(make_app(frozen_root), terminal_size=size, run_before=_main_ready)


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_run_detail_with_spatial_map(snap_compare, frozen_root, size):
    async def before(pilot):
        await _main_ready(pilot)
        await pilot.press("o")
        await wait_until(pilot, lambda: "ARI" in str(pilot.app.screen.query_one("#pred-title").render()))
        await pilot.pause(0.3)

    assert snap_compare(make_app(frozen_root), terminal_size=size, run_before=before)


def _then_press(key: str, settle: float):
    """run_before: the main screen ready, then `key`, then `settle` seconds for the screen it opens."""
    async def before(pilot):
        await _main_ready(pilot)
        await pilot.press(key)
        await pilot.pause(settle)

    return before


def test_launch_dialog_80x24(snap_compare, frozen_root):
    assert snap_compare(make_app(frozen_root), terminal_size=(80, 24), run_before=_then_press("enter", 0.5))


def test_help_80x24(snap_compare, frozen_root):
    assert snap_compare(make_app(frozen_root), terminal_size=(80, 24), run_before=_then_press("question_mark", 0.3))
