"""Argument helpers shared by the subcommand groups."""

from __future__ import annotations

import argparse
import json
import os


def add_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", help="workspace root (default: $MIHD_ROOT, else the checkout's cache/)")


def add_slice_options(parser: argparse.ArgumentParser, several: bool = False) -> None:
    """SLICE and its loading options; `several` (a grid): SLICE may be A,B,C or come from --slices FILE."""
    if several:
        parser.add_argument("slice", metavar="SLICE[,SLICE...]", nargs="?",
                            help="registered names, Space Ranger folders or .h5ad files, comma-separated: "
                                 "the grid runs on every slice (a study)")
        parser.add_argument("--slices", metavar="FILE", help="the slices, one a line (# starts a comment)")
    else:
        parser.add_argument("slice", metavar="SLICE", help="registered name (e.g. demo), Space Ranger folder or .h5ad")
    parser.add_argument("--truth-col", help="obs/metadata column holding the truth labels")
    parser.add_argument("--fullres", help="path of the full-resolution H&E image")


def add_encoder_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", default="standard", help="vision patch variant: standard, freq, staig_strict")
    parser.add_argument("--random-init", action="store_true", help="vision: random weights (smoke tests only; marked in results)")
    parser.add_argument("--weights", help="vision: path of the weights file")
    parser.add_argument("--precision", help="vision: fp32 (default) or bf16 (faster on a GPU; use its own --cache-name)")


def encoder_config(args) -> dict:
    """The encoder options given on the command line, checked (call it before loading the slice)."""
    from ..encoders.vision import check_precision, check_weights

    config = {}
    if getattr(args, "random_init", False):
        config["random_init"] = True
    if getattr(args, "weights", None):
        if os.path.lexists(os.path.expanduser(args.weights)):  # a missing one may still be served from the cache
            check_weights(args.weights)
        config["weights"] = args.weights
    if getattr(args, "precision", None):
        config["precision"] = check_precision(args.precision)
    return config


def seed_arg(text: str) -> int:
    """argparse type of --seed: a whole number numpy and scikit-learn take (0 to 2**32 - 1), else one line."""
    from ..plan import MAX_SEED

    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text!r}: not a whole number from 0 to {MAX_SEED}")
    return value


def one_line(text) -> str:
    """`text` as one printable line whatever it holds: control characters (a newline in a name or path) are escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def print_json(data) -> None:
    print(json.dumps(data, indent=1, default=str))


def print_table(headers: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
