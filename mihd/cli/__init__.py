"""`mihd`: the command line. Each subcommand group lives in its own module with a `register(sub)`.

Errors a researcher can cause print as one line with exit code 2, never a traceback nor the usage block:
a MihdError as `mihd: error: ...`, a malformed command line as `mihd run: --n-clusters: invalid int value: 'abc'`
(`Parser.error`, which every subcommand's parser inherits), and a write refused by a full or read-only disk that
a command did not word itself as `mihd: error: FILE: No space left on device`. Heavy libraries are imported inside the handlers,
so `mihd cache ls` and `mihd runs ls` stay fast.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys

from ..compute import quiet_waiting
from ..env_values import check as check_environment
from ..errors import MihdError
from . import (cache_cmd, doctor_cmd, export_cmd, extract_cmd, launch_cmd, notify_cmd, results_cmd, run_cmd, runs_cmd,
               slices_cmd)
from .common import one_line
from .parser import Parser

quiet_waiting()  # before any handler loads numpy or torch: their worker threads sleep when idle, sized to our cores

DISK_REFUSALS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)  # the disk's answer, not a bug: one line, no traceback
GROUPS = (slices_cmd, extract_cmd, cache_cmd, run_cmd, launch_cmd, runs_cmd, results_cmd, export_cmd, doctor_cmd,
          notify_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mihd", description="Multimodal histology + gene domain finding.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_environment()
        return int(args.handler(args) or 0)
    except MihdError as exc:
        print(f"mihd: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader left (`mihd runs ls | head`): stop quietly, as a Unix tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush finds no pipe to break
        return 0
    except OSError as exc:
        if exc.errno not in DISK_REFUSALS:
            raise
        print(f"mihd: error: {one_line(exc.filename or '')}: {exc.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mihd: interrupted", file=sys.stderr)
        return 130
