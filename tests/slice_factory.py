"""Write small Space Ranger folders to disk so the loaders are tested on real files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
from PIL import Image


def write_spaceranger(folder: Path, n_spots: int = 60, n_genes: int = 40, positions: str = "v1", counts: str = "mtx",
                      image: bool = True, seed: int = 0) -> dict:
    """A Space Ranger-like folder; returns what was written (barcodes, counts, coords)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    barcodes = [f"AAAC{i:06d}-1" for i in range(n_spots)]
    genes = [f"ENSG{i:08d}" for i in range(n_genes)]
    counts_matrix = rng.poisson(2.0, (n_spots, n_genes)).astype(np.int32)
    if counts == "mtx":
        _write_mtx(folder / "filtered_feature_bc_matrix", counts_matrix, barcodes, genes)
    elif counts == "h5":
        _write_h5(folder / "filtered_feature_bc_matrix.h5", counts_matrix, barcodes, genes)
    spatial = folder / "spatial"
    spatial.mkdir(exist_ok=True)
    rows, cols = np.divmod(np.arange(n_spots), 10)
    px_row, px_col = 100 + rows * 80, 100 + cols * 90 + (rows % 2) * 45
    lines = [f"{b},1,{r},{c},{pr},{pc}" for b, r, c, pr, pc in zip(barcodes, rows, cols, px_row, px_col)]
    if positions == "v2":
        lines.insert(0, "barcode,in_tissue,array_row,array_col,pxl_row_in_fullres,pxl_col_in_fullres")
        (spatial / "tissue_positions.csv").write_text("\n".join(lines) + "\n")
    else:
        (spatial / "tissue_positions_list.csv").write_text("\n".join(lines) + "\n")
    (spatial / "scalefactors_json.json").write_text(json.dumps(
        {"spot_diameter_fullres": 60.0, "fiducial_diameter_fullres": 90.0, "tissue_hires_scalef": 0.5, "tissue_lowres_scalef": 0.1}))
    if image:
        Image.fromarray(rng.integers(0, 255, (600, 700, 3), dtype=np.uint8)).save(spatial / "tissue_hires_image.png")
    return {"barcodes": barcodes, "genes": genes, "counts": counts_matrix, "x": px_col, "y": px_row}


def _write_mtx(folder: Path, counts: np.ndarray, barcodes, genes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    nz = np.nonzero(counts.T)
    body = "\n".join(f"{g + 1} {s + 1} {counts[s, g]}" for g, s in zip(*nz))
    header = f"%%MatrixMarket matrix coordinate integer general\n{counts.shape[1]} {counts.shape[0]} {len(nz[0])}\n"
    with gzip.open(folder / "matrix.mtx.gz", "wt") as fh:
        fh.write(header + body + "\n")
    with gzip.open(folder / "features.tsv.gz", "wt") as fh:
        fh.write("".join(f"{g}\tSYM{i}\tGene Expression\n" for i, g in enumerate(genes)))
    with gzip.open(folder / "barcodes.tsv.gz", "wt") as fh:
        fh.write("".join(f"{b}\n" for b in barcodes))


def _write_h5(path: Path, counts: np.ndarray, barcodes, genes) -> None:
    import h5py
    import scipy.sparse as sp

    csc = sp.csc_matrix(counts.T)  # genes x spots, stored by column (spot)
    with h5py.File(path, "w") as f:
        m = f.create_group("matrix")
        m["barcodes"] = np.array(barcodes, dtype="S")
        m["data"], m["indices"], m["indptr"] = csc.data, csc.indices, csc.indptr
        m["shape"] = np.array(csc.shape, dtype=np.int32)
        feat = m.create_group("features")
        feat["id"] = np.array(genes, dtype="S")
        feat["name"] = np.array([f"SYM{i}" for i in range(len(genes))], dtype="S")
        feat["feature_type"] = np.array(["Gene Expression"] * len(genes), dtype="S")
        feat["genome"] = np.array(["GRCh38"] * len(genes), dtype="S")
        feat["_all_tag_keys"] = np.array(["genome"], dtype="S")
