"""`mihd run` (one cell), `mihd grid` (the cross product, one process), `mihd exec-plan` (what a launched
run executes), `mihd refine scan`.

`run` and `grid` build a RunSpec from their arguments (`plan_from_args`, which `mihd launch` uses too)
and run it through `run_plan`, as `exec-plan` does with the RunSpec in a run dir's spec.json. Without
--run-dir, a run still gets a run dir of its own under `<root>/runs/` and is indexed in the registry,
so every result can be compared later and shows in the dashboard.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

from ..plan import DEFAULT_CLUSTER, DEVICES, device_users, parse_seeds, plan_argv
from ..recommended import RECOMMENDED
from .common import add_encoder_options, add_root, add_slice_options, encoder_config, print_json, print_table, seed_arg

DEFAULT_GENE = "pca"  # what --gene is when other method options are given without it
METHOD_OPTIONS = ("gene", "vision", "fusion", "cluster")


def _common(p, several: bool = False) -> None:
    add_slice_options(p, several)
    add_encoder_options(p)
    p.add_argument("--n-clusters", type=int, help="number of domains (default: the number of truth labels)")
    p.add_argument("--refine", action="store_true", help="smooth labels by a 15-NN spatial majority vote")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=seed_arg, help="the seed of fusion and clustering (default 0)")
    seeds.add_argument("--seeds", metavar="N|S1,S2",
                       help="fuse and cluster each cell once per seed: N = seeds 0..N-1, or a list (0,3,7); "
                            "scores are kept per seed and shown as mean ± sd")
    p.add_argument("--override", action="store_true", help="recompute the embeddings even when cached")
    p.add_argument("--drop-unlabelled", action="store_true",
                   help="leave spots without truth out before fusion (the DLPFC protocol)")
    p.add_argument("--device", default="auto", choices=DEVICES,
                   help="where training fusions and any vision extraction the run needs go (default auto: "
                        "CUDA when torch sees one)")
    p.add_argument("--run-dir", help="write events.jsonl and result.json here")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    add_root(p)


def register(sub) -> None:
    run = sub.add_parser("run", help="run one cell: embeddings -> fusion -> clusters -> ARI/NMI",
                         description="With no method option (--gene, --vision, --fusion, --cluster) it runs MIHD's "
                                     f"recommended configuration: {' '.join(RECOMMENDED.argv)} (docs/RECOMMENDED.md); "
                                     "with any of them, --fusion is required and the others take their defaults.")
    run.add_argument("--gene", metavar="G", help=f"gene encoder or cache name (default {DEFAULT_GENE})")
    run.add_argument("--vision", metavar="V", help="vision encoder or cache name (e.g. scan_uni2)")
    run.add_argument("--fusion", metavar="F", help="fusion method (required with any other method option)")
    run.add_argument("--cluster", metavar="C", help=f"kmeans, gmm (default {DEFAULT_CLUSTER}), leiden")
    _common(run)
    run.set_defaults(handler=cmd_run, grid=False)
    grid = sub.add_parser("grid", help="run the cross product of encoders x fusions x clusterers in one process")
    grid.add_argument("--gene", required=True, metavar="G1,G2")
    grid.add_argument("--vision", metavar="V1,V2", help="comma-separated vision encoders or cache names")
    grid.add_argument("--fusion", required=True, metavar="F1,F2")
    grid.add_argument("--cluster", default="gmm", metavar="C1,C2")
    _common(grid, several=True)
    grid.set_defaults(handler=cmd_run, grid=True)
    plan = sub.add_parser("exec-plan", help="run the plan in a run dir's spec.json (the command mihd launch starts)")
    plan.add_argument("--run-dir", required=True, help="the run dir whose spec.json holds the plan")
    plan.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    add_root(plan)
    plan.set_defaults(handler=cmd_exec_plan)
    refine = sub.add_parser("refine", help="refine a cached embedding into a new cache entry")
    methods = refine.add_subparsers(dest="refine_method", required=True, metavar="METHOD")
    scan = methods.add_parser("scan", help="SCAN (k=20 neighbours, entropy weight 5) on a vision embedding")
    add_slice_options(scan)
    scan.add_argument("--vision", required=True, metavar="NAME", help="vision encoder or cache name to refine")
    scan.add_argument("--variant", default="standard")
    scan.add_argument("--cache-name", help="store under this name (default scan_<NAME>)")
    scan.add_argument("--n-clusters", type=int, help="SCAN head width (default: the number of truth labels)")
    scan.add_argument("--seed", type=seed_arg, default=0)
    scan.add_argument("--device", default="auto", choices=DEVICES, help="where the heads train (default auto: CUDA when torch sees one)")
    scan.add_argument("--override", action="store_true", help="recompute even when cached")
    add_root(scan)
    scan.set_defaults(handler=cmd_refine_scan)


def _recommended(args) -> bool:
    """Whether `mihd run` was given no method option, so runs the recommended configuration."""
    return not args.grid and all(getattr(args, o) is None for o in METHOD_OPTIONS)


def _methods(args) -> tuple[str, str | None, str, str, bool]:
    """`mihd run`'s gene, vision, fusion, clusterer and refine: the recommended configuration when no method
    option is given, else what was asked."""
    from ..errors import MihdError

    if _recommended(args):
        r = RECOMMENDED
        return r.gene, r.vision, r.fusion, r.cluster, r.refine or args.refine
    if args.fusion is None:
        raise MihdError("--fusion: required with another method option "
                        f"(with none at all, run runs the recommended {' '.join(RECOMMENDED.argv)})")
    return args.gene or DEFAULT_GENE, args.vision, args.fusion, args.cluster or DEFAULT_CLUSTER, args.refine


def _names(args, flag: str) -> list[str]:
    """A grid's comma-separated --flag names; given but naming nothing (`--fusion ,`) is an error."""
    from ..errors import MihdError

    value = getattr(args, flag)
    names = [v.strip() for v in (value or "").split(",") if v.strip()]
    if value is not None and not names:
        raise MihdError(f"--{flag} {value!r}: no names; give one or more separated by commas")
    return names


