"""A slice that is wrong inside is one line naming the file, before any work: `mihd run` makes no run dir and no
cache entry, `mihd slices add` registers nothing. Each was seen as a traceback (pandas ValueError, KeyError,
ArpackError) or, worse, as a run `done` with a score made from patches cut outside a 10x10 image."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import anndata
import numpy as np
import pytest
from PIL import Image

from conftest import run_mihd
from mihd.cli import main
from slice_factory import write_spaceranger

RUN = ("--gene", "pca", "--vision", "texture", "--fusion", "concat")


def _edit_positions(folder: Path, edit) -> None:
    path = folder / "spatial" / "tissue_positions_list.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


def _nan_at(lines, i=3):
    parts = lines[i].split(",")
    parts[4] = "nan"
    return [*lines[:i], ",".join(parts), *lines[i + 1:]]


def _scalefactors(folder: Path, **values) -> None:
    path = folder / "spatial" / "scalefactors_json.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **values}))


def _zero_counts(folder: Path) -> None:
    with gzip.open(folder / "filtered_feature_bc_matrix" / "matrix.mtx.gz", "wt") as fh:
        fh.write("%%MatrixMarket matrix coordinate integer general\n40 60 0\n")


def _twice_in_counts(folder: Path) -> None:
    path = folder / "filtered_feature_bc_matrix" / "barcodes.tsv.gz"
    names = gzip.open(path, "rt").read().splitlines()
    names[1] = names[0]
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(names) + "\n")


def _h5ad(path: Path, spatial: bool = True, names=None) -> Path:
    rng = np.random.default_rng(0)
    adata = anndata.AnnData(rng.poisson(2.0, (60, 40)).astype(np.float32))
    adata.obs_names = names or [f"b{i}" for i in range(60)]
    if spatial:
        adata.obsm["spatial"] = rng.uniform(0, 500, (60, 2))
    adata.write_h5ad(path)
    return path


def make(kind: str, tmp: Path) -> Path:
    """A small slice with one thing wrong inside."""
    if kind == "no-spatial":
        return _h5ad(tmp / "nospatial.h5ad", spatial=False)
    if kind == "h5ad-twice":
        return _h5ad(tmp / "twice.h5ad", names=["b0", *[f"b{i}" for i in range(59)]])
    folder = tmp / kind
    write_spaceranger(folder, n_spots=5 if kind.startswith("five") else 60)
    if kind == "positions-twice":
        _edit_positions(folder, lambda lines: [*lines, lines[0]])
    elif kind == "counts-twice":
        _twice_in_counts(folder)
    elif kind == "nan-coords":
        _edit_positions(folder, _nan_at)
    elif kind == "zero-counts":
        _zero_counts(folder)
    elif kind == "tiny-image":
        Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(folder / "spatial" / "tissue_hires_image.png")
    elif kind == "zero-scale":
        _scalefactors(folder, tissue_hires_scalef=0.0)
    elif kind == "negative-spot":
        _scalefactors(folder, spot_diameter_fullres=-60.0)
    elif kind == "five-one-domain":
        (folder / f"{kind}_truth.txt").write_text("".join(f"AAAC{i:06d}-1\tL1\n" for i in range(5)))
    return folder


INSIDE = [  # wrong inside: refused when loaded and when registered
    ("positions-twice", ["tissue_positions_list.csv", "'AAAC000000-1'", "2 times"]),
    ("counts-twice", ["filtered_feature_bc_matrix", "'AAAC000000-1'", "2 times"]),
    ("h5ad-twice", ["twice.h5ad", "'b0'"]),
    ("nan-coords", ["tissue_positions_list.csv", "1 of 60 spots", "AAAC000003-1"]),
    ("zero-counts", ["filtered_feature_bc_matrix", "every count is zero"]),
    ("tiny-image", ["tissue_hires_image.png", "60 of 60 spots fall outside", "10 x 10"]),
    ("zero-scale", ["scalefactors_json.json", "tissue_hires_scalef is 0.0"]),
    ("negative-spot", ["scalefactors_json.json", "spot_diameter_fullres is -60.0"]),
]
FOR_THE_PLAN = [  # a usable slice, but not for what the run asks
    ("no-spatial", ["--fusion", "gene_smooth", "--n-clusters", "3"], ["nospatial.h5ad", "obsm['spatial']",
                                                                       "gene_smooth"]),
    ("five-one-domain", RUN, ["five-one-domain", "truth labels hold 1 domain for 5 spots", "give --n-clusters"]),
    ("five-spots", [*RUN, "--n-clusters", "7"], ["--n-clusters 7", "5 spots", "five-spots"]),
]


def one_line(proc, needles) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    return said(proc.stderr, needles)


def said(stderr: str, needles) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mihd: error: "), stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def nothing_made(root: Path) -> None:
    runs = root / "runs"
    assert not runs.exists() or not any(runs.iterdir()), list(runs.iterdir())
    made = [p for p in (root / "embeddings").rglob("*") if p.is_file()] if (root / "embeddings").exists() else []
    assert not [p for p in made if "entries" in p.parts or p.suffix == ".npy"], made


@pytest.mark.parametrize("kind,needles", INSIDE, ids=[k for k, _ in INSIDE])
def test_a_slice_wrong_inside_is_one_line_naming_the_file_and_makes_nothing(tmp_path, capsys, kind, needles):
    source = make(kind, tmp_path)
    root = tmp_path / "ws"
    one_line(run_mihd("run", str(source), *RUN, "--n-clusters", "3", root=root), needles)
    nothing_made(root)
    assert main(["slices", "add", "bad", str(source), "--root", str(root)]) == 2
    said(capsys.readouterr().err, needles)
    assert not (root / "slices.json").exists() or "bad" not in json.loads((root / "slices.json").read_text())


@pytest.mark.parametrize("kind,args,needles", FOR_THE_PLAN, ids=[k for k, _, _ in FOR_THE_PLAN])
def test_a_slice_the_run_cannot_use_is_one_line_before_a_run_dir(tmp_path, kind, args, needles):
    source = make(kind, tmp_path)
    root = tmp_path / "ws"
    one_line(run_mihd("run", str(source), *(["--gene", "pca"] if args[0] == "--fusion" else []), *args, root=root),
             needles)
    nothing_made(root)
