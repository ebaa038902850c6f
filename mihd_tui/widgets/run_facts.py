"""What a run was and how it ended, for the run detail: the command it ran (copyable as shown), the plan as a
`mihd` command line, its backend handle (pid or job id, host), why it ended, for a killed run who killed it,
and what its alerts were told (each hook's outcome: sent, or why not)."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from textual.widgets import Static

from mihd.rundir import read_events, read_spec
from mihd.runs.notify_event import told, told_line
from mihd.runs.status import RunView

from ..text import plain, say


def exit_reason(v: RunView) -> str:
    """Why the run ended, in a few words ("-" while it has not)."""
    if v.active:
        return f"- (still {v.status})"
    parts = [f"ended by signal {v.exit_signal}" if v.exit_signal else
             f"exit code {v.exit_code}" if v.exit_code is not None else v.status]
    parts += [p for p in (v.error, v.reason) if p]
    return "; ".join(dict.fromkeys(parts))


def handle(v: RunView) -> str:
    where = f"job {v.job_id}" if v.job_id else f"pid {v.pid}" if v.pid else "no process recorded"
    return f"{v.backend}, {where}" + (f" on {v.host}" if v.host else "")


def _stamp(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


class RunFacts(Static):
    DEFAULT_CSS = "RunFacts { height: auto; padding: 0 1; }"

    def __init__(self, **kw) -> None:
        super().__init__("", **kw)
        self._commands: dict[str, tuple[str, str]] = {}  # run id -> (command, plan as mihd arguments)
        self._told: dict[str, tuple[int, list[dict]]] = {}  # run id -> (events.jsonl read up to, its notify outcomes)

    def _read_commands(self, v: RunView) -> tuple[str, str]:
        if v.id not in self._commands:
            from mihd.plan import plan_argv

            spec = read_spec(Path(v.run_dir)) or {}
            argv = spec.get("argv") if isinstance(spec.get("argv"), list) else []
            plan = spec.get("plan")
            self._commands[v.id] = (shlex.join(map(str, argv)) or "-",
                                    "mihd " + shlex.join(plan_argv(plan)) if plan is not None else "-")
        return self._commands[v.id]

    def _read_told(self, v: RunView) -> list[dict]:
        """The run's notify outcomes; events.jsonl read on from where the last look stopped, not again whole."""
        offset, seen = self._told.get(v.id, (0, []))
        events, offset = read_events(Path(v.run_dir), offset)
        self._told[v.id] = offset, seen + told(events)
        return self._told[v.id][1]

    def forget(self) -> None:
        """Blank, until the next run opened is shown."""
        say(self, "")

    def show(self, v: RunView) -> None:
        command, plan = self._read_commands(v)
        rows = [("command", command), ("plan", plan), ("backend", handle(v)), ("exit", exit_reason(v))]
        if v.killed_at or v.kill_signal:
            who = v.killed_by or "unknown"
            rows.append(("killed", f"with {v.kill_signal or '?'} by {who} at {_stamp(v.killed_at)}"))
        rows += [("" if i else "notified", told_line(o)) for i, o in enumerate(self._read_told(v))]
        say(self, "\n".join(f"[b]{k:>8}[/]  {plain(val)}" for k, val in rows))  # a run's words