def _slice_ref(text: str, root: Path) -> tuple[str, dict]:
    """The slice id of SLICE (checked, not read) and, when SLICE is a folder or file rather than a registered
    name, its path (so the plan names the slice as results do, and a launched run finds it from any directory)."""
    from ..data import find_slice

    slice_id, path, entry = find_slice(text, root)
    return slice_id, {} if entry is not None or path is None else {"source": str(path)}


SLICES_FILE_MAX = 1 << 20  # a list of slices, one a line, is far smaller


def _slice_texts(args) -> list[str]:
    """The SLICE argument of `run`, or a grid's slices: `A,B,C` or the lines of --slices FILE (not both)."""
    from ..data.sources import resolved
    from ..errors import MihdError

    listed = getattr(args, "slices", None)
    if listed is not None and args.slice is not None:
        raise MihdError(f"--slices {listed}: give the slices either there or as SLICE, not both")
    if listed is None:
        if args.slice is None:
            raise MihdError("SLICE: required (a name, a folder or an .h5ad; a grid also takes A,B,C or --slices FILE)")
        texts = [t.strip() for t in args.slice.split(",")] if args.grid else [args.slice]
        what = f"SLICE {args.slice!r}"
    else:
        path = resolved(listed, "--slices")
        try:
            with open(path, "rb") as f:
                head = f.read(SLICES_FILE_MAX + 1)  # never all of /dev/zero
            if len(head) > SLICES_FILE_MAX or b"\0" in head:
                raise ValueError(f"over {SLICES_FILE_MAX // 1024} KiB" if len(head) > SLICES_FILE_MAX else "binary")
            lines = head.decode().splitlines()
        except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            why = str(exc) if type(exc) is ValueError else exc.__class__.__name__
            raise MihdError(f"--slices {path}: not a readable text file ({why})") from None
        texts = [ln.split("#", 1)[0].strip() for ln in lines]
        texts = [t for t in texts if t]
        what = f"--slices {path}"
    if not texts or not all(texts):
        raise MihdError(f"{what}: names no slice (give one or more, separated by commas or one a line)")
    return texts


