"""The workspace root: where embeddings, runs, the registry and registered slices live."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import MihdError

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "cache"


def resolve_root(root: str | os.PathLike | None = None, create: bool = True) -> Path:
    """`--root`, else `MIHD_ROOT`, else the checkout's `cache/` folder."""
    chosen = root or os.environ.get("MIHD_ROOT") or DEFAULT_ROOT
    path = Path(chosen).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise MihdError(f"--root {path}: exists and is not a folder")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MihdError(f"--root {path}: cannot create the workspace ({exc.strerror})") from None
    elif not path.is_dir():
        raise MihdError(f"--root {path}: no such workspace folder")
    return path


def embeddings_dir(root: Path) -> Path:
    return root / "embeddings"


def runs_dir(root: Path) -> Path:
    return root / "runs"


def registry_path(root: Path) -> Path:
    return root / "mihd.sqlite"


def slices_file(root: Path) -> Path:
    return root / "slices.json"
