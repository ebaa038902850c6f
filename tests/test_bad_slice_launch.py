"""A bad slice given to the launcher (`mihd launch -- run|grid`, a grid over several slices in the foreground or
launched, the dashboard's launch) is one line naming the file before any work, with no run dir made: a launched run
loaded its slice only once started, so each left a failed run in `runs ls` where a researcher expected one line."""

from __future__ import annotations

from pathlib import Path

import anndata
import numpy as np
import pytest

from conftest import run_mihd, with_demo
from mihd.data import load_slice
from mihd.errors import MihdError
from mihd.plan import Cell, RunSpec
from mihd.runs.launch import launch
from test_bad_slice import RUN, make, nothing_made, one_line

BAD = [  # (kind, the run's method options, what the line must say)
    ("no-spatial", ["--gene", "pca", "--fusion", "gene_smooth", "--n-clusters", "3"],
     ["nospatial.h5ad", "obsm['spatial']", "gene_smooth"]),
    ("h5ad-twice", [*RUN, "--n-clusters", "3"], ["twice.h5ad", "'b0'", "2 times"]),
    ("nan-coords", [*RUN, "--n-clusters", "3"], ["tissue_positions_list.csv", "1 of 60 spots", "AAAC000003-1"]),
    ("zero-counts", [*RUN, "--n-clusters", "3"], ["filtered_feature_bc_matrix", "every count is zero"]),
    ("five-one-domain", RUN, ["five-one-domain", "truth labels hold 1 domain for 5 spots", "give --n-clusters"]),
    ("five-spots", RUN, ["--n-clusters: required", "five-spots", "no truth labels"]),
]
IDS = [kind for kind, _, _ in BAD]


@pytest.mark.parametrize("kind,args,needles", BAD, ids=IDS)
def test_launching_a_run_on_a_bad_slice_is_one_line_and_makes_no_run_dir(tmp_path, kind, args, needles):
    root = tmp_path / "ws"
    one_line(run_mihd("launch", "--", "run", str(make(kind, tmp_path)), *args, root=root), needles)
    nothing_made(root)
    assert run_mihd("runs", "ls", "--all", "--json", root=root).stdout.strip() in ("", "[]")


@pytest.mark.parametrize("kind,args,needles", [BAD[0], BAD[3]], ids=[IDS[0], IDS[3]])
def test_launching_a_grid_on_a_bad_slice_is_one_line_and_makes_no_run_dir(tmp_path, kind, args, needles):
    root = tmp_path / "ws"
    one_line(run_mihd("launch", "--parallel", "2", "--", "grid", str(make(kind, tmp_path)), *args, root=root),
             needles)
    nothing_made(root)


@pytest.mark.parametrize("launched", [False, True], ids=["foreground", "launched"])
def test_a_grid_over_slices_one_of_them_bad_is_one_line_before_its_run_dir(tmp_path, demo_h5ad, launched):
    """A study loads each slice in a part of its own: the bad one was found only after the good one's cells ran."""
    root = with_demo(tmp_path / "ws", demo_h5ad)
    kind, args, needles = BAD[2]
    grid = ["grid", f"demo,{make(kind, tmp_path)}", *args]
    one_line(run_mihd(*(["launch", "--", *grid] if launched else grid), root=root), needles)
    nothing_made(root)


def _h5ad(path: Path, spatial: bool) -> Path:
    rng = np.random.default_rng(1)
    adata = anndata.AnnData(rng.poisson(2.0, (60, 40)).astype(np.float32))
    adata.obs_names = [f"s{i}" for i in range(60)]
    if spatial:
        adata.obsm["spatial"] = rng.uniform(0, 500, (60, 2))
    adata.write_h5ad(path)
    return path


def test_the_dashboards_launch_of_a_slice_changed_since_it_was_loaded_is_refused_before_a_run_dir(tmp_path):
    """The dashboard hands a RunSpec to runs.launch: a slice that lost its coordinates after a good load (noted)
    is checked anew from its changed file, and the dashboard's notice is the line naming it."""
    from mihd.data.registry import register

    root = tmp_path / "ws"
    root.mkdir()
    path = _h5ad(tmp_path / "section.h5ad", spatial=True)
    register(root, "section", path)
    load_slice("section", root)  # a good load, as an earlier run's
    _h5ad(path, spatial=False)
    plan = RunSpec((Cell("section", "pca", None, "gene_smooth", "kmeans", None),), n_clusters=3)
    with pytest.raises(MihdError, match=r"section\.h5ad \(slice section\): no spot coordinates"):
        launch(root, plan)
    nothing_made(root)
