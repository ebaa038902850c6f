"""`mihd run` (one cell), `mihd grid` (the cross product, one process), `mihd refine scan`.

Without --run-dir, a run still gets a run dir of its own under `<root>/runs/` and is indexed in the
registry, so every result can be compared later and shows in the dashboard.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .common import add_encoder_options, add_root, add_slice_options, encoder_config, print_json, print_table


def _common(p) -> None:
    add_slice_options(p)
    add_encoder_options(p)
    p.add_argument("--n-clusters", type=int, help="number of domains (default: the number of truth labels)")
    p.add_argument("--refine", action="store_true", help="smooth labels by a 15-NN spatial majority vote")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--override", action="store_true", help="recompute the embeddings even when cached")
    p.add_argument("--drop-unlabelled", action="store_true",
                   help="leave spots without truth out before fusion (the DLPFC protocol)")
    p.add_argument("--run-dir", help="write events.jsonl and result.json here (set by mihd launch)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    add_root(p)


def register(sub) -> None:
    run = sub.add_parser("run", help="run one cell: embeddings -> fusion -> clusters -> ARI/NMI")
    run.add_argument("--gene", required=True, metavar="G")
    run.add_argument("--vision", metavar="V", help="vision encoder or cache name (e.g. scan_uni2)")
    run.add_argument("--fusion", required=True, metavar="F")
    run.add_argument("--cluster", default="gmm", metavar="C", help="kmeans, gmm (default), leiden")
    _common(run)
    run.set_defaults(handler=cmd_run, grid=False)
    grid = sub.add_parser("grid", help="run the cross product of encoders x fusions x clusterers in one process")
    grid.add_argument("--gene", required=True, metavar="G1,G2")
    grid.add_argument("--vision", metavar="V1,V2", help="comma-separated vision encoders or cache names")
    grid.add_argument("--fusion", required=True, metavar="F1,F2")
    grid.add_argument("--cluster", default="gmm", metavar="C1,C2")
    _common(grid)
    grid.set_defaults(handler=cmd_run, grid=True)
    refine = sub.add_parser("refine", help="refine a cached embedding into a new cache entry")
    methods = refine.add_subparsers(dest="refine_method", required=True)
    scan = methods.add_parser("scan", help="SCAN (k=20 neighbours, entropy weight 5) on a vision embedding")
    add_slice_options(scan)
    scan.add_argument("--vision", required=True, metavar="NAME", help="vision encoder or cache name to refine")
    scan.add_argument("--variant", default="standard")
    scan.add_argument("--cache-name", help="store under this name (default scan_<NAME>)")
    scan.add_argument("--n-clusters", type=int, help="SCAN head width (default: the number of truth labels)")
    scan.add_argument("--seed", type=int, default=0)
    scan.add_argument("--override", action="store_true", help="recompute even when cached")
    add_root(scan)
    scan.set_defaults(handler=cmd_refine_scan)


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _cells(args) -> list:
    """The cells asked for, checked (unknown fusion, clusterer, variant fail here)."""
    from ..pipeline import Cell, check_cells, grid_cells

    if args.grid:
        cells = grid_cells(_split(args.gene), _split(args.vision), _split(args.fusion), _split(args.cluster), args.variant)
    else:
        cells = [Cell(args.gene, args.vision, args.variant, args.fusion, args.cluster)]
    check_cells(cells)
    encoder_config(args)
    return cells


def check_launch_args(command: list[str]) -> None:
    """`mihd launch` checks the run/grid arguments before it starts anything, so a typo is an error now,
    not a failed run a minute later."""
    import contextlib
    import io

    from ..errors import MihdError
    from . import build_parser

    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = build_parser().parse_args(command)
    except SystemExit:
        reason = (stderr.getvalue().strip().splitlines() or ["invalid arguments"])[-1]
        raise MihdError(f"mihd launch: {reason}") from None
    if getattr(args, "handler", None) is not cmd_run:
        raise MihdError("mihd launch: expected `run ...` or `grid ...` after the launch options")
    _cells(args)


def cmd_run(args) -> int:
    from ..data import load_slice
    from ..pipeline import run_cells
    from ..workspace import resolve_root

    cells = _cells(args)
    root = resolve_root(args.root)
    argv = ["grid" if args.grid else "run", *sys.argv[2:]]
    run_dir, direct = _run_dir(root, args.run_dir, argv)
    started = time.time()
    code = 1
    try:
        adata = load_slice(args.slice, root=root, truth_col=args.truth_col, fullres=args.fullres)
        result = run_cells(adata, cells, root=root, run_dir=run_dir, n_clusters=args.n_clusters, refine=args.refine,
                           seed=args.seed, override=args.override, encoder_config=encoder_config(args),
                           drop_unlabelled=args.drop_unlabelled, argv=argv, keep_going=args.grid)
        code = 0 if result["status"] == "ok" else 1
    finally:
        if direct:
            _finish_direct(root, run_dir, code)
    if args.json:
        print_json(_summary(result, run_dir, time.time() - started))
    else:
        _print_summary(result, run_dir, time.time() - started)
    return code


def _run_dir(root: Path, given: str | None, argv: list[str]) -> tuple[Path, bool]:
    """The run dir, and whether this process is its own supervisor (no spec.json from a launcher)."""
    from ..rundir import SPEC
    from ..runs.launch import begin_direct, new_run_id
    from ..workspace import runs_dir

    run_dir = Path(given).resolve() if given else runs_dir(root) / new_run_id()
    if (run_dir / SPEC).is_file():
        return run_dir, False
    begin_direct(root, run_dir, argv)
    return run_dir, True


def _finish_direct(root: Path, run_dir: Path, code: int) -> None:
    from ..jsonio import write_json_atomic
    from ..rundir import EXIT
    from ..runs.registry import ingest

    write_json_atomic(run_dir / EXIT, {"code": code, "signal": None, "ended": round(time.time(), 3)})
    ingest(root, run_dir)


def _summary(result: dict, run_dir: Path, seconds: float) -> dict:
    cells = [{k: v for k, v in c.items() if k != "labels"} for c in result["cells"]]
    first = cells[0] if len(cells) == 1 else {}
    return {"slice": result["slice"], "status": result["status"], "error": result["error"],
            "ari": first.get("ari"), "nmi": first.get("nmi"), "seconds": round(seconds, 3),
            "run_dir": str(run_dir), "cells": cells}


def _fmt(score) -> str:
    return "n/a" if score is None else f"{score:.3f}"


def _print_summary(result: dict, run_dir: Path, seconds: float) -> None:
    rows = []
    for c in result["cells"]:
        vision = (c["vision"] or "-") + (f"/{c['variant']}" if c.get("variant") not in (None, "standard") else "")
        flag = " (random init)" if c.get("random_init") else ""
        cache = ",".join(f"{m} {s}" for m, s in c.get("cache", {}).items())
        rows.append([c["gene"], vision + flag, c["fusion"], c["cluster"], c["n_clusters"], _fmt(c["ari"]), _fmt(c["nmi"]),
                     f"{c['seconds']['total']:.1f}s" if "seconds" in c else "-", c.get("error") or cache])
    print(f"slice {result['slice']}: {len(rows)} cell{'s' if len(rows) != 1 else ''} in {seconds:.1f} s")
    print_table(["GENE", "VISION", "FUSION", "CLUSTER", "K", "ARI", "NMI", "TIME", "CACHE / ERROR"], rows)
    print(f"run dir: {run_dir}")


def cmd_refine_scan(args) -> int:
    from ..data import load_slice
    from ..encoders import check_variant
    from ..refine import refine_scan
    from ..workspace import resolve_root

    check_variant(args.variant)
    root = resolve_root(args.root)
    adata = load_slice(args.slice, root=root, truth_col=args.truth_col, fullres=args.fullres)
    result = refine_scan(adata, args.vision, root=root, variant=args.variant, cache_name=args.cache_name,
                         n_clusters=args.n_clusters, seed=args.seed, override=args.override)
    meta = result.embedding.meta
    verb = "loaded" if result.status == "hit" else "computed"
    print(f"{result.status}  {meta['slice']}/vision/{meta['name']}/{meta['variant']}  "
          f"{'x'.join(map(str, meta['shape']))}  {verb} in {result.seconds:.2f} s")
    return 0
