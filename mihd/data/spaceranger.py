"""Read a Space Ranger output folder (or an .h5ad) into the AnnData layout of docs/ARCHITECTURE.md."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MihdError
from .shape import barcodes_checked_later, check_barcodes
from .sources import open_image

POSITION_COLUMNS = ["barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres"]
IMAGE_FILES = {"hires": "tissue_hires_image.png", "lowres": "tissue_lowres_image.png"}


def read_counts(folder: Path):
    """(AnnData of the counts, the file or folder they were read from)."""
    import scanpy as sc

    h5 = folder / "filtered_feature_bc_matrix.h5"
    mtx = folder / "filtered_feature_bc_matrix"
    try:
        if h5.is_file():
            with barcodes_checked_later():
                adata = sc.read_10x_h5(h5, gex_only=True)
            source = h5
        elif mtx.is_dir():
            with barcodes_checked_later():
                adata = sc.read_10x_mtx(mtx, var_names="gene_ids", make_unique=True)
            source = mtx
        else:
            raise MihdError(
                f"{folder}: no counts found (expected filtered_feature_bc_matrix.h5 or a filtered_feature_bc_matrix/ folder)"
            )
    except MihdError:
        raise
    except Exception as exc:  # scanpy/h5py raise many types for unreadable files
        raise MihdError(f"{h5 if h5.is_file() else mtx}: cannot read the counts ({type(exc).__name__}: {exc})") from None
    if "gene_symbols" in adata.var:
        adata.var = adata.var.rename(columns={"gene_symbols": "gene_symbol"})
    adata.var_names_make_unique()
    if adata.n_obs == 0:
        raise MihdError(f"{source}: the counts hold no spots")
    check_barcodes(adata.obs_names, source)
    return adata, source


def read_positions(spatial: Path) -> pd.DataFrame:
    v2, v1 = spatial / "tissue_positions.csv", spatial / "tissue_positions_list.csv"
    if v2.is_file():
        path, frame = v2, _read_csv(v2, header=0)
        frame.columns = POSITION_COLUMNS[: len(frame.columns)]
    elif v1.is_file():
        path, frame = v1, _read_csv(v1, header=None)
    else:
        raise MihdError(f"{spatial}: no tissue_positions.csv or tissue_positions_list.csv")
    if frame.shape[1] != 6:
        raise MihdError(f"{path}: expected 6 columns ({','.join(POSITION_COLUMNS)}), found {frame.shape[1]}")
    frame.columns = POSITION_COLUMNS
    frame["barcode"] = frame["barcode"].astype(str)
    try:
        frame[POSITION_COLUMNS[1:]] = frame[POSITION_COLUMNS[1:]].astype(float)
    except ValueError:
        raise MihdError(f"{path}: coordinate columns are not numeric") from None
    counts = frame["barcode"].value_counts()
    if counts.iloc[0] > 1:
        raise MihdError(f"{path}: barcode {counts.index[0]!r} is listed {counts.iloc[0]} times; "
                        "each spot has one position")
    frame.attrs["path"] = str(path)
    return frame.set_index("barcode")


def _read_csv(path: Path, header) -> pd.DataFrame:
    try:
        return pd.read_csv(path, header=header)
    except (ValueError, pd.errors.ParserError) as exc:
        raise MihdError(f"{path}: not a readable CSV ({exc})") from None


def read_image(path: Path) -> np.ndarray:
    try:
        with open_image(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise MihdError(f"{path}: cannot read the image ({exc})") from None


def read_scalefactors(spatial: Path) -> dict:
    path = spatial / "scalefactors_json.json"
    if not path.is_file():
        return {}
    try:
        return {k: float(v) for k, v in json.loads(path.read_text()).items()}
    except (ValueError, TypeError) as exc:
        raise MihdError(f"{path}: not valid scalefactors JSON ({exc})") from None


def read_metadata(folder: Path) -> pd.DataFrame | None:
    """spatialLIBD-style `metadata.tsv` (R writes one header field fewer: the row names)."""
    path = folder / "metadata.tsv"
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, sep="\t", low_memory=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise MihdError(f"{path}: not a readable TSV ({exc})") from None
    frame.index = frame.index.astype(str)
    return frame


def load_spaceranger(folder: Path, fullres: Path | None = None):
    """(AnnData, library id, the file each part was read from: what shape.check_slice names)."""
    adata, counts = read_counts(folder)
    files = {"counts": counts}
    spatial = folder / "spatial"
    if not spatial.is_dir():
        raise MihdError(f"{folder}: no spatial/ folder (spot positions, scalefactors, images)")
    positions = read_positions(spatial)
    missing = adata.obs_names.difference(positions.index)
    if len(missing):
        raise MihdError(
            f"{positions.attrs['path']}: {len(missing)} of {adata.n_obs} count barcodes have no position "
            f"(e.g. {missing[0]}); positions and counts do not belong together"
        )
    positions = positions.loc[adata.obs_names]
    adata.obs[["array_row", "array_col", "in_tissue"]] = positions[["array_row", "array_col", "in_tissue"]].to_numpy()
    adata.obsm["spatial"] = positions[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy(dtype=np.float64)

    images = {name: read_image(spatial / fname) for name, fname in IMAGE_FILES.items() if (spatial / fname).is_file()}
    files.update({name: spatial / fname for name, fname in IMAGE_FILES.items()})
    if fullres is not None:
        images["fullres"] = read_image(Path(fullres))
        files["fullres"] = Path(fullres)
    files.update(positions=Path(positions.attrs["path"]), scalefactors=spatial / "scalefactors_json.json")
    library_id = folder.name
    adata.uns["spatial"] = {library_id: {"images": images, "scalefactors": read_scalefactors(spatial)}}

    metadata = read_metadata(folder)
    if metadata is not None:
        shared = adata.obs_names.intersection(metadata.index)
        if len(shared) == adata.n_obs:
            extra = metadata.loc[adata.obs_names, [c for c in metadata.columns if c not in adata.obs]]
            adata.obs = pd.concat([adata.obs, extra], axis=1)
    return adata, library_id, files


def read_truth_file(path: Path, obs_names: pd.Index) -> pd.Series:
    """`barcode TAB label` lines (no header); an empty label is NA. Unknown barcodes are an error."""
    try:
        frame = pd.read_csv(path, sep="\t", header=None, dtype=str, keep_default_na=False, na_values=[""])
    except (ValueError, pd.errors.ParserError) as exc:
        raise MihdError(f"{path}: not a readable truth file ({exc})") from None
    if frame.shape[1] < 2:
        raise MihdError(f"{path}: expected two tab-separated columns (barcode, label)")
    labels = pd.Series(frame.iloc[:, 1].to_numpy(), index=frame.iloc[:, 0].astype(str))
    unknown = labels.index.difference(obs_names)
    if len(unknown):
        raise MihdError(f"{path}: {len(unknown)} barcodes are not spots of this slice (e.g. {unknown[0]})")
    return labels.reindex(obs_names)
