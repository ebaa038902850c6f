"""The RunWatcher a `mihd runs` command reads through: opened on the workspace, closed at the end, and what
the registry healed or rebuilt on the way said on stderr, one line each. Run control is imported on use, so
building the parser costs nothing."""

from __future__ import annotations

import sys
from contextlib import contextmanager


@contextmanager
def watching(root, factor: float | None = None):
    from ..runs.status import RunWatcher

    w = RunWatcher(root, factor=factor)
    try:
        yield w
    finally:
        for note in w.notes:
            print(f"mihd: {note}", file=sys.stderr)
        w.close()
