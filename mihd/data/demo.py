"""The built-in `demo` slice: synthetic, deterministic, with something for fusion to win.

Six layered domains (wavy bands, like cortical layers) on a Visium hex grid. Genes separate L1|L2|L3+L4|L5|L6
(L3 and L4 share one expression profile); the H&E-like image separates L1+L2|L3|L4|L5+L6 (texture and
colour). So gene-only clustering cannot split L3/L4, vision-only cannot split L1/L2 or L5/L6, and only a
fusion of both recovers all six. Counts follow a negative binomial with marker genes; the image has a spot
about 33 px wide, nuclei whose density and size follow the domain, and fibre stripes.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np

SEED = 1673
N_ROWS, N_COLS = 52, 58
PITCH = 60.0  # centre-to-centre spot distance in px (Visium: 100 um)
SPOT_DIAMETER = 33.0  # px (Visium: 55 um)
MARGIN = 60
BOUNDS = (0.14, 0.31, 0.48, 0.64, 0.81)
LAYERS = ("L1", "L2", "L3", "L4", "L5", "L6")
GENE_CLASS = (0, 1, 2, 2, 3, 4)
TEXTURE_CLASS = (0, 0, 1, 2, 3, 3)
N_GENES, N_MARKERS, MARKER_FOLD = 1200, 40, 2.2
# per texture class: background RGB, nuclei density, nuclei blob sigma, stripe amplitude, stripe angle
TEXTURES = (
    ((236, 188, 214), 0.0020, 2.0, 0.00, 0.0),
    ((222, 160, 200), 0.0060, 1.6, 0.15, 0.0),
    ((224, 162, 198), 0.0014, 3.4, 0.15, 0.0),
    ((214, 150, 205), 0.0035, 2.0, 0.60, 0.8),
)
NUCLEUS_RGB = np.array((72, 52, 128), dtype=np.float32)


def spot_grid() -> np.ndarray:
    rows, cols = np.meshgrid(np.arange(N_ROWS), np.arange(N_COLS), indexing="ij")
    x = MARGIN + cols * PITCH + (rows % 2) * PITCH / 2
    y = MARGIN + rows * PITCH * np.sqrt(3) / 2
    return np.column_stack([x.ravel(), y.ravel()]), rows.ravel(), cols.ravel()


def image_size() -> tuple[int, int]:
    return int(MARGIN * 2 + (N_ROWS - 1) * PITCH * np.sqrt(3) / 2) + 1, int(MARGIN * 2 + (N_COLS - 0.5) * PITCH) + 1


def layer_of(x, y, height: int, width: int) -> np.ndarray:
    t = y / height + 0.045 * np.sin(2 * np.pi * x / width * 1.3) + 0.02 * np.sin(2 * np.pi * x / width * 3.1 + 1.0)
    return np.searchsorted(BOUNDS, t)


def make_counts(layers: np.ndarray, rng: np.random.Generator):
    import scipy.sparse as sp

    base = np.exp(rng.normal(-0.8, 1.1, N_GENES))
    effect = np.ones((max(GENE_CLASS) + 1, N_GENES))
    for cls in range(effect.shape[0]):
        markers = rng.choice(N_GENES, N_MARKERS, replace=False)
        effect[cls, markers] *= MARKER_FOLD
    library = np.exp(rng.normal(0.0, 0.35, len(layers)))
    mu = library[:, None] * base[None, :] * effect[np.asarray(GENE_CLASS)[layers]]
    dispersion = 2.0
    counts = rng.negative_binomial(dispersion, dispersion / (dispersion + mu))
    return sp.csr_matrix(counts.astype(np.int32))


def make_image(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = np.asarray(TEXTURE_CLASS)[layer_of(xx, yy, height, width)]
    del yy
    params = list(zip(*TEXTURES))
    bg = np.asarray(params[0], dtype=np.float32)[texture]
    density, sigma, amp, angle = (np.asarray(p, dtype=np.float32)[texture] for p in params[1:])
    uniform = rng.random((height, width), dtype=np.float32)
    nuclei = np.zeros((height, width), dtype=np.float32)
    for s in sorted(set(params[2])):  # one blur per nucleus size
        seeds = ((uniform < density) & (sigma == s)).astype(np.float32)
        nuclei += np.clip(gaussian_filter(seeds, s) * (2 * np.pi * s * s) * 1.3, 0, 1)
    nuclei = np.clip(nuclei, 0, 1)
    del uniform
    ys = np.arange(height, dtype=np.float32)[:, None]
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + ys * np.sin(angle)) / 9.0)
    bg = bg - (amp * stripes)[..., None] * np.array((18, 40, 14), dtype=np.float32)
    rgb = bg * (1 - nuclei[..., None]) + NUCLEUS_RGB * nuclei[..., None]
    rgb += rng.normal(0, 6, rgb.shape).astype(np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def make_demo():
    """The demo AnnData (raw counts, coords, truth, one image at full resolution)."""
    import anndata
    import pandas as pd

    rng = np.random.default_rng(SEED)
    height, width = image_size()
    coords, rows, cols = spot_grid()
    layers = layer_of(coords[:, 0], coords[:, 1], height, width)
    truth = np.asarray(LAYERS, dtype=object)[layers]
    truth[rng.random(len(truth)) < 0.01] = np.nan  # a few unannotated spots, as in real slices
    barcodes = [f"DEMO{r:02d}{c:02d}-1" for r, c in zip(rows, cols)]
    obs = pd.DataFrame({"array_row": rows, "array_col": cols, "truth": pd.Categorical(truth, categories=LAYERS)},
                       index=barcodes)
    genes = [f"DG{i:05d}" for i in range(N_GENES)]
    var = pd.DataFrame({"gene_symbol": [f"Demo{i}" for i in range(N_GENES)]}, index=genes)
    adata = anndata.AnnData(X=make_counts(layers, rng), obs=obs, var=var)
    adata.obsm["spatial"] = coords
    adata.uns["spatial"] = {"demo": {
        "images": {"hires": make_image(height, width, rng)},
        "scalefactors": {"tissue_hires_scalef": 1.0, "spot_diameter_fullres": SPOT_DIAMETER,
                         "fiducial_diameter_fullres": SPOT_DIAMETER * 1.5},
    }}
    return adata


def ensure_demo(root: Path) -> Path:
    """Make `<root>/demo/demo.h5ad` once and register it. Written under a temporary name and renamed in, so
    concurrent first uses are safe; a failed write (a full disk) is a one-line MihdError that leaves nothing,
    and a killed one leaves a `.demo.h5ad.*.tmp` that `mihd cache gc` finds."""
    from ..workspace import demo_dir
    from .registry import register, registered

    path = demo_dir(Path(root)) / "demo.h5ad"
    known = registered(root, strict=True)  # a broken slices.json is said before the demo is made, not after
    if not path.is_file():
        _write_demo(Path(root), path)
    if "demo" not in known:
        register(root, "demo", path)  # made here, as check_slice wants it: not read back
    return path


def demo_bytes() -> int:
    """About what demo.h5ad takes on disk (its image dominates): checked against the free space first."""
    height, width = image_size()
    return height * width * 3 + N_ROWS * N_COLS * N_GENES * 2 + (4 << 20)


def _write_demo(root: Path, path: Path) -> None:
    import contextlib
    import shutil
    import uuid

    from ..cache_files import write_error

    what, need = "make the demo slice", demo_bytes()
    made = not path.parent.exists()  # the demo folder this call makes goes again when the write fails
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(path.parent).free
        if free < need:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            make_demo().write_h5ad(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:  # h5py's errors are OSErrors, often without an errno
        if made:
            with contextlib.suppress(OSError):
                path.parent.rmdir()
        if "No space left" in str(exc):
            exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        raise write_error(root, exc, what, need) from None
