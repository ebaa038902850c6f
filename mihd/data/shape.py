"""What a loaded slice must hold before any work is done on it, said in one line naming the file at fault.

A slice that is wrong inside (a barcode twice, NaN coordinates, every count zero, an image its spots fall
outside of once scaled, a scale factor of 0) otherwise fails deep in pandas or ARPACK with a traceback, or,
worse, runs: patches cut outside a 10x10 image were cached and scored. `check_slice` runs on every load
(`load_slice`, `mihd slices add`), before a run dir or a cache entry can be made from it.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import MihdError

SCALE_KEYS = {"hires": "tissue_hires_scalef", "lowres": "tissue_lowres_scalef"}  # as encoders.patches reads them
SIZES = ("spot_diameter_fullres", "fiducial_diameter_fullres")


def check_slice(adata, library_id: str, files: dict[str, Path]) -> None:
    """Raise a MihdError naming the file when the slice is not usable. `files`: where each part was read
    from ("counts", "positions", "scalefactors", "hires", "lowres", "fullres"), else "slice" (an .h5ad)."""
    def where(part: str) -> Path:
        return files.get(part) or files["slice"]

    names = adata.obs_names
    check_barcodes(names, where("counts"))
    _check_counts(adata.X, adata.shape, where("counts"))
    if "spatial" not in adata.obsm:
        return  # a method that needs coordinates says so (pipeline.check_slice_for)
    xy = _coords(adata, where("positions"))
    library = (adata.uns.get("spatial") or {}).get(library_id) or {}
    scalefactors = _scalefactors(library.get("scalefactors") or {}, where("scalefactors"))
    for name, image in (library.get("images") or {}).items():
        scale = 1.0 if name == "fullres" else scalefactors.get(SCALE_KEYS.get(name, ""))
        if image is not None and scale is not None:
            _inside(xy, names, np.shape(image), scale, name, where(name))


@contextmanager
def barcodes_checked_later():
    """anndata warns of a repeated barcode on stderr as it reads; check_barcodes then says it in one line."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Observation names are not unique")
        yield


def check_barcodes(names, path: Path) -> None:
    if not names.is_unique:
        twice = names[names.duplicated()][0]
        raise MihdError(f"{path}: barcode {twice!r} appears {int((names == twice).sum())} times; "
                        "each spot needs its own barcode")


def _check_counts(x, shape: tuple[int, int], path: Path) -> None:
    if shape[1] == 0:
        raise MihdError(f"{path}: the counts hold no genes")
    values = x.data if hasattr(x, "data") and not isinstance(x, np.ndarray) else np.asarray(x)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        raise MihdError(f"{path}: {int(bad.sum())} counts are negative or not a number; counts are whole numbers >= 0")
    if not np.any(values):
        raise MihdError(f"{path}: every count is zero ({shape[0]} spots x {shape[1]} genes): "
                        "nothing to find domains in")


def _coords(adata, path: Path) -> np.ndarray:
    try:
        xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)
    except (TypeError, ValueError):
        raise MihdError(f"{path}: the spot coordinates (obsm['spatial']) are not numbers") from None
    if xy.ndim != 2 or xy.shape[1] < 2:
        raise MihdError(f"{path}: the spot coordinates (obsm['spatial']) have shape {xy.shape}, not (spots, 2)")
    bad = ~np.isfinite(xy[:, :2]).all(axis=1)
    if bad.any():
        raise MihdError(f"{path}: {int(bad.sum())} of {len(xy)} spots have no finite coordinates "
                        f"(e.g. {adata.obs_names[bad][0]})")
    return xy[:, :2]


def _scalefactors(given: dict, path: Path) -> dict[str, float]:
    out = {}
    for key, value in given.items():
        if not (str(key).endswith("_scalef") or key in SIZES):
            continue
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            out[key] = float("nan")
        if not np.isfinite(out[key]) or out[key] <= 0:
            raise MihdError(f"{path}: {key} is {value!r}; a scale factor or spot size must be a positive number")
    return out


def _inside(xy: np.ndarray, names, shape: tuple, scale: float, name: str, path: Path) -> None:
    """Every spot centre, scaled to the image's pixels, lies on the image."""
    height, width = shape[:2]
    px = xy * scale
    out = (px[:, 0] < 0) | (px[:, 0] > width) | (px[:, 1] < 0) | (px[:, 1] > height)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        by = "" if name == "fullres" else f" scaled by {SCALE_KEYS[name]} {scale:g}"
        raise MihdError(f"{path}: {int(out.sum())} of {len(xy)} spots fall outside this {width} x {height} "
                        f"{name} image{by} (e.g. {names[i]} at x {px[i, 0]:.0f}, y {px[i, 1]:.0f}); "
                        "the image or scale factors do not belong to these spots")
