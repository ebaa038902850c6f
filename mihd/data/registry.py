"""Registered slice names (`mihd slices add NAME PATH`), kept in `<root>/slices.json`."""

from __future__ import annotations

from pathlib import Path

from ..cache import validate_name
from ..cache_files import write_error
from ..errors import MihdError
from ..jsonio import read_json, write_json_atomic
from ..workspace import slices_file
from .sources import check_image, check_source


def registered(root: Path, *, strict: bool = False) -> dict[str, dict]:
    """Registered slices by name ({"path", "truth_col", "fullres"}); an entry of another shape is left out, and
    an unreadable slices.json reads as none (`strict`: is a MihdError)."""
    data = _stored(root) if strict else read_json(slices_file(root), default={})
    if not isinstance(data, dict):
        return {}
    return {name: e for name, e in data.items() if isinstance(e, dict) and isinstance(e.get("path"), str)}


def _stored(root: Path) -> dict:
    """slices.json as stored, every entry kept; one that is not a JSON object is a MihdError (never written over)."""
    file = slices_file(root)
    data = read_json(file) if file.exists() else {}
    if not isinstance(data, dict):
        raise MihdError(f"{file}: not a JSON object of registered slices; fix it or move it aside")
    return data


def register(root: Path, name: str, path: str | Path, truth_col: str | None = None, fullres: str | None = None) -> dict:
    """Register `path` (checked to be a Space Ranger folder or an .h5ad, by its files) under `name`."""
    validate_name(name, "NAME")
    path = check_source(path, "PATH")
    entry = {"path": str(path), "truth_col": truth_col, "fullres": str(check_image(fullres)) if fullres else None}
    slices = _stored(root)
    slices[name] = entry
    try:
        write_json_atomic(slices_file(root), slices)
    except OSError as exc:
        raise write_error(root, exc, f"register {name}", 4096) from None
    return entry
