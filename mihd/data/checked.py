"""What a plan needs of its slices (spots, labelled spots, truth domains, coordinates), checked before a run dir is
made, and remembered by the slice files' sizes and times so a launcher need not load a slice again to check it.

A launched run loads its slice in its own process, after its run dir is made: a slice wrong inside, or one the plan
cannot use, left a failed run behind where a researcher expects one line and nothing made. `check_plan_slices` (in
data/__init__.py) says it in the launching process first. Every `load_slice` notes the slice's facts in the host's
index folder, so a slice loaded here before (by a run, a launch, an extraction) is checked from that note; only a
slice never loaded on this host is read once, with the loader's own checks (data.shape), by a child process
(data/check_child.py): the launcher, the dashboard above all, stays free of anndata and of the slice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import MihdError
from ..jsonio import read_json, write_json_atomic
from ..safe_text import safe_text
from ..workspace import host_index_dir

NOTES = "slices_checked.json"
KEEP = 256  # notes kept, newest last: far more slices than a lab works on at once
ERROR = "mihd: error: "  # how the child's stderr says a slice wrong inside


@dataclass(frozen=True)
class SliceFacts:
    source: str  # the file or folder the slice was read from, as its errors name it
    spots: int
    spatial: bool  # whether it has spot coordinates (obsm["spatial"])
    domains: int | None  # distinct truth labels; None without any
    labelled: int | None  # spots with a truth label; None without a truth column


def facts_of(adata) -> SliceFacts:
    """The facts of a loaded slice (`load_slice`'s AnnData)."""
    from ..metrics import labelled_mask

    truth = adata.obs["truth"] if "truth" in adata.obs else None
    known = truth is not None and truth.notna().any()
    return SliceFacts(str(adata.uns["mihd"]["source"]), int(adata.n_obs), "spatial" in adata.obsm,
                      int(truth.nunique()) if known else None,
                      None if truth is None else int(labelled_mask(truth.astype(object)).sum()))


def check_fits(facts: SliceFacts, spec, slice_id: str) -> None:
    """What the plan needs of this slice: spot coordinates (every cell's fusion and clustering takes them) and a k
    its spots can hold, naming where k came from (the truth's domains when --n-clusters was not given)."""
    where = f"{facts.source} (slice {slice_id})"
    if not facts.spatial:
        raise MihdError(f"{where}: no spot coordinates (obsm['spatial']), which --fusion {spec.cells[0].fusion} needs")
    n = facts.labelled if spec.drop_unlabelled and facts.labelled is not None else facts.spots
    spots = f"{n} {'labelled ' if spec.drop_unlabelled else ''}spots"
    if spec.n_clusters is not None:
        if spec.n_clusters > n:
            raise MihdError(f"--n-clusters {spec.n_clusters}: more than the {spots} of {where}")
        return
    if facts.domains is None:
        raise MihdError(f"--n-clusters: required, since {where} has no truth labels to take the number from")
    if not 2 <= facts.domains <= n:
        raise MihdError(f"{where}: its truth labels hold {facts.domains} domain{'s' * (facts.domains != 1)} for "
                        f"{spots}, so k cannot be taken from them; give --n-clusters (from 2 to {n})")


def facts_in_child(root: Path, source: str, truth_col: str | None, fullres) -> SliceFacts:
    """The facts of slice `source` as a run loads it, read by a child process (data/check_child.py): its MihdError
    is raised here word for word, and a child that ended otherwise (killed, crashed) is one line saying so."""
    argv = [sys.executable, "-m", "mihd.data.check_child", f"--root={root}", f"--source={source}"]
    argv += [f"--truth-col={truth_col}"] if truth_col else []
    argv += [f"--fullres={fullres}"] if fullres else []
    proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
    if proc.returncode == 2 and ERROR in proc.stderr:
        raise MihdError(proc.stderr[proc.stderr.rindex(ERROR) + len(ERROR):].strip())
    if proc.returncode == 0:
        try:
            return SliceFacts(**json.loads(proc.stdout.splitlines()[-1]))
        except (IndexError, ValueError, TypeError):
            pass
    raise MihdError(f"SLICE {source}: could not be checked ({_ended(proc)})")


def _ended(proc: subprocess.CompletedProcess) -> str:
    """How a child that gave no facts and no error line ended: its exit code or signal, and its last stderr line."""
    code = proc.returncode
    how = f"its check was killed by signal {-code}" if code < 0 else f"its check exited with code {code}"
    last = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    return f"{how}: {safe_text(last[-1][:300])}" if last else how


def stamp(path: Path, truth_col: str | None, fullres) -> tuple[str, list]:
    """(what was asked: the slice, its truth column and image; the size and time of each file read for it). A
    Space Ranger folder's files lie in it and one level down (spatial/, the counts folder)."""
    files = [Path(path)] if Path(path).is_file() else _files(Path(path))
    files += [Path(fullres)] if fullres else []
    seen = []
    for file in files:
        try:
            st = os.stat(file)
        except OSError:
            continue  # the loader says what is wrong with it
        seen.append([str(file), st.st_size, st.st_mtime_ns])
    return json.dumps([str(path), truth_col, str(fullres) if fullres else None]), seen


def _files(folder: Path) -> list[Path]:
    try:
        top = list(os.scandir(folder))
        below = [e for d in top if d.is_dir() for e in os.scandir(d.path)]
    except OSError:
        return []
    return sorted(Path(e.path) for e in top + below if e.is_file())


def recall(root: Path, stamped: tuple[str, list]) -> SliceFacts | None:
    """The facts noted for these very files, or None (never noted, changed since, or a note unreadable)."""
    key, files = stamped
    note = _notes(root).get(key)
    if not isinstance(note, dict) or note.get("files") != files:
        return None
    try:
        return SliceFacts(**note["facts"])
    except (TypeError, KeyError):
        return None


def remember(root: Path, stamped: tuple[str, list], facts: SliceFacts) -> None:
    """Note the facts of a slice just loaded and checked; a note that cannot be written is only a later reload."""
    key, files = stamped
    notes = {k: v for k, v in _notes(root).items() if k != key}
    notes[key] = {"files": files, "facts": asdict(facts)}
    folder = host_index_dir(root)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / NOTES, dict(list(notes.items())[-KEEP:]))
    except OSError:
        pass


def _notes(root: Path) -> dict:
    notes = read_json(host_index_dir(root) / NOTES, default={})
    return notes if isinstance(notes, dict) else {}
