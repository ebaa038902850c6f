"""`mihd doctor`: the workspace's file system, free space, writability, Slurm, GPUs, torch and encoders."""

from __future__ import annotations

from .common import add_root, print_json

MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


def register(sub) -> None:
    p = sub.add_parser("doctor", help="check this host and workspace: file system, space, Slurm, GPUs, weights")
    p.add_argument("--json", action="store_true")
    add_root(p)
    p.set_defaults(handler=cmd_doctor)


def cmd_doctor(args) -> int:
    from ..doctor import as_dicts, run_checks
    from ..workspace import resolve_root

    root = resolve_root(args.root, create=False)
    checks = run_checks(root)
    if args.json:
        print_json(as_dicts(checks))
    else:
        width = max(len(c.name) for c in checks)
        print(f"workspace {root}")
        for c in checks:
            print(f"{MARK[c.level]}  {c.name.ljust(width)}  {c.detail}")
    failed = [c.name.strip() for c in checks if c.level == "fail"]
    if failed and not args.json:
        print(f"blocked: {', '.join(failed)}")
    return 1 if failed else 0