def _slice_refs(args, root: Path) -> tuple[list[str], dict]:
    """The slice ids the arguments name, and the slice options: where each slice given as a path is, the
    truth column, the full-resolution image (one slice only)."""
    from ..data.sources import check_image
    from ..errors import MihdError

    ids, sources = [], {}
    for text in _slice_texts(args):
        slice_id, options = _slice_ref(text, root)
        if slice_id in ids:
            raise MihdError(f"slice {slice_id!r}: named twice")
        ids.append(slice_id)
        if "source" in options:
            sources[slice_id] = options["source"]
    if len(ids) == 1:
        slice_options = {"source": sources[ids[0]]} if sources else {}
    else:
        slice_options = {"sources": sources} if sources else {}
        if args.fullres:
            raise MihdError("--fullres: names one image, but the grid runs on several slices "
                            "(register each slice with its image: mihd slices add NAME PATH --fullres IMG)")
    if args.truth_col:
        slice_options["truth_col"] = args.truth_col
    if args.fullres:
        slice_options["fullres"] = str(check_image(args.fullres))
    return ids, slice_options


def plan_from_args(args, root: Path, **launch):
    """The RunSpec that `mihd run|grid` arguments ask for, checked (unknown fusion, clusterer, variant,
    precision fail here, before anything is loaded); `launch` adds backend, backend_options, expect, name.
    A grid over several slices holds every cell on every slice, slice by slice."""
    from ..pipeline import check_plan
    from ..plan import Cell, RunSpec, grid_cells

    encoder = encoder_config(args)  # bad options fail before the slice is even looked for
    gene, vision, fusion, cluster, refine = (None, None, None, None, args.refine) if args.grid else _methods(args)
    slice_ids, slice_options = _slice_refs(args, root)
    if args.grid:
        names = [_names(args, flag) for flag in METHOD_OPTIONS]
        cells = tuple(c for s in slice_ids for c in grid_cells(s, *names, args.variant))
    else:
        cells = (Cell(slice_ids[0], gene, vision, fusion, cluster, args.variant if vision else None),)
    seeds = parse_seeds(args.seeds) if args.seeds is not None else (args.seed or 0,)
    plan = RunSpec(cells, kind="grid" if args.grid else "run", n_clusters=args.n_clusters, refine=refine,
                   seeds=seeds, override=args.override, drop_unlabelled=args.drop_unlabelled,
                   device=args.device, encoder=encoder, slice_options=slice_options, **launch)
    check_plan(plan)
    for slice_id in plan.slices:
        _check_inputs(root, slice_id, [(m, n) for c in plan.cells if c.slice == slice_id
                                       for m, n in (("gene", c.gene), ("vision", c.vision))])
    if _recommended(args):  # on stderr: the summary (or --json) stays the only stdout
        print(f"no method option: the recommended configuration ({' '.join(RECOMMENDED.argv)})", file=sys.stderr)
    return plan


def _check_inputs(root: Path, slice_id: str, inputs: list[tuple[str, str | None]]) -> None:
    """A --gene/--vision name that is neither an encoder nor cached for the slice (here or in a workspace
    cache_from.json lists) fails now, before a run dir, job or cache entry is made, not inside the run."""
    from ..cache import cache_from_config, read_entries
    from ..encoders import REGISTRY
    from ..errors import MihdError

    cached = {(e.get("modality"), e.get("name")) for r in (root, *cache_from_config(root))
              for e in read_entries(r, slice_id)}
    for modality, name in inputs:
        if name and name not in REGISTRY[modality] and (modality, name) not in cached:
            raise MihdError(f"--{modality} {name!r}: not an encoder ({', '.join(REGISTRY[modality])}) "
                            f"nor cached for slice {slice_id}")


def cmd_run(args) -> int:
    from ..compute import check_device
    from ..inventory import cells_cached
    from ..workspace import resolve_root

    root = resolve_root(args.root)
    plan = plan_from_args(args, root)
    if plan.device == "cuda" and device_users(plan, cells_cached(root, plan.cells)):
        check_device("cuda")  # no GPU here: one line before the slice loads, not a failed run after extraction
    return run_plan(plan, root, _given_run_dir(args.run_dir) if args.run_dir else None, as_json=args.json)


