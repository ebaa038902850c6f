"""`mihd cache ls | rm | verify | gc`: the inventory reads metadata only, never arrays.
`ls` and `verify` work on a read-only workspace; `rm` and `gc` say in one line that they cannot."""

from __future__ import annotations

import time

from .common import add_root, print_json, print_table


def register(sub) -> None:
    group = sub.add_parser("cache", help="inspect the embedding cache").add_subparsers(dest="cache_cmd", required=True, metavar="ACTION")
    ls = group.add_parser("ls", help="list cached embeddings (metadata only)")
    ls.add_argument("--slice")
    ls.add_argument("--json", action="store_true")
    add_root(ls)
    ls.set_defaults(handler=cmd_ls)
    rm = group.add_parser("rm", help="remove cached embeddings")
    rm.add_argument("slice", metavar="SLICE")
    rm.add_argument("--modality", choices=("gene", "vision"))
    rm.add_argument("--name", help="cache name")
    rm.add_argument("--variant")
    rm.add_argument("--force", action="store_true", help="also remove entries another user made")
    add_root(rm)
    rm.set_defaults(handler=cmd_rm)
    verify = group.add_parser("verify", help="read every entry in full and report corrupt ones")
    add_root(verify)
    verify.set_defaults(handler=cmd_verify)
    gc = group.add_parser("gc", help="remove files no entry refers to (killed, racing or replaced writes)")
    gc.add_argument("--older-than", default="10m", metavar="AGE",
                    help="spare files younger than this: a write in flight, a replaced array still being read (default 10m)")
    gc.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    gc.add_argument("--force", action="store_true", help="also remove other users' files (a shared workspace)")
    add_root(gc)
    gc.set_defaults(handler=cmd_gc)


def _open(args):
    from ..cache import EmbeddingCache
    from ..workspace import resolve_root

    return EmbeddingCache(resolve_root(args.root))


def inventory_rows(entries: list[dict], now: float) -> list[list]:
    from ..cache import entry_flags
    from ..present import fmt_age

    rows = []
    for m in sorted(entries, key=lambda m: (m["slice"], m["modality"], m["name"], m["variant"])):
        problem = "CORRUPT" if "corrupt" in m else \
            "UNREADABLE" + m["unreadable"].removeprefix("unreadable") if "unreadable" in m else None
        if problem:
            rows.append([m["slice"], m["modality"], m["name"], m["variant"], problem, "-", "-", "-"])
            continue
        shape = "x".join(map(str, m.get("shape", [])))
        name = m["name"] + "".join(f" ({flag})" for flag in entry_flags(m))
        rows.append([m["slice"], m["modality"], name, m["variant"], shape, f"{m.get('nbytes', 0) / 1e6:.1f}",
                     fmt_age(now - m.get("created", now)), f"{m.get('compute_seconds', 0):.1f}s"])
    return rows


def cmd_ls(args) -> int:
    from ..cache import read_entries
    from ..workspace import resolve_root

    entries = read_entries(resolve_root(args.root), args.slice)
    if args.json:
        print_json(entries)
    elif entries:
        print_table(["SLICE", "MODALITY", "NAME", "VARIANT", "SHAPE", "MB", "AGE", "COMPUTE"], inventory_rows(entries, time.time()))
    else:
        print("cache is empty" + (f" for slice {args.slice}" if args.slice else ""))
    return 0


def cmd_rm(args) -> int:
    from ..cache import key_of_row
    from ..errors import MihdError

    cache = _open(args)
    keys = [key_of_row(m) for m in cache.entries(args.slice)
            if key_of_row(m) and (args.modality or m["modality"]) == m["modality"] and (args.name or m["name"]) == m["name"]
            and (args.variant or m["variant"]) == m["variant"]]
    others = {key: owner for key in keys if (owner := cache.made_by_other(key))}
    if others and not args.force:
        whose = ", ".join(f"{key} (made by {owner})" for key, owner in others.items())
        raise MihdError(f"SLICE {args.slice!r}: {whose}: another user's; --force removes them too")
    removed = sum(cache.remove(key) for key in keys)
    if not removed:
        asked = " ".join(f"--{f} {getattr(args, f)}" for f in ("modality", "name", "variant") if getattr(args, f))
        raise MihdError(f"SLICE {args.slice!r}{' ' + asked if asked else ''}: no cache entry matches (see `mihd cache ls`)")
    print(f"removed {removed} entr{'y' if removed == 1 else 'ies'}")
    return 0


def cmd_verify(args) -> int:
    cache = _open(args)
    checked, problems, unreadable = cache.verify()
    for problem in problems:
        print(f"CORRUPT  {problem}")
    for problem in unreadable:
        print(f"UNREADABLE  {problem}")
    print(f"{checked} entries checked, {len(problems)} corrupt" + (f", {len(unreadable)} unreadable by you "
          "(another user's: ask them to make it group-readable)" if unreadable else ""))
    orphans = cache.orphans()
    if orphans:
        print(f"{len(orphans)} files ({sum(n for _, n in orphans) / 1e6:.1f} MB) belong to no entry "
              "(interrupted or replaced writes): `mihd cache gc` removes them")
    return 1 if problems else 0


def cmd_gc(args) -> int:
    from ..runs.durations import parse_duration

    grace = parse_duration(args.older_than, "--older-than")
    cache = _open(args)
    if args.dry_run:
        found = cache.orphans(grace)
        print(f"would remove {len(found)} files, {sum(n for _, n in found) / 1e6:.1f} MB")
        return 0
    count, freed, left = cache.collect_orphans(grace, force=args.force)
    print(f"removed {count} files, {freed / 1e6:.1f} MB")
    if left:
        whose = ", ".join(f"{owner}: {n} files, {size / 1e6:.1f} MB" for owner, (n, size) in sorted(left.items()))
        print(f"left other users' files ({whose}); --force removes them too")
    return 0
