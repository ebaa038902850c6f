"""Shared pieces of the notification tests: a recording command hook, a workspace's notify.json, a real
SMTP server on localhost (aiosmtpd) that keeps what it receives."""

import json
import socket
import sys
from email import message_from_bytes
from pathlib import Path

# A hook that appends what it was given (stdin, MIHD_EVENT_* variables) as one JSON line to argv[1].
RECORD = ("import json, os, sys; got = {'stdin': json.loads(sys.stdin.read()), 'env': {k: v for k, v in "
          "os.environ.items() if k.startswith('MIHD_EVENT_')}}; open(sys.argv[1], 'a').write(json.dumps(got) + '\\n')")


def recorder(out: Path) -> list[str]:
    return [sys.executable, "-c", RECORD, str(out)]


def recorded(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def write_hooks(root: Path, hooks: list) -> None:
    Path(root).mkdir(parents=True, exist_ok=True)
    (Path(root) / "notify.json").write_text(json.dumps(hooks))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """aiosmtpd's handler: every message it accepts, parsed; `refuse` answers DATA with that reply."""

    def __init__(self, refuse: str | None = None):
        self.messages, self.refuse = [], refuse

    async def handle_DATA(self, server, session, envelope):
        if self.refuse:
            return self.refuse
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def smtp_server(handler, **kw):
    """A started aiosmtpd Controller on 127.0.0.1 (stop() it)."""
    from aiosmtpd.controller import Controller

    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kw)
    controller.start()
    return controller
