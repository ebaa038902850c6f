"""`mihd results`: the grid's scores as one table, CSV, Markdown or JSON (mihd.results)."""

from __future__ import annotations

import sys


def register(sub) -> None:
    from .common import add_root

    p = sub.add_parser("results", help="scores of every cell (or, --across-slices, of every combination over slices)",
                       description="One row per cell (slice, gene, vision, variant, fusion, clusterer, k, refine). "
                                   "Several scores (seeds, or runs with --all) show as mean ± sd with their number n.")
    p.add_argument("--slice", help="only this slice")
    p.add_argument("--run", dest="runs", action="extend", nargs="+", metavar="ID",
                   help="only these runs (ids, id prefixes or names)")
    p.add_argument("--format", default="table", help="table (default), csv, markdown or json")
    p.add_argument("--across-slices", action="store_true",
                   help="one row per combination (cell without its slice): mean ± sd of ARI/NMI over the slices "
                        "(seeds averaged within a slice first), n_slices, the worst slice, the rank")
    p.add_argument("--png", metavar="OUT", help="with --across-slices: draw ARI per combination across slices")
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
    if args.across_slices or args.png:
        return _across_slices(args)
    sys.stdout.write(render(aggregate(collect(args.root, args.slice, args.runs), args.source), args.format))
    return 0


def _across_slices(args) -> int:
    from ..errors import MihdError
    from ..study import across_slices, plot, render

    if not args.across_slices:
        raise MihdError(f"--png {args.png}: draws a study; give --across-slices too")
    if args.slice:
        raise MihdError(f"--slice {args.slice}: --across-slices reads every slice; choose runs with --run")
    rows = across_slices(args.root, args.runs, args.source)
    if args.png:
        plot(rows, args.png)
        print(f"wrote {args.png}: ARI of {len(rows)} combinations across slices", file=sys.stderr)
    sys.stdout.write(render(rows, args.format))
    return 0
