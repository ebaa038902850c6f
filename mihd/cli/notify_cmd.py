"""`mihd notify test`: send a test event through every configured hook and say what each did.

Hooks are read from `<root>/notify.json` and `~/.config/mihd/notify.json` (mihd.runs.notify_config); what
is wrong with them is said first as `mihd: warning:` lines, as at launch (`warn_config`).
"""

from __future__ import annotations

import socket

from .common import add_root, one_line


def register(sub) -> None:
    p = sub.add_parser("notify", help="notifications of late, overrunning, failed and done runs (notify.json)")
    nsub = p.add_subparsers(dest="notify_command", required=True, metavar="ACTION")
    test = nsub.add_parser("test", help="send a test event through every configured hook; one line each")
    add_root(test)
    p.set_defaults(handler=cmd_notify)


def warn_config(root, probe: bool = False) -> list:
    """Say each problem of the notify config once (`mihd: warning:`); `probe` also asks each mail server
    whether it would take mail now (a few seconds at most). Returns the usable hooks."""
    from ..runs.notify import check
    from ..workspace import warn_once

    hooks, problems = check(root, ask_servers=probe)
    for line in problems:
        warn_once(line)
    return hooks


def cmd_notify(args) -> int:
    from ..runs.notify import send
    from ..runs.notify_config import user_file, workspace_file
    from ..runs.notify_event import FIELDS, TEST
    from ..workspace import resolve_root

    root = resolve_root(args.root, create=False)
    hooks = warn_config(root)
    if not hooks:
        print(f"no hooks configured: write {workspace_file(root)} or {user_file()} (see the README)")
        return 1
    event = {**dict.fromkeys(FIELDS), "event": TEST, "run_id": "test", "label": "mihd notify test",
             "state": TEST, "reason": "a test of your notification hooks", "host": socket.gethostname()}
    outcomes = send(hooks, event)
    for o in outcomes:
        print(one_line(f"{'ok    ' if o['ok'] else 'FAILED'}  {o['hook']}  ({o['source']}): {o['said']}"))
    return 0 if all(o["ok"] for o in outcomes) else 1
