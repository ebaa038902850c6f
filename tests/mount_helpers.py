"""Real mounts for the fault tests (root): a tiny tmpfs as a full disk, a read-only bind remount."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def mount(*args: str) -> None:
    """`mount ARGS`, or skip the test with mount's own reason where this machine refuses it."""
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"mount {' '.join(args)} refused here: {proc.stderr.strip()}")


def fill(folder: Path, leave: int) -> None:
    """Fill the file system of `folder` up to `leave` bytes."""
    free = shutil.disk_usage(folder).free
    (folder / "filler").write_bytes(b"\0" * max(free - leave, 0))