def _given_run_dir(text: str) -> Path:
    """--run-dir: a new or empty folder, or a launcher's run dir (with its spec.json); never a file or a
    folder of other things."""
    from ..data.sources import resolved
    from ..errors import MihdError
    from ..rundir import SPEC

    path = resolved(text, "--run-dir")
    if path.exists() and not (path.is_dir() and ((path / SPEC).is_file() or not any(path.iterdir()))):
        raise MihdError(f"--run-dir {path}: exists and is not a run dir; give a new or empty folder")
    return path


def cmd_exec_plan(args) -> int:
    from ..data.sources import resolved
    from ..errors import MihdError
    from ..rundir import SPEC, read_plan
    from ..workspace import resolve_root

    run_dir = resolved(args.run_dir, "--run-dir")
    plan = read_plan(run_dir)
    if plan is None:
        raise MihdError(f"{run_dir / SPEC}: no readable plan")
    return run_plan(plan, resolve_root(args.root), run_dir, as_json=args.json)


def run_plan(plan, root: Path, run_dir: Path | None = None, *, as_json: bool = False) -> int:
    """Run `plan` in `run_dir`; a run dir without a launcher's spec.json (a direct run, in a new run dir
    when none is given) is supervised by this process and indexed at its end."""
    from ..execute import check_fresh, load_plan_slice
    from ..pipeline import check_slice_for, run_cells

    started = time.time()
    if run_dir is not None:
        check_fresh(run_dir)  # a run dir holds one run: never a second one over the first
    if plan.is_study:
        return _run_study(plan, root, run_dir, started, as_json)
    adata = load_plan_slice(plan, root)  # an unreadable slice is refused before a direct run dir is made
    check_slice_for(adata, plan)  # and one the plan cannot use (no coordinates, a k its spots cannot hold)
    run_dir, direct = _run_dir(root, run_dir, plan)
    code = 1
    try:
        result = run_cells(adata, plan, root=root, run_dir=run_dir, argv=plan_argv(plan))
        code = 0 if result["status"] == "ok" else 1
    finally:
        if direct:
            _finish_direct(root, run_dir, code)
    if as_json:
        print_json(_summary(result, run_dir, time.time() - started))
    else:
        _print_summary(result, run_dir, time.time() - started)
    return code


def _run_study(plan, root: Path, run_dir: Path | None, started: float, as_json: bool) -> int:
    """A grid over several slices, in the foreground: laid out as a fanned-out grid (each embedding a slice
    lacks extracted once, then every cell x slice as a part of its own) and run by this process as the
    local runner, as wide as the cores allow; Ctrl-C stops it as `mihd runs kill` would."""
    from ..data import check_plan_slices
    from ..jsonio import read_json
    from ..rundir import RESULT, SPEC, read_spec
    from ..runs import fanout
    from ..runs.fanout_submit import prepare
    from .fanout_entry import local_runner

    if run_dir is None or not (run_dir / SPEC).is_file():  # direct: a bad slice is one line now, no run dir made
        check_plan_slices(root, plan)
    run_dir, direct = _run_dir(root, run_dir, plan)
    code = 1
    try:
        if not fanout.is_fanned(run_dir):
            lanes = min(fanout.local_lanes(fanout.parallel_of(plan.backend_options)), len(plan.cells))
            prepare(root, run_dir, plan, [c["cached"] for c in read_spec(run_dir)["cells"]], lanes)
        with contextlib.redirect_stdout(sys.stderr):  # the runner's progress lines; stdout is the summary's
            code = local_runner(run_dir, root).run()
    finally:
        if direct:
            _finish_direct(root, run_dir, code)
    result = read_json(run_dir / RESULT)
    if as_json:
        print_json(_summary(result, run_dir, time.time() - started))
    else:
        _print_summary(result, run_dir, time.time() - started)
    return code


