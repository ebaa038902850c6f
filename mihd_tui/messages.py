"""Messages that worker threads post back to the UI thread."""

from __future__ import annotations

from textual.message import Message

from .poller import Snapshot


class SnapshotReady(Message):
    """A fresh view of runs, grid, cache and GPUs from the polling thread."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class LogLines(Message):
    """New lines of a run's log (a batch), and how many bytes were skipped to keep up."""

    def __init__(self, run_id: str, lines: list[str], skipped: int = 0) -> None:
        super().__init__()
        self.run_id, self.lines, self.skipped = run_id, lines, skipped


class Notice(Message):
    """A one-line outcome of a background action (launch, kill, demo setup) to show to the user."""

    def __init__(self, text: str, severity: str = "information", wake: bool = True) -> None:
        super().__init__()
        self.text, self.severity, self.wake = text, severity, wake
