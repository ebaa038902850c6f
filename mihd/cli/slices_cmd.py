"""`mihd slices add NAME PATH`, `mihd slices ls`."""

from __future__ import annotations

from .common import add_root, print_table


def register(sub) -> None:
    group = sub.add_parser("slices", help="register and list slices").add_subparsers(dest="slices_cmd", required=True, metavar="ACTION")
    add = group.add_parser("add", help="register a Space Ranger folder or .h5ad under a name")
    add.add_argument("name", metavar="NAME")
    add.add_argument("path", metavar="PATH")
    add.add_argument("--truth-col", help="obs/metadata column holding the truth labels")
    add.add_argument("--fullres", help="path of the full-resolution H&E image")
    add_root(add)
    add.set_defaults(handler=cmd_add)
    ls = group.add_parser("ls", help="list registered slices")
    add_root(ls)
    ls.set_defaults(handler=cmd_ls)


def cmd_add(args) -> int:
    from ..data import DEMO, read_slice
    from ..data.registry import register as register_slice
    from ..errors import MihdError
    from ..workspace import resolve_root

    if args.name == DEMO:
        raise MihdError(f"NAME {DEMO}: the built-in demo slice's name; register {args.path} under another name")
    entry = register_slice(resolve_root(args.root), args.name, args.path, args.truth_col, args.fullres,
                           read=read_slice)
    print(f"registered {args.name} -> {entry['path']}")
    return 0


def cmd_ls(args) -> int:
    from ..data.registry import registered
    from ..workspace import resolve_root

    slices = registered(resolve_root(args.root), strict=True)
    rows = [[name, e["path"], e.get("truth_col") or "-"] for name, e in sorted(slices.items())]
    print_table(["NAME", "PATH", "TRUTH_COL"], rows) if rows else print("no registered slices (demo is made on first use)")
    return 0