def _run_dir(root: Path, given: Path | None, plan) -> tuple[Path, bool]:
    """The run dir, and whether this process is its own supervisor (no spec.json from a launcher)."""
    from ..rundir import SPEC
    from ..runs.launch import begin_direct, new_run_id
    from ..workspace import run_path

    run_dir = given or run_path(root, new_run_id())
    if (run_dir / SPEC).is_file():
        return run_dir, False
    begin_direct(root, run_dir, plan, ["mihd", *plan_argv(plan)])
    return run_dir, True


def _finish_direct(root: Path, run_dir: Path, code: int) -> None:
    from ..jsonio import write_json_atomic
    from ..rundir import EXIT
    from ..runs.registry import ingest

    from ..errors import MihdError

    try:
        write_json_atomic(run_dir / EXIT, {"code": code, "signal": None, "ended": round(time.time(), 3)})
    except OSError as exc:
        raise MihdError(f"{run_dir / EXIT}: cannot be written ({exc.strerror or exc})") from None
    ingest(root, run_dir)


def _summary(result: dict, run_dir: Path, seconds: float) -> dict:
    cells = [{k: v for k, v in c.items() if k != "labels"} for c in result["cells"]]
    first = cells[0] if len(cells) == 1 else {}
    return {"slice": result["slice"], "status": result["status"], "error": result["error"],
            "ari": first.get("ari"), "nmi": first.get("nmi"), "seconds": round(seconds, 3),
            "run_dir": str(run_dir), "cells": cells}


def _fmt(score, sd=None) -> str:
    """A score; a mean over seeds with its sd."""
    return "n/a" if score is None else f"{score:.3f}" + ("" if sd is None else f" ± {sd:.3f}")


def _print_summary(result: dict, run_dir: Path, seconds: float) -> None:
    from ..plan import Cell
    from ..results import entry_slice

    rows, slices = [], result.get("slices") or [result["slice"]]
    for c in result["cells"]:
        cell = Cell.from_dict({**c, "slice": entry_slice(result, c)})
        flag = " (random init)" if c.get("random_init") else ""
        cache = ",".join(f"{m} {s}" for m, s in c.get("cache", {}).items())
        label = cell.label if len(slices) > 1 else cell.short_label  # a study's cells say their slice
        rows.append([label + flag, c["n_clusters"], _fmt(c["ari"], c.get("ari_sd")), _fmt(c["nmi"], c.get("nmi_sd")),
                     f"{c['seconds']['total']:.1f}s" if "seconds" in c else "-", c.get("error") or cache])
    seeds = len(result["cells"][0].get("seeds") or [0]) if result["cells"] else 1
    cells = f"{len(rows)} cell{'s' if len(rows) != 1 else ''}"
    print(f"slice{'s' if len(slices) > 1 else ''} {', '.join(slices)}: {cells} in {seconds:.1f} s"
          + (f", {seeds} seeds each (ARI/NMI: mean ± sd)" if seeds > 1 else ""))
    print_table(["CELL", "K", "ARI", "NMI", "TIME", "CACHE / ERROR"], rows)
    print(f"run dir: {run_dir}")


def cmd_refine_scan(args) -> int:
    from ..cache import validate_name
    from ..data import find_slice, load_slice
    from ..encoders import check_variant
    from ..errors import MihdError
    from ..refine import refine_scan
    from ..workspace import resolve_root

    check_variant(args.variant)
    if args.cache_name is not None:
        validate_name(args.cache_name)
    if args.n_clusters is not None and not 2 <= args.n_clusters <= 100:
        raise MihdError(f"--n-clusters {args.n_clusters}: not a whole number from 2 to 100")
    root = resolve_root(args.root)
    _check_inputs(root, find_slice(args.slice, root)[0], [("vision", args.vision)])
    adata = load_slice(args.slice, root=root, truth_col=args.truth_col, fullres=args.fullres)
    result = refine_scan(adata, args.vision, root=root, variant=args.variant, cache_name=args.cache_name,
                         n_clusters=args.n_clusters, seed=args.seed, override=args.override, device=args.device)
    meta = result.embedding.meta
    verb = "loaded" if result.status == "hit" else "computed"
    print(f"{result.status}  {meta['slice']}/vision/{meta['name']}/{meta['variant']}  "
          f"{'x'.join(map(str, meta['shape']))}  {verb} in {result.seconds:.2f} s")
    return 0
