"""parts.json: an ended grid's parts as they were described, kept in its run dir for an index built anew.

The host-local index keeps each grid's parts (grid_index), but an index made from nothing (a new host, a wiped
temporary folder, a schema upgrade) read every part's files again: a workspace of 3,000 studies is 36,000 cell
dirs, most of a minute. So whoever first describes an ended grid (a watcher, `mihd runs ls`) leaves what each
part said beside it, with the stamp of the files it was read from (run_files.files_stamp); a later description
takes a part from here while its stamp still holds, and reads the part's own files otherwise. It is a copy: a
missing, torn or hand-made file is ignored, a part that does not look like a described row is read again, and a
run dir this user may not write into simply has none.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..jsonio import write_atomic
from .run_files import ACTIVE, RUN_COLUMNS, UNSETTLED, files_stamp

PARTS_FILE = "parts.json"


def read_parts(grid_dir: Path | str) -> dict:
    """{part name: [stamp, row, cell rows]} as kept, or {} (absent, unreadable, not such a mapping)."""
    try:
        with open(f"{os.fspath(grid_dir)}/{PARTS_FILE}", "rb") as fh:
            data = json.loads(fh.read())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def kept_part(entry, part_dir: Path, grid_run_dir: str) -> tuple[dict, list[dict]] | None:
    """A kept part's row (its run dir named as this grid's now) and cell rows, while its files' stamp is the one
    kept; None when it changed or the entry is not a described part."""
    if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[1], dict) and isinstance(entry[2], list)
            and all(isinstance(c, dict) for c in entry[2]) and set(RUN_COLUMNS) <= entry[1].keys()):
        return None
    if entry[0] != files_stamp(part_dir):
        return None
    name = f"{Path(part_dir).parent.name}/{Path(part_dir).name}"
    return {**entry[1], "run_dir": f"{grid_run_dir}/{name}"}, entry[2]


def keep_parts(grid_dir: Path | str, parts: dict, kept: dict) -> None:
    """Write parts.json for an ended grid's described `parts` (grid_index.described) unless `kept` (what the file
    holds) says the same stamps, or a part is still active or unreadable. Best effort: no room, a read-only
    workspace or another member's run dir leaves the file as it was."""
    stamps = {name: p[0] for name, p in parts.items()}
    if any(p[1]["status"] in ACTIVE or p[0] == UNSETTLED for p in parts.values()):
        return
    if stamps == {name: p[0] for name, p in kept.items() if isinstance(p, list) and p}:
        return
    try:
        write_atomic(Path(grid_dir) / PARTS_FILE, [json.dumps(parts, separators=(",", ":")).encode()], sync=False)
    except OSError:
        pass
