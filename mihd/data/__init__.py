"""Slices: load a Space Ranger folder, an .h5ad, a registered name, or the built-in `demo`.

`load_slice` returns an AnnData laid out as docs/ARCHITECTURE.md says, with `uns["mihd"]` holding the
slice id and the gene/vision fingerprints the cache checks entries against. Importing this package is
light (numpy/pandas/scanpy load when a slice does), so the dashboard can read the slice registry.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..cache import is_valid_name
from ..errors import MihdError
from ..workspace import resolve_root
from .registry import registered
from .sources import check_source

DEMO = "demo"


def find_slice(source: str, root: Path) -> tuple[str, Path | None, dict | None]:
    """(slice id, checked path, registry entry or None) of SLICE: a registered name, a Space Ranger folder or an
    .h5ad file. Reads no slice (cheap), so a bad SLICE is refused before anything is made from it; the path is
    None for the built-in demo not made yet."""
    slices = registered(root)
    if source in slices:
        return source, check_source(slices[source]["path"], f"slice {source!r}: its registered path"), slices[source]
    if source == DEMO:
        return DEMO, None, None
    if not os.path.lexists(os.path.expanduser(source)):
        known = ", ".join(sorted(slices)) or "none"
        raise MihdError(f"SLICE {source!r}: not a registered slice (registered: {known}), a folder or an .h5ad file")
    path = check_source(source)
    slice_id = path.stem if path.is_file() else path.name
    if not is_valid_name(slice_id):
        raise MihdError(f"SLICE {source}: {slice_id!r} is not a usable slice id; register it: mihd slices add NAME {path}")
    return slice_id, path, None


def load_slice(source: str | Path, root: str | Path | None = None, truth_col: str | None = None,
               fullres: str | Path | None = None):
    """The slice named by `source`: a registered name (incl. `demo`), a Space Ranger folder or an .h5ad. Its facts
    are noted (data.checked), so a launcher checks a plan against it later without loading it again."""
    from .checked import facts_of, remember, stamp

    root = resolve_root(root)
    slice_id, path, truth_col, fullres = locate(str(source), root, truth_col, fullres)
    stamped = stamp(path, truth_col, fullres)
    adata = read_slice(path, slice_id, truth_col, fullres)
    remember(root, stamped, facts_of(adata))
    return adata


def locate(source: str, root: Path, truth_col: str | None = None, fullres: str | Path | None = None, *,
           make_demo: bool = True):
    """(slice id, path, truth column, full-resolution image) that load `source`: a registered slice's own truth
    column and image unless given; the built-in demo made when first named (else its path is None)."""
    slice_id, path, entry = find_slice(str(source), root)
    if path is None and make_demo:
        from .demo import ensure_demo

        path = ensure_demo(root)
    if entry:
        truth_col = truth_col or entry.get("truth_col")
        fullres = fullres or entry.get("fullres")
    return slice_id, path, truth_col, fullres


def check_plan_slices(root: Path, spec) -> None:
    """Each slice of `spec` checked as its run will load it (one MihdError line naming the file at fault), from
    the note of an earlier load where the slice's files are unchanged, else by loading it in a child process
    (checked.facts_in_child): the launcher, the dashboard above all, never holds a slice nor what reads one."""
    from .checked import check_fits, facts_in_child, recall, stamp

    given = (spec.slice_options.get("truth_col"), spec.slice_options.get("fullres"))
    for slice_id in spec.slices:
        source = spec.source_of(slice_id)
        _, path, truth_col, fullres = locate(source, root, *given, make_demo=False)
        facts = recall(root, stamp(path, truth_col, fullres)) if path else None
        if facts is None:
            facts = facts_in_child(root, source, *given)
        check_fits(facts, spec.on_slice(slice_id), slice_id)


def read_slice(path: Path, slice_id: str, truth_col: str | None = None, fullres: str | Path | None = None):
    """The slice at `path` (a checked Space Ranger folder or .h5ad), checked inside (data.shape: one line naming
    the file at fault) before anything is made from it."""
    from .shape import check_slice

    if path.is_dir():
        from .spaceranger import load_spaceranger

        adata, library_id, files = load_spaceranger(path, Path(fullres) if fullres else None)
    else:
        adata, library_id = _load_h5ad(path)
        files = {"slice": path}
    check_slice(adata, library_id, files)

    from .fingerprint import gene_fingerprint, vision_fingerprint

    _attach_truth(adata, path, slice_id, truth_col)
    adata.uns["mihd"] = {
        "slice_id": slice_id,
        "source": str(path),
        "library_id": library_id,
        "fingerprint": {"gene": gene_fingerprint(adata), "vision": vision_fingerprint(adata)},
    }
    return adata


def _load_h5ad(path: Path):
    import anndata

    from .shape import barcodes_checked_later

    try:
        with barcodes_checked_later():
            adata = anndata.read_h5ad(path)
    except Exception as exc:  # h5py/anndata raise many types for unreadable files
        raise MihdError(f"{path}: cannot read the .h5ad ({type(exc).__name__}: {exc})") from None
    spatial = adata.uns.get("spatial") or {}
    library_id = next(iter(spatial), path.stem)
    return adata, library_id


def _attach_truth(adata, path: Path, slice_id: str, truth_col: str | None) -> None:
    import numpy as np
    import pandas as pd

    if truth_col:
        if truth_col not in adata.obs:
            raise MihdError(f"--truth-col {truth_col!r}: no such column; columns: {', '.join(map(str, adata.obs.columns))}")
        labels = adata.obs[truth_col].astype(object)
    elif path.is_dir():
        from .spaceranger import read_truth_file

        candidates = [path / f"{slice_id}_truth.txt", path / f"{path.name}_truth.txt", *sorted(path.glob("*_truth.txt"))]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            return
        labels = read_truth_file(found, adata.obs_names)
    elif "truth" in adata.obs:
        labels = adata.obs["truth"].astype(object)
    else:
        return
    labels = labels.where(pd.notna(labels) & (labels.astype(str).str.strip() != ""), np.nan)
    adata.obs["truth"] = pd.Categorical(labels)


def slice_id(adata) -> str:
    return adata.uns["mihd"]["slice_id"]


def has_truth(adata) -> bool:
    return "truth" in adata.obs and adata.obs["truth"].notna().any()
