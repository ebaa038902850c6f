"""`mihd results`: the grid's scores as one table, CSV, Markdown or JSON (mihd.results)."""

from __future__ import annotations

import sys


def register(sub) -> None:
    from .common import add_root

    p = sub.add_parser("results", help="scores of every cell: ARI/NMI (mean ± sd over seeds and runs), time, cache",
                       description="One row per cell (slice, gene, vision, variant, fusion, clusterer, k, refine). "
                                   "Several scores (seeds, or runs with --all) show as mean ± sd with their number n.")
    p.add_argument("--slice", help="only this slice")
    p.add_argument("--run", dest="runs", action="extend", nargs="+", metavar="ID",
                   help="only these runs (ids, id prefixes or names)")
    p.add_argument("--format", default="table", help="table (default), csv, markdown or json")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--latest", dest="source", action="store_const", const="latest",
                       help="the latest run of each cell (default)")
    which.add_argument("--all", dest="source", action="store_const", const="all",
                       help="every run of each cell, pooled")
    add_root(p)
    p.set_defaults(handler=cmd_results, source="latest")


def cmd_results(args) -> int:
    from ..errors import MihdError
    from ..results import FORMATS, aggregate, collect, render

    if args.format not in FORMATS:
        raise MihdError(f"--format {args.format!r}: not one of {', '.join(FORMATS)}")
    sys.stdout.write(render(aggregate(collect(args.root, args.slice, args.runs), args.source), args.format))
    return 0
