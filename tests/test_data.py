"""Slices load from real files in every supported layout; bad input is a one-line error."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DLPFC, assert_one_line_error, needs_dlpfc, run_mihd
from slice_factory import write_spaceranger

from mihd.data import load_slice
from mihd.errors import MihdError


@pytest.mark.parametrize("positions,counts", [("v1", "mtx"), ("v2", "h5"), ("v2", "mtx")])
def test_spaceranger_layouts_load_counts_coords_and_image(tmp_path, positions, counts):
    written = write_spaceranger(tmp_path / "s1", positions=positions, counts=counts)
    adata = load_slice(tmp_path / "s1", root=tmp_path / "ws")
    assert list(adata.obs_names) == written["barcodes"]
    assert np.array_equal(adata.X.toarray(), written["counts"])
    assert np.array_equal(adata.obsm["spatial"][:, 0], written["x"])  # x = image column
    assert np.array_equal(adata.obsm["spatial"][:, 1], written["y"])
    lib = adata.uns["spatial"]["s1"]
    assert lib["images"]["hires"].shape == (600, 700, 3)
    assert lib["scalefactors"]["tissue_hires_scalef"] == 0.5
    assert adata.uns["mihd"]["slice_id"] == "s1"


def test_truth_file_labels_with_na_left_out(tmp_path):
    written = write_spaceranger(tmp_path / "s1")
    lines = [f"{b}\t{'L1' if i % 2 else 'L2'}" if i % 7 else f"{b}\t" for i, b in enumerate(written["barcodes"])]
    (tmp_path / "s1" / "s1_truth.txt").write_text("\n".join(lines) + "\n")
    adata = load_slice(tmp_path / "s1", root=tmp_path / "ws")
    assert adata.obs["truth"].isna().sum() == len(range(0, 60, 7))
    assert set(adata.obs["truth"].dropna()) == {"L1", "L2"}


def test_truth_file_with_unknown_barcodes_is_an_error(tmp_path):
    write_spaceranger(tmp_path / "s1")
    (tmp_path / "s1" / "s1_truth.txt").write_text("NOTASPOT-1\tL1\n")
    with pytest.raises(MihdError, match=r"s1_truth.txt: 1 barcodes are not spots"):
        load_slice(tmp_path / "s1", root=tmp_path / "ws")


def test_fingerprints_change_with_their_own_modality_only(tmp_path):
    write_spaceranger(tmp_path / "s1")
    before = load_slice(tmp_path / "s1", root=tmp_path / "ws").uns["mihd"]["fingerprint"]
    write_spaceranger(tmp_path / "s1", seed=0, image=False)  # same counts, image file kept
    from PIL import Image

    Image.fromarray(np.zeros((600, 700, 3), dtype=np.uint8)).save(tmp_path / "s1" / "spatial" / "tissue_hires_image.png")
    after = load_slice(tmp_path / "s1", root=tmp_path / "ws").uns["mihd"]["fingerprint"]
    assert after["gene"] == before["gene"] and after["vision"] != before["vision"]


def test_demo_is_deterministic_layered_and_fine_enough(demo_adata):
    from mihd.data.demo import make_demo

    again = make_demo()
    assert np.array_equal(again.X.toarray(), demo_adata.X.toarray())
    assert np.array_equal(again.uns["spatial"]["demo"]["images"]["hires"], demo_adata.uns["spatial"]["demo"]["images"]["hires"])
    assert 2000 <= demo_adata.n_obs <= 4000
    assert 5 <= demo_adata.obs["truth"].nunique() <= 7
    assert demo_adata.uns["spatial"]["demo"]["scalefactors"]["spot_diameter_fullres"] >= 32


def test_registered_name_and_h5ad_sources(tmp_path):
    write_spaceranger(tmp_path / "raw_folder")
    root = tmp_path / "ws"
    proc = run_mihd("slices", "add", "mine", str(tmp_path / "raw_folder"), root=root)
    assert proc.returncode == 0, proc.stderr
    assert "mine" in run_mihd("slices", "ls", root=root).stdout
    adata = load_slice("mine", root=root)
    assert adata.uns["mihd"]["slice_id"] == "mine"
    adata.write_h5ad(tmp_path / "copy.h5ad")
    again = load_slice(tmp_path / "copy.h5ad", root=root)
    assert again.uns["mihd"]["slice_id"] == "copy" and again.n_obs == adata.n_obs


@needs_dlpfc
def test_real_dlpfc_151673_loads_as_published(tmp_path):
    adata = load_slice(DLPFC, root=tmp_path)
    assert adata.shape == (3639, 5000)
    assert adata.obs["truth"].isna().sum() == 28
    assert adata.obs["truth"].nunique() == 7
    assert "sum_umi" in adata.obs  # from metadata.tsv: the true library size
    assert adata.uns["spatial"]["dlpfc_151673"]["images"]["lowres"].shape == (600, 600, 3)
    # full-res coordinates land inside the low-res image once scaled
    scale = adata.uns["spatial"]["dlpfc_151673"]["scalefactors"]["tissue_lowres_scalef"]
    assert (adata.obsm["spatial"] * scale).max() < 600


def test_bad_slice_inputs_are_one_line_errors(tmp_path):
    root = tmp_path / "ws"
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_mihd("extract", str(tmp_path / "empty"), "--gene", "pca", root=root), "no counts found")
    written = write_spaceranger(tmp_path / "mismatch")
    positions = tmp_path / "mismatch" / "spatial" / "tissue_positions_list.csv"
    positions.write_text(positions.read_text().replace(written["barcodes"][3], "ZZZZ-1"))
    assert_one_line_error(run_mihd("extract", str(tmp_path / "mismatch"), "--gene", "pca", root=root),
                          "tissue_positions_list.csv", "1 of 60 count barcodes have no position")
    assert_one_line_error(run_mihd("extract", "nope", "--gene", "pca", root=root), "SLICE 'nope'")
