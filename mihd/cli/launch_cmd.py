"""`mihd launch [options] -- run|grid ARGS`: start a run or grid as a detached, supervised run.

The arguments after `--` are read by the very parser of `mihd run`/`mihd grid` and become a RunSpec
(`run_cmd.plan_from_args`), checked before anything starts; the launched process runs that RunSpec from
its run dir's spec.json. Backend options come from the backends' declarations.
"""

from __future__ import annotations

import argparse

LAUNCH_EPILOG = """\
The arguments of `mihd run` or `mihd grid` follow the launch options, best after `--`:
  mihd launch --expect 5m --name first -- run demo --gene pca --vision texture --fusion concat
  mihd launch -- grid demo --gene pca --vision texture,resnet50 --fusion concat,mean
  mihd launch --parallel 2 -- grid demo ...          (the cells as 2 worker processes, side by side)
  mihd launch --backend slurm --max-parallel 8 -- grid demo ...   (extraction jobs, then one job array)
Launch gives the run its own run dir under --root, prints the run id and returns at once; the run goes on
after this shell, SSH link or dashboard is gone. Watch it with `mihd runs ls`, stop it with
`mihd runs kill ID` (one cell of a fanned-out grid: `mihd runs kill ID/N`)."""


def register(sub) -> None:
    from ..runs.backends import add_option_arguments
    from .common import add_root

    p = sub.add_parser("launch", help="start `mihd run`/`mihd grid` as a detached, supervised run",
                       epilog=LAUNCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="local", help="where it runs: a backend name (default: local)")
    p.add_argument("--expect", metavar="DURATION",
                   help="expected duration (90s, 5m, 1h30m); past it the run is flagged overrunning")
    p.add_argument("--name", help="a name to show instead of the cell")
    add_option_arguments(p)
    add_root(p)
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="run|grid ARGS",
                   help="the arguments of `mihd run` or `mihd grid`")
    p.set_defaults(handler=cmd_launch)


def _run_args(command: list[str]) -> argparse.Namespace:
    """`run ...`/`grid ...` read by the parser `mihd run`/`mihd grid` declare (run_cmd.register); its complaint
    becomes one MihdError line."""
    import contextlib
    import io

    from ..errors import MihdError
    from .parser import Parser
    from .run_cmd import register

    if command[0] not in ("run", "grid"):
        raise MihdError("mihd launch: expected `run ...` or `grid ...` after the launch options, "
                        "e.g. mihd launch --expect 5m -- run demo --gene pca --fusion concat")
    parser = Parser(prog="mihd")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = parser.parse_args(command)
    except SystemExit:
        reason = (stderr.getvalue().strip().splitlines() or ["invalid arguments"])[-1]
        where = "mihd launch -- " + reason[5:] if reason.startswith("mihd ") else f"mihd launch: {reason}"
        raise MihdError(where) from None  # `mihd launch -- run: --n-clusters: invalid int value: 'abc'`
    for flag in ("run_dir", "root"):
        if getattr(args, flag):
            raise MihdError(f"mihd launch: --{flag.replace('_', '-')} is set by launch; give --root before the command")
    return args


def cmd_launch(args) -> int:
    from ..errors import MihdError
    from ..runs.backends import options_from_args
    from ..runs.durations import parse_duration
    from ..runs.launch import launch
    from ..workspace import resolve_root
    from .run_cmd import plan_from_args
    from .notify_cmd import warn_config

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise MihdError("mihd launch: missing the command; e.g. mihd launch -- run demo --gene pca")
    options = options_from_args(args.backend, args)
    expect = parse_duration(args.expect) if args.expect is not None else None
    run_args = _run_args(command)
    root = resolve_root(args.root)
    warn_config(root, probe=True)  # a hook that cannot work is said now, not found out when the run fails
    plan = plan_from_args(run_args, root, backend=args.backend, backend_options=options, expect=expect,
                          name=args.name)
    print(launch(root, plan))
    return 0
