"""The event a hook is given: its fields, completed from the run dir, and its one-line summary.

Whoever decides an event (a supervisor, a watcher, the watch loop) knows little beyond its name and the
run's state; the rest (label, expected and elapsed time, why it failed) is read from the run dir here, in
the notifier process, so the deciders stay light. Every field is plain data: a label or an error reaches
a hook only as a JSON value or an environment variable, never through a shell.
"""

from __future__ import annotations

import socket
import time
from dataclasses import replace
from pathlib import Path

from ..jsonio import read_json
from ..present import fmt_duration
from ..rundir import EXIT, HANDLE, PROC, RESULT, read_spec

EVENTS = ("late", "overrun", "failed", "done")  # what a hook's "on" may name; `done` fires only where listed
TEST = "test"                                   # `mihd notify test`: every hook, no claim
FIELDS = ("event", "run_id", "label", "state", "reason", "elapsed_s", "expected_s", "projected_s", "host")


def complete(run_dir: Path, event: dict) -> dict:
    """`event` with every FIELDS key and "run_dir", the missing ones read from the run dir's files."""
    run_dir = Path(run_dir)
    spec = read_spec(run_dir) or {}
    plan = spec.get("plan")
    proc, ended = read_json(run_dir / PROC) or {}, read_json(run_dir / EXIT) or {}
    started = proc.get("started") if isinstance(proc, dict) else None
    end = ended.get("ended") if isinstance(ended, dict) else None
    found = {
        "run_id": spec.get("id") or run_dir.name,
        "label": plan.label if plan is not None else run_dir.name,
        "expected_s": spec.get("expect"),
        "elapsed_s": round((end or time.time()) - started, 1) if isinstance(started, (int, float)) else None,
        "reason": _reason(run_dir, ended) if event.get("event") == "failed" else None,
        "host": socket.gethostname(),
        "state": event.get("event"),
        "projected_s": None,
    }
    filled = {k: event[k] if event.get(k) is not None else found.get(k) for k in FIELDS}
    return {**event, **filled, "run_dir": str(run_dir)}


def _reason(run_dir: Path, ended: dict) -> str | None:
    """Why a run failed in its own words: the result's error, exit.json's, else how its command ended."""
    result = read_json(run_dir / RESULT)
    if isinstance(result, dict) and isinstance(result.get("error"), str):
        return result["error"]
    if not isinstance(ended, dict) or not ended:
        return None
    if isinstance(ended.get("error"), str):
        return ended["error"]
    if ended.get("signal"):
        return _outcome_note(ended) or _slurm_words(run_dir, ended) or f"ended by signal {ended['signal']}"
    return f"exit code {ended.get('code')}"


def _slurm_words(run_dir: Path, ended: dict) -> str | None:
    """For a Slurm job a signal ended, Slurm's own account, asked from the job as it ends: `killed by Slurm:
    time limit 2:00:00 reached`, `cancelled outside mihd (scancel)`; else None. Slurm's state is not final
    while the job's processes (this one too) still run: COMPLETING with reason TimeLimit is a time limit, and
    with no reason, for a TERM Slurm forwarded to the supervisor, a cancel."""
    handle = read_json(run_dir / HANDLE)
    if not isinstance(handle, dict) or handle.get("backend") != "slurm" or not handle.get("job_id"):
        return None
    from .backends.slurm_commands import SlurmCommands
    from .backends.slurm_words import ended_note

    try:
        info = SlurmCommands().show_job(str(handle["job_id"]))
    except Exception:  # slurmctld not answering: the signal says what is known
        return None
    if info is not None and info.state == "COMPLETING" and ended.get("forwarded"):
        state = {"TimeLimit": "TIMEOUT", None: "CANCELLED"}.get(info.reason, info.state)
        info = replace(info, state=state)
    return ended_note(info, run_dir) if info is not None and info.state in ("TIMEOUT", "CANCELLED") else None


def summary(event: dict) -> str:
    """One line: `run 'demo pca concat gmm' failed: out of memory (after 4m02s)`; a late run's reason says
    what it will do (`run 'x' will hit its time limit 2:00:00 (projected 2:40:00)`)."""
    what = {"late": "will overrun", "overrun": "overran", "failed": "failed", "done": "done",
            TEST: "test notification"}.get(event.get("event"), str(event.get("event")))
    line = f"run {event.get('label') or event.get('run_id')!r} "
    if event.get("event") == "late" and event.get("reason"):
        line += event["reason"]
    else:
        line += what + (f": {event['reason']}" if event.get("reason") else "")
    if isinstance(event.get("elapsed_s"), (int, float)):
        still = event.get("event") in ("late", "overrun")
        line += f" ({'running for' if still else 'after'} {fmt_duration(event['elapsed_s'])})"
    return line


def end_event(run_dir: Path, ended: dict) -> dict:
    """The event of a run's end as its supervisor saw it (exit.json's `ended`): `done` for exit 0 with a
    result that did not fail, else `failed`; its state `killed` when a signal ended it, but for Slurm's time
    limit (exit.json's `outcome`, end_window.py), which `mihd runs show` reads failed too."""
    result = read_json(Path(run_dir) / RESULT)
    failed = isinstance(result, dict) and result.get("status") == "failed"
    if ended.get("code") == 0 and not failed:
        return {"event": "done", "state": "done"}
    if _outcome_note(ended):
        return {"event": "failed", "state": "failed"}
    return {"event": "failed", "state": "killed" if ended.get("signal") or ended.get("forwarded") else "failed"}


def _outcome_note(ended: dict) -> str | None:
    """Who ended the run, where its supervisor knew it (`killed by Slurm: time limit 0:01:00 reached`)."""
    outcome = ended.get("outcome") if isinstance(ended, dict) else None
    note = outcome.get("note") if isinstance(outcome, dict) else None
    return note if isinstance(note, str) else None


def told(events) -> list[dict]:
    """What a run's hooks were told, from its events (a `notify` event per hook and event, notify.notify_now),
    so a researcher who got no mail can see whether it went and why not: {"t", "event", "hook", "source",
    "ok", "said", "seconds"} each, in time order; a line not of that shape is left out."""
    out = [{k: e.get(k) for k in ("t", "event", "hook", "source", "ok", "said", "seconds")} for e in events
           if isinstance(e, dict) and e.get("kind") == "notify" and type(e.get("t")) in (int, float)]
    return sorted(out, key=lambda o: o["t"])


def told_line(outcome: dict) -> str:
    """`2026-05-04 03:12:09  failed  mail to me@lab.org via smtp.lab.org:25: not sent: 530 login needed`."""
    try:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(outcome["t"]))
    except (OverflowError, OSError, ValueError):  # a hand-edited time no clock can show
        when = f"t={outcome['t']}"
    how = "sent" if outcome.get("ok") is True else f"not sent: {outcome.get('said') or 'no reason given'}"
    return f"{when}  {outcome.get('event')}  {outcome.get('hook')}: {how}"
