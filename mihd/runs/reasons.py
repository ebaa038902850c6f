"""Why a run ended, in the words `mihd runs show` and the dashboard use, when its own files give no error.

A command ended by a signal that no one in mihd sent (no kill event, nothing forwarded: the kernel's OOM
killer, a segfault, someone's `kill -9`) left no result nor error, so its exit.json's signal is the only why.
"""

from __future__ import annotations

GUESSES = {"KILL": "out of memory?"}  # what a signal no one in mihd sent most likely was


def signal_reason(sig: str) -> str:
    """`killed by KILL (not by mihd: out of memory?)`, `killed by SEGV (not by mihd)`."""
    guess = GUESSES.get(sig)
    return f"killed by {sig} (not by mihd{': ' + guess if guess else ''})"


def failure_reason(row: dict) -> str | None:
    """A registry row's error; for a failed run that said nothing but ended by a signal, which one."""
    if row.get("error") or row.get("status") != "failed" or not row.get("exit_signal") or row.get("kill_signal"):
        return row.get("error")
    return signal_reason(row["exit_signal"])
