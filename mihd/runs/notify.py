"""Reaching the researcher who is not watching: a run's late, overrun, failed or done, told to the hooks
of notify.json (notify_config.py), once per run.

`deliver(run_dir, event)` is called by whoever decides an event: the run's supervisor at its end, the
watch loop for late/overrun, a watcher for an end no supervisor saw. It never raises and never waits:
it claims the event with an O_EXCL file in the run dir (`.notify-<event>`, which holds on the NFS-like
storage the run dirs sit on, where SQLite does not), so one caller fires it however many supervisors,
watchers or hosts see it; then a notifier process of its own session (`python -m mihd.runs.notify
RUN_DIR`, the event on stdin) runs the hooks side by side, each killed after its timeout, and appends
each outcome to the run's events.jsonl as a `notify` event {"event", "hook", "ok", "said", "seconds"}.
A part of a fanned-out grid fires nothing: its grid speaks for it, but for a cell's own `late` (its Slurm task's
time limit, which its grid cannot foresee), told once per cell through its grid (the event names the cell); nor
does another user's run seen by this user's watcher in a lab's shared workspace (its owner's supervisor and
watchers tell it, to the owner's hooks). `suppress(run_dir, event)` takes the claim without firing (a run
killed on purpose by `mihd runs kill` is no news to its killer).
Standard library only: the supervisor imports it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..rundir import EventLog
from ..identity import MARKER_VAR
from .fanout import grid_of_cell
from .notify_command import run_command
from .notify_config import Hook, hooks_for, read_hooks
from .notify_event import EVENTS, complete, end_event
from .notify_smtp import probe, send_mail

CLAIM = ".notify-{}"
SETTLE_S = 45.0  # how long a supervisor waits for its notifier before it exits
_pending: list[subprocess.Popen] = []


def deliver(run_dir: Path, event: dict) -> None:
    """Fire `event` ({"event": late|overrun|failed|done, ...: notify_event.FIELDS}) for the run, once."""
    try:
        run_dir = Path(run_dir)
        name = event.get("event")
        speaker = (grid_of_cell(run_dir) if name == "late" else None) or run_dir
        if name not in EVENTS or speaker.parent.name != "runs" or run_dir.stat().st_uid != os.getuid():
            return  # a grid's part (its grid speaks for it), or another lab member's run (their hooks, not ours)
        if hooks_for(speaker.parent.parent, name) and _claim(run_dir, name, "deliver"):
            _spawn(speaker, event)
    except Exception:  # a notification must never hurt the run nor its caller
        pass


def suppress(run_dir: Path, event: str, by: str) -> None:
    """Take `event`'s claim so that no one fires it."""
    try:
        _claim(Path(run_dir), event, by)
    except OSError:
        pass


def _claim(run_dir: Path, event: str, by: str) -> bool:
    """True for the one caller that creates the claim file; False when it exists or cannot be made."""
    try:
        fd = os.open(run_dir / CLAIM.format(event), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError:
        return False
    with os.fdopen(fd, "w") as fh:
        json.dump({"by": by, "host": socket.gethostname(), "pid": os.getpid(), "t": round(time.time(), 3)}, fh)
    return True


def _spawn(run_dir: Path, event: dict) -> None:
    env = {k: v for k, v in os.environ.items() if k != MARKER_VAR}  # not one of the run's processes
    pkg_parent = str(Path(__file__).resolve().parents[2])  # importable from "/" too, installed or not
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen([sys.executable, "-m", __name__, str(run_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/", env=env,
                            start_new_session=True, close_fds=True)
    with proc.stdin:
        proc.stdin.write(json.dumps(event, default=str).encode())
    _pending.append(proc)
    threading.Thread(target=proc.wait, daemon=True).start()  # reaped, in a long-lived caller too


def settle(timeout: float) -> None:
    """Wait up to `timeout` s for the notifier processes this process started: a caller about to end
    (a Slurm job's supervisor, whose processes Slurm kills with the job) lets them finish first."""
    deadline = time.monotonic() + timeout
    for proc in _pending:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return


def notify_end(run_dir: Path, ended: dict) -> None:
    """A supervisor's last word (exit.json written): fire `done`/`failed` and let the hooks finish before it
    exits, since a Slurm job's processes end with it."""
    deliver(run_dir, end_event(run_dir, ended))
    settle(SETTLE_S)


def check(root: Path, ask_servers: bool = True) -> tuple[list[Hook], list[str]]:
    """(the usable hooks, one line per problem): the config's, and with `ask_servers` each mail server that
    would not take mail now (down, refusing, TLS or login failing; a few seconds at most each)."""
    hooks, problems = read_hooks(root)
    for hook in hooks if ask_servers else []:
        said = hook.smtp and probe(hook.smtp, timeout=3.0)
        if said:
            problems.append(f"{hook.source}: {hook.name}: {said}")
    return hooks, problems


def run_hook(hook: Hook, event: dict) -> tuple[bool, str]:
    if hook.command:
        return run_command(hook.command, event, hook.timeout)
    return send_mail(hook.smtp, event, hook.timeout)


def send(hooks: list[Hook], event: dict) -> list[dict]:
    """Run every hook at once; one outcome each {"hook", "source", "ok", "said", "seconds"}, in hook order.
    A hook whose own timeout could not stop it (a mail server that stalls between replies) is left behind
    after a further grace and said so."""
    outcomes: list[dict | None] = [None] * len(hooks)

    def one(i: int, hook: Hook) -> None:
        start = time.monotonic()
        try:
            ok, said = run_hook(hook, event)
        except Exception as exc:
            ok, said = False, f"{type(exc).__name__}: {exc}"
        outcomes[i] = {"hook": hook.name, "source": hook.source, "ok": ok, "said": said,
                       "seconds": round(time.monotonic() - start, 2)}

    threads = [threading.Thread(target=one, args=(i, h), daemon=True) for i, h in enumerate(hooks)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t, hook in zip(threads, hooks):  # they run side by side: each waited for until its own deadline
        t.join(max(0.0, start + hook.timeout + 10 - time.monotonic()))
    return [o or {"hook": h.name, "source": h.source, "ok": False, "said": f"no answer after {h.timeout:g} s",
                  "seconds": None} for o, h in zip(outcomes, hooks)]


def notify_now(run_dir: Path, event: dict) -> list[dict]:
    """Complete the event from the run dir, run its hooks, log each outcome in events.jsonl."""
    event = complete(run_dir, event)
    outcomes = send(hooks_for(Path(run_dir).parent.parent, event["event"]), event)
    log = EventLog(run_dir)
    try:
        for outcome in outcomes:
            log.emit("notify", event=event["event"], **outcome)
    finally:
        log.close()
    return outcomes


def main(args: list[str]) -> int:
    if len(args) != 1:
        print("usage: python -m mihd.runs.notify RUN_DIR < event.json", file=sys.stderr)
        return 2
    event = json.loads(sys.stdin.read())
    notify_now(Path(args[0]), event)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
