"""`mihd extract SLICE (--gene NAME | --vision NAME) ...`: fill the cache once, report hit or miss."""

from __future__ import annotations

from ..compute import DEVICES
from .common import add_encoder_options, add_root, add_slice_options, encoder_config


def register(sub) -> None:
    p = sub.add_parser("extract", help="compute (or find cached) gene or vision embeddings of a slice")
    add_slice_options(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--gene", metavar="NAME", help="gene encoder: pca, hvg, mlp, scgpt")
    which.add_argument("--vision", metavar="NAME", help="vision encoder: uni2, uni, hipt, resnet50, texture")
    add_encoder_options(p)
    p.add_argument("--device", default="auto", choices=DEVICES,
                   help="where a vision model runs (default auto: CUDA when torch sees one)")
    p.add_argument("--cache-name", help="store under this name instead of the encoder's (e.g. uni2_try2)")
    p.add_argument("--override", action="store_true", help="recompute and replace the cached entry")
    p.add_argument("--cache-from", action="append", metavar="DIR", default=[],
                   help="also read embeddings from this workspace (e.g. a lab's read-only shared cache); repeatable. "
                        "The workspace's cache_from.json may list such folders too")
    add_root(p)
    p.set_defaults(handler=cmd_extract)


def cmd_extract(args) -> int:
    from ..cache import validate_name
    from ..compute import check_device
    from ..data import load_slice
    from ..encoders import check_variant, get_encoder
    from ..extract import get_embedding
    from ..workspace import resolve_root

    modality, name = ("gene", args.gene) if args.gene else ("vision", args.vision)
    encoder = get_encoder(modality, name)  # fail on bad arguments before loading the slice
    if modality == "vision":
        check_variant(args.variant)
    if args.cache_name is not None:
        validate_name(args.cache_name)
    cache_from = [_source(d) for d in args.cache_from]
    if modality == "vision" and encoder.needs_weights:  # weight-free encoders never touch a device
        check_device(args.device)
    config = {**encoder_config(args), "device": args.device}
    root = resolve_root(args.root)
    adata = load_slice(args.slice, root=root, truth_col=args.truth_col, fullres=args.fullres)
    result = get_embedding(adata, modality, name, root=root, variant=args.variant, cache_name=args.cache_name,
                           override=args.override, config=config, cache_from=cache_from)
    meta = result.embedding.meta
    shape = "x".join(map(str, meta["shape"]))
    flag = "  [random init]" if meta.get("random_init") else ""
    source = f"  (from {meta['source']})" if meta.get("source") else ""
    took = f"loaded in {result.seconds:.2f} s"
    if result.status != "hit" and isinstance(meta.get("compute_seconds"), (int, float)):
        took = f"computed in {meta['compute_seconds']:.2f} s"  # the encoder's time; a wait for a lock is not it
        if result.seconds > meta["compute_seconds"] + 1:
            took += f" ({result.seconds:.2f} s in all)"
    print(f"{result.status}  {meta['slice']}/{modality}/{meta['name']}/{meta['variant']}  {shape}  {took}{flag}{source}")
    return 0


def _source(folder: str):
    from ..data.sources import resolved
    from ..errors import MihdError
    from ..workspace import embeddings_dir

    path = resolved(folder, "--cache-from")
    if not embeddings_dir(path).is_dir():
        raise MihdError(f"--cache-from {folder}: not a workspace with embeddings (no {embeddings_dir(path)})")
    return path
