"""The workspace root: where embeddings, runs, the registry and registered slices live."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import tempfile
from pathlib import Path

from .errors import MihdError

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "cache"


def resolve_root(root: str | os.PathLike | None = None, create: bool = True) -> Path:
    """`--root`, else `MIHD_ROOT`, else the checkout's `cache/` folder."""
    chosen = root or os.environ.get("MIHD_ROOT") or DEFAULT_ROOT
    try:
        path = Path(chosen).expanduser().resolve()
    except (RuntimeError, OSError) as exc:  # a symbolic link loop, an unknown ~user
        raise MihdError(f"--root {chosen}: cannot be resolved ({exc})") from None
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


def run_path(root: Path, run_id: str) -> Path:
    return runs_dir(root) / run_id


def demo_dir(root: Path) -> Path:
    return root / "demo"


def backend_defaults_file(root: Path, backend: str) -> Path:
    """`<root>/<backend>.json`: the site defaults of a backend's options (e.g. slurm.json)."""
    return Path(root) / f"{backend}.json"


def keymap_file(root: Path) -> Path:
    """`<root>/tui_keys.json`: the dashboard's key remapping ({binding id: keys})."""
    return root / "tui_keys.json"


def slices_file(root: Path) -> Path:
    return root / "slices.json"


def host_index_dir(root: Path) -> Path:
    """A host-local folder for the SQLite indexes over this workspace (the run registry, the cache index).

    SQLite's locks and WAL do not hold on NFS/Lustre/GPFS across hosts, so no SQLite file lives in a shared
    workspace: the files there are the truth and each host keeps its own rebuildable index here
    (`$MIHD_INDEX_DIR`, else the temp folder), keyed by host and the workspace's resolved path, so two
    mounts of one workspace never share an index.
    """
    base = Path(os.environ.get("MIHD_INDEX_DIR") or Path(tempfile.gettempdir()) / f"mihd-index-{os.getuid()}")
    digest = hashlib.sha1(f"{socket.gethostname()}\0{Path(root).resolve()}".encode()).hexdigest()[:12]
    return base / f"{Path(root).name or 'root'}-{digest}"


def is_writable(root: Path) -> bool:
    """Whether this process may write in the workspace: False on a read-only mount (a lab's shared cache)
    or a folder without write permission. Writes nothing to find out (the dashboard shows a read-only mode)."""
    path = Path(root)
    while not path.exists() and path != path.parent:  # not made yet: whether it can be made
        path = path.parent
    try:
        return os.access(path, os.W_OK) and not os.statvfs(path).f_flag & os.ST_RDONLY
    except OSError:
        return False


def write_error(root: Path, exc: OSError, what: str, left: str = "") -> MihdError:
    """A write in the workspace that failed, as one line naming --root: full, read-only, or the system's why;
    `left` says what the caller made sure of (e.g. "no run dir is left")."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        why = "no space left on its disk" if exc.errno == errno.ENOSPC else "over its disk quota"
    elif exc.errno == errno.EROFS or not is_writable(root):
        why = "the workspace is read-only"
    else:
        why = f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
    return MihdError(f"--root {root}: cannot {what}: {why}" + (f"; {left}" if left else ""))
