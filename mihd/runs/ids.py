"""Run references as a researcher types them: an id, a unique id prefix, a name, or `GRID/N` for one cell.

A reference is never a pattern nor a path: an empty one (an unset shell variable), blanks, `.`/`..` or a
slash outside the `GRID/N` form is refused in one line before anything is looked up, and a prefix names a run
only when it is at least MIN_PREFIX characters long and matches that run alone. What the dashboard shows of an
id names it too: its short form `175956·cb04` (short_id) or the start of its random tail (`cb041b`). So `mihd runs rm "$UNSET"`
removes nothing and `runs logs GRID/../../OTHER` reads no other run's files.
"""

from __future__ import annotations

from typing import Callable, Iterable

from ..errors import MihdError

MIN_PREFIX = 4  # `2026` is a prefix; `2` or `` is not
MAX_CELL_DIGITS = 6


def short_id(run_id: str) -> str:
    """`093012·a1b2` from `20250101-093012-345-a1b2c3`: the time and the start of the random tail."""
    parts = run_id.split("-")
    if len(parts) == 4:
        return f"{parts[1]}·{parts[3][:4]}"
    return run_id[-11:]


def _shown(ref: str, ids: list[str]) -> list[str]:
    """The ids `ref` names in a form the dashboard shows: a short id, or a tail prefix of MIN_PREFIX+ characters."""
    if "·" in ref:
        return [i for i in ids if short_id(i) == ref]
    if len(ref) < MIN_PREFIX:
        return []
    return [i for i in ids if i.count("-") == 3 and i.rsplit("-", 1)[1].startswith(ref)]


def check_ref(ref, what: str = "run") -> str:
    """`ref` when it can name a run (id, prefix or name); else a one-line MihdError."""
    if not isinstance(ref, str) or not ref.strip():
        raise MihdError(f"{what} {ref!r}: empty; give a run id, an id prefix of {MIN_PREFIX}+ characters or a "
                        "run name (see `mihd runs ls --all`)")
    if ref != ref.strip() or not ref.isprintable():
        raise MihdError(f"{what} {ref!r}: a run id has no blanks or control characters")
    if "/" in ref or "\\" in ref or ref in (".", ".."):
        raise MihdError(f"{what} {ref!r}: a run id, not a path (GRID/N names cell N of a fanned-out grid)")
    return ref


def split_cell(ref, what: str = "run") -> tuple[str, int | None]:
    """`GRID/3` -> ("GRID", 3); a plain reference -> (ref, None). The cell is a whole number, nothing else."""
    if not isinstance(ref, str) or "/" not in ref:
        return check_ref(ref, what), None
    run, _, cell = ref.partition("/")
    if not (cell.isascii() and cell.isdigit() and len(cell) <= MAX_CELL_DIGITS):
        raise MihdError(f"{what} {ref!r}: GRID/N names cell N (a whole number) of a fanned-out grid")
    return check_ref(run, what), int(cell)


def match(ref: str, ids: Iterable[str], named: Callable[[str], list[str]], what: str = "run") -> str:
    """The one run id `ref` names among `ids`: itself, else a unique prefix of MIN_PREFIX+ characters, else its
    short form or tail as the dashboard shows them, else the run(s) `named(ref)` returns (by name). Raises a one-line MihdError when none or several match."""
    ref = check_ref(ref, what)
    ids = list(ids)
    if ref in ids:
        return ref
    prefixed = [i for i in ids if i.startswith(ref)] if len(ref) >= MIN_PREFIX else []
    matches = prefixed or _shown(ref, ids) or named(ref)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        short = f"; an id prefix needs {MIN_PREFIX}+ characters" if len(ref) < MIN_PREFIX else ""
        raise MihdError(f"{what} {ref!r}: no such run{short} (see `mihd runs ls --all`)")
    raise MihdError(f"{what} {ref!r}: ambiguous, matches {', '.join(sorted(matches)[:5])}"
                    + (f" and {len(matches) - 5} more" if len(matches) > 5 else ""))
