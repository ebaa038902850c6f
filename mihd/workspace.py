"""The workspace root: where embeddings, runs, the registry and registered slices live, and the readers of
its optional config files (cache_from.json, tui_keys.json, slices.json entries).

A config file that is wrong never stops a command nor is half-believed: what is wrong is said in one line
(`mihd: warning: FILE: ...` once per process; the dashboard shows config_problems) and the rest is used.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import sys
import unicodedata
import tempfile
from pathlib import Path
from typing import Any

from .errors import MihdError

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "cache"


def resolve_root(root: str | os.PathLike | None = None, create: bool = True) -> Path:
    """`--root`, else `MIHD_ROOT`, else the checkout's `cache/` folder. An empty one (an unset shell variable) is
    refused, never read as "not given": the researcher's work would land in the checkout."""
    for what, given in (("--root", root), ("MIHD_ROOT", os.environ.get("MIHD_ROOT"))):
        if given is not None and not str(given).strip():
            raise MihdError(f"{what} {str(given)!r}: empty (an unset variable?); give the workspace folder")
        if given is not None:
            break
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


def cache_from_file(root: Path) -> Path:
    """`<root>/cache_from.json`: a list of read-only workspaces to read embeddings from as well."""
    return Path(root) / "cache_from.json"


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


# -- optional config files ---------------------------------------------------------------------------------
_said: set[str] = set()


def warn_once(line: str) -> None:
    """Say a config file's problem once per process on stderr; the command goes on with what could be read."""
    if line not in _said:
        _said.add(line)
        print(f"mihd: warning: {line}", file=sys.stderr)


def _load(path: Path) -> tuple[Any, str | None]:
    """(the parsed file or None when absent, the one-line problem when it cannot be read as JSON)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{path}: unreadable ({getattr(exc, 'strerror', None) or exc}); ignored"
    try:
        return json.loads(text), None
    except ValueError as exc:
        return None, f"{path}: not valid JSON ({exc}); ignored"


def read_cache_from(root: Path) -> tuple[list[Path], list[str]]:
    """cache_from.json's folders (a JSON list of paths) and the problems of the entries left out."""
    file = cache_from_file(root)
    listed, problem = _load(file)
    if problem or listed is None:
        return [], [problem] if problem else []
    if not isinstance(listed, list):
        return [], [f"{file}: expected a JSON list of workspace folders, got {type(listed).__name__}; ignored"]
    folders, problems = [], []
    for i, entry in enumerate(listed):
        if not isinstance(entry, str) or not entry.strip():
            problems.append(f"{file}: entry {i}: {entry!r} is not a folder path; left out")
        elif not Path(entry).expanduser().is_dir():
            problems.append(f"{file}: entry {i}: {entry} is not a folder here; left out")
        else:
            folders.append(Path(entry).expanduser())
    return folders, problems


KEY_NAMES = {"backspace", "delete", "down", "end", "enter", "escape", "home", "insert", "left", "pagedown", "pageup",
             "return", "right", "space", "tab", "up", *(f"f{n}" for n in range(1, 25))}  # Textual's named keys
MODIFIERS = {"ctrl", "shift", "alt", "meta", "super", "hyper"}


def _key_name(key: str) -> bool:
    """`q`, `ctrl+k`, `f5`, `question_mark` (a character's Unicode name, as Textual reads it); not `notakey!!`."""
    *mods, name = key.split("+") if len(key) > 1 else [key]
    if not name or not set(mods) <= MODIFIERS:
        return False
    if len(name) == 1 or name in KEY_NAMES:
        return name.isprintable()
    try:
        return unicodedata.lookup(name.replace("_", " ").upper()).isprintable()
    except KeyError:
        return False


def _is_key(text: Any) -> bool:
    """A Textual key list such as `q`, `K`, `ctrl+k` or `f5,k`: key names, comma separated."""
    return isinstance(text, str) and all(_key_name(k.strip()) for k in text.split(","))


def read_keymap(root: Path) -> tuple[dict[str, str], list[str]]:
    """tui_keys.json's remapping {binding id: keys} and the problems of the entries left out (their keys stay)."""
    file = keymap_file(Path(root))
    data, problem = _load(file)
    if problem or data is None:
        return {}, [problem] if problem else []
    if not isinstance(data, dict):
        return {}, [f"{file}: expected a JSON object {{binding id: keys}}, got {type(data).__name__}; "
                    "the default keys are used"]
    keymap, problems = {}, []
    for binding, keys in data.items():
        if _is_key(keys):
            keymap[binding] = keys.strip()
        else:
            problems.append(f"{file}: {binding}: {keys!r} is not a key (a name such as \"q\" or \"ctrl+k\"); "
                            "its default key is kept")
    return keymap, problems


def slice_entries(data: Any, file: Path) -> tuple[dict[str, dict], list[str]]:
    """The well-formed entries of slices.json's content ({name: {"path", "truth_col", "fullres"}}) and a line
    for each left out."""
    if not isinstance(data, dict):
        return {}, [f"{file}: not a JSON object of registered slices; no slice is read from it"]
    good, problems = {}, []
    for name, entry in data.items():
        fields = entry if isinstance(entry, dict) else {}
        if not isinstance(fields.get("path"), str) or not fields["path"]:
            problems.append(f"{file}: slice {name!r}: no \"path\"; left out (slices add it again)")
        elif any(fields.get(k) is not None and not isinstance(fields[k], str) for k in ("truth_col", "fullres")):
            problems.append(f"{file}: slice {name!r}: truth_col and fullres must be text; left out")
        else:
            good[name] = entry
    return good, problems


def config_problems(root: Path) -> list[str]:
    """Every problem of the workspace's optional config files, one line each (what the dashboard shows)."""
    file = slices_file(Path(root))
    data, problem = _load(file)
    slices = [problem] if problem else slice_entries(data, file)[1] if data is not None else []
    return read_cache_from(root)[1] + read_keymap(root)[1] + slices
