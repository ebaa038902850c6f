"""Registered slice names (`mihd slices add NAME PATH`), kept in `<root>/slices.json`."""

from __future__ import annotations

from pathlib import Path

from ..cache import validate_name
from ..errors import MihdError
from ..jsonio import read_json, write_json_atomic
from ..workspace import slice_entries, slices_file, warn_once, write_error
from .checked import facts_of, remember, stamp
from .sources import check_image, check_source


def registered(root: Path, *, strict: bool = False) -> dict[str, dict]:
    """Registered slices by name ({"path", "truth_col", "fullres"}); an entry of another shape is left out and
    said once on stderr, and an unreadable slices.json reads as none (`strict`: is a MihdError)."""
    data = _stored(root) if strict else read_json(slices_file(root), default={})
    entries, problems = slice_entries(data, slices_file(root))
    for line in problems:
        warn_once(line)
    return entries


def _stored(root: Path) -> dict:
    """slices.json as stored, every entry kept; one that is not a JSON object is a MihdError (never written over)."""
    file = slices_file(root)
    data = read_json(file) if file.exists() else {}
    if not isinstance(data, dict):
        raise MihdError(f"{file}: not a JSON object of registered slices; fix it or move it aside")
    return data


def register(root: Path, name: str, path: str | Path, truth_col: str | None = None, fullres: str | None = None,
             *, read=None) -> dict:
    """Register `path` (checked to be a Space Ranger folder or an .h5ad, by its files) under `name`; `read`: the
    loader (`mihd slices add` passes data.read_slice) that loads it once first, so a slice wrong inside
    (data.shape) or a --truth-col it lacks is refused now, not at a run."""
    validate_name(name, "NAME")
    path = check_source(path, "PATH")
    entry = {"path": str(path), "truth_col": truth_col, "fullres": str(check_image(fullres)) if fullres else None}
    if read is not None:  # its facts noted, so a first launch on it checks the plan without loading it again
        stamped = stamp(path, truth_col, entry["fullres"])
        remember(root, stamped, facts_of(read(path, name, truth_col, entry["fullres"])))
    slices = _stored(root)
    slices[name] = entry
    try:
        write_json_atomic(slices_file(root), slices)
    except OSError as exc:
        raise write_error(root, exc, f"register {name}", "slices.json is as it was") from None
    return entry
