"""Registered slice names (`mihd slices add NAME PATH`), kept in `<root>/slices.json`."""

from __future__ import annotations

from pathlib import Path

from ..cache import validate_name
from ..errors import MihdError
from ..jsonio import read_json, write_json_atomic
from ..workspace import slices_file


def registered(root: Path) -> dict[str, dict]:
    data = read_json(slices_file(root), default={})
    return data if isinstance(data, dict) else {}


def register(root: Path, name: str, path: str | Path, truth_col: str | None = None, fullres: str | None = None) -> dict:
    validate_name(name, "NAME")
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise MihdError(f"PATH {path}: no such folder or file")
    if not (path.is_dir() or path.suffix == ".h5ad"):
        raise MihdError(f"PATH {path}: expected a Space Ranger folder or an .h5ad file")
    entry = {"path": str(path), "truth_col": truth_col, "fullres": str(Path(fullres).resolve()) if fullres else None}
    slices = registered(root)
    slices[name] = entry
    write_json_atomic(slices_file(root), slices)
    return entry
