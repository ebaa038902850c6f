"""Which hooks hear which events: `<root>/notify.json` and the user's `~/.config/mihd/notify.json`, both.

Each file is a JSON list of hooks, `{"on": ["late", "overrun", "failed", "done"], "command": [argv...]}` or
`{"on": [...], "smtp": {"host", "port", "from", "to", "starttls"?, "user"?, "password_file"?}}`, with an
optional "timeout" (seconds, default TIMEOUT_S). A file or hook that cannot be used is one problem line
(the CLI's `mihd: warning:`, the dashboard's notice, `mihd doctor`) and is left out; runs go on regardless.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..workspace import _load
from .notify_event import EVENTS

TIMEOUT_S = 30.0  # a hook still running after this is killed (its outcome logged as such)
SMTP_KEYS = {"host": str, "port": int, "from": str, "to": (str, list), "starttls": bool, "user": str,
             "password_file": str}


@dataclass(frozen=True)
class Hook:
    on: tuple[str, ...]
    command: tuple[str, ...] = ()
    smtp: dict = field(default_factory=dict, hash=False)
    timeout: float = TIMEOUT_S
    source: str = ""  # `<file> hook N`

    @property
    def name(self) -> str:
        """`command notify-send`, `mail to a@lab.org via smtp.lab.org:587`."""
        if self.command:
            return f"command {Path(self.command[0]).name}"
        to = self.smtp["to"]
        return f"mail to {', '.join(to) if isinstance(to, list) else to} via {self.smtp['host']}:{smtp_port(self.smtp)}"


def smtp_port(smtp: dict) -> int:
    return smtp.get("port") or (587 if smtp.get("starttls") else 25)


def workspace_file(root: Path) -> Path:
    return Path(root) / "notify.json"


def user_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "mihd" / "notify.json"


def read_hooks(root: Path) -> tuple[list[Hook], list[str]]:
    """(the usable hooks of both files, one line per problem)."""
    hooks, problems = [], []
    for file in (workspace_file(root), user_file()):
        data, problem = _load(file)
        if problem:
            problems.append(problem)
        elif data is not None and not isinstance(data, list):
            problems.append(f"{file}: expected a JSON list of hooks; ignored")
        elif data is not None:
            for n, entry in enumerate(data, 1):
                hook, said = _hook(entry, f"{file} hook {n}")
                hooks += [hook] if hook else []
                problems += [f"{file} hook {n}: {said}"] if said else []
    return hooks, problems


def hooks_for(root: Path, event: str) -> list[Hook]:
    """The hooks that hear `event` (`test`: all of them)."""
    return [h for h in read_hooks(root)[0] if event == "test" or event in h.on]


def _hook(entry, source: str) -> tuple[Hook | None, str | None]:
    """(the hook, or None when unusable; the problem to say, if any: a missing command is said but kept,
    since it may be installed later and its failure is logged each time)."""
    if not isinstance(entry, dict):
        return None, "expected an object"
    on = entry.get("on")
    if not isinstance(on, list) or not on or any(e not in EVENTS for e in on):
        return None, f'"on": expected a list of {", ".join(EVENTS)}, found {on!r}; ignored'
    timeout = entry.get("timeout", TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        return None, f'"timeout": expected a positive number of seconds, found {timeout!r}; ignored'
    kinds = [k for k in ("command", "smtp") if k in entry]
    if len(kinds) != 1:
        unknown = sorted(set(entry) - {"on", "timeout"})
        return None, f"unknown hook kind {', '.join(unknown) or '(none)'}: expected \"command\" or \"smtp\"; ignored"
    if kinds == ["command"]:
        argv = entry["command"]
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and a for a in argv):
            return None, '"command": expected a list of words (program first, no shell); ignored'
        hook = Hook(tuple(on), command=tuple(argv), timeout=float(timeout), source=source)
        return hook, None if shutil.which(argv[0]) else f"command {argv[0]!r} not found (or not executable)"
    smtp = entry["smtp"]
    problem = _smtp_problem(smtp)
    if problem:
        return None, f'"smtp": {problem}; ignored'
    return Hook(tuple(on), smtp=dict(smtp), timeout=float(timeout), source=source), _password_problem(smtp)


def _smtp_problem(smtp) -> str | None:
    if not isinstance(smtp, dict):
        return "expected an object"
    for key in ("host", "from", "to"):
        if key not in smtp:
            return f"{key!r} missing"
    for key, value in smtp.items():
        wanted = SMTP_KEYS.get(key)
        if wanted is None:
            return f"unknown field {key!r} (expected {', '.join(SMTP_KEYS)})"
        if not isinstance(value, wanted) or isinstance(value, bool) and wanted is not bool:
            return f"{key!r}: wrong type ({type(value).__name__})"
    if isinstance(smtp["to"], list) and not (smtp["to"] and all(isinstance(a, str) for a in smtp["to"])):
        return "'to': expected an address or a list of addresses"
    if ("user" in smtp) != ("password_file" in smtp):
        return "'user' and 'password_file' go together"
    return None


def _password_problem(smtp: dict) -> str | None:
    """A password file that cannot be read (the mail will fail) or that others may read (it works, but says so)."""
    if "password_file" not in smtp:
        return None
    path = Path(smtp["password_file"]).expanduser()
    try:
        mode = path.stat().st_mode
        path.read_text()
    except OSError as exc:
        return f"password_file {str(path)!r}: {exc.strerror or exc}"
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"password_file {str(path)!r}: readable by others (chmod 600 it)"
    return None
