"""The published baselines (graphst, stagate, spagcn) as grid rows, each run by its own package through the
pipeline, on a 260-spot strip of the demo slice (every layer). GraphST's and STAGATE's epochs are cut to 30 so
the suite stays short, too few to score them (their published 600 / 1,000 are what a run uses, and
docs/BASELINES.md has their scores and times on the real slices); SpaGCN runs as published."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_mihd
from mihd.errors import MihdError
from mihd.fusion import FUSIONS, graphst, stagate
from mihd.plan import Cell, RunSpec

EPOCHS = 30


@pytest.fixture(scope="module")
def strip(demo_adata, tmp_path_factory) -> Path:
    """The demo slice's first columns (all six layers, 260 spots) as an .h5ad, image included."""
    adata = demo_adata[(demo_adata.obs["array_col"] < 5).to_numpy()].copy()
    del adata.uns["mihd"]
    path = tmp_path_factory.mktemp("strip") / "strip.h5ad"
    adata.write_h5ad(path)
    return path


@pytest.fixture
def short(monkeypatch):
    monkeypatch.setattr(graphst, "EPOCHS", EPOCHS)
    monkeypatch.setattr(stagate, "EPOCHS", EPOCHS)


def run_grid(strip: Path, root: Path, run_dir: Path, fusions: str, **spec) -> dict:
    from mihd.data import load_slice
    from mihd.pipeline import run_cells

    adata = load_slice(strip, root=root)
    cells = tuple(Cell(adata.uns["mihd"]["slice_id"], "pca", None, f) for f in fusions.split(","))
    return run_cells(adata, RunSpec(cells, kind="grid", drop_unlabelled=True, **spec), root=root, run_dir=run_dir)


def stages(run_dir: Path, index: int) -> list[tuple]:
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    out, cell = [], None
    for ev in events:
        cell = ev["index"] if ev["kind"] == "cell" else cell
        if ev["kind"] == "stage" and cell == index:
            out.append((ev["stage"], ev["done"], ev["total"]))
    return out


def test_graphst_and_stagate_train_by_their_packages_heard_epoch_by_epoch_once_per_seed(strip, workspace, tmp_path,
                                                                                         short):
    result = run_grid(strip, workspace, tmp_path / "run", "graphst,stagate", seeds=(0, 1))
    assert result["status"] == "ok", [c.get("error") for c in result["cells"]]
    for index, cell in enumerate(result["cells"]):
        scores = [s["ari"] for s in cell["seeds"]]
        assert None not in scores and scores[0] != scores[1], (cell["fusion"], scores)  # two seeds, two trainings
        # the package's own loop is heard in steps of 10 epochs, for each seed in turn (2 x 30 epochs); how many of
        # them reach events.jsonl depends on the machine's speed (a stage event is written at most every 0.5 s)
        trains = [s for s in stages(tmp_path / "run", index) if s[0] == "train"]
        assert trains[0] == ("train", 0, 2 * EPOCHS) and trains[-1] == ("train", 2 * EPOCHS, 2 * EPOCHS), trains
        done = [d for _, d, _ in trains]
        assert done == sorted(done) and all(d % 10 == 0 for d in done), trains
    # the packages' prints and tqdm bars stay out of run.log's events: only our stage lines
    log = (tmp_path / "run" / "events.jsonl").read_text()
    assert "Begin to train" not in log and "it/s" not in log


def test_spagcn_finds_the_layers_from_expression_space_and_histology_colour(strip, workspace, tmp_path):
    result = run_grid(strip, workspace, tmp_path / "run", "spagcn,gene_only")
    spagcn, gene_only = result["cells"]
    assert spagcn["ari"] > 0.4 and gene_only["ari"] < 0.2, (spagcn["ari"], gene_only["ari"])
    assert {"graph", "search", "train"} <= {s[0] for s in stages(tmp_path / "run", 0)}


def test_a_baseline_that_diverges_fails_its_cell_saying_so_and_the_grid_goes_on(strip, workspace, tmp_path, short,
                                                                                 monkeypatch):
    monkeypatch.setattr(graphst, "LR", 1e30)  # Adam steps of 1e30: the weights overflow at once
    result = run_grid(strip, workspace, tmp_path / "run", "graphst,gene_smooth")
    bad, good = result["cells"]
    assert result["status"] == "failed"
    assert bad["ari"] is None
    assert re.match(r"--fusion graphst: training diverged at epoch \d+ of 30 \(NaN in its weights\)$", bad["error"])
    assert good["ari"] is not None and "error" not in good


def test_spagcn_on_a_slice_without_an_image_is_one_line(strip, workspace, tmp_path):
    import anndata

    adata = anndata.read_h5ad(strip)
    for library in adata.uns["spatial"].values():
        library["images"] = {}
    bare = tmp_path / "bare.h5ad"
    adata.write_h5ad(bare)
    proc = run_mihd("run", str(bare), "--gene", "pca", "--fusion", "spagcn", root=workspace)
    assert_one_line_error(proc, "--fusion spagcn: slice bare has no H&E image; spagcn needs one")


class Uninstalled:
    """A meta path finder that makes the named top-level modules unimportable, as on a machine without them."""

    def __init__(self, *names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


def test_a_baseline_whose_package_is_missing_is_a_blocked_cell_with_the_install_line(monkeypatch):
    from mihd.fusion import run_cell_arrays
    from mihd.grid import NO_WEIGHTS, GridSpec
    from mihd.grid_state import GridState
    from rich.text import Text

    from mihd_tui.wording import cell_text, describe_cell

    monkeypatch.setattr(sys, "meta_path", [Uninstalled("GraphST"), *sys.meta_path])
    monkeypatch.delitem(sys.modules, "GraphST", raising=False)
    line = "graphst-modern is not installed: pip install -e '.[baselines]'"
    entries = [{"slice": "demo", "modality": "gene", "name": "pca", "variant": "-", "shape": [9, 2], "nbytes": 72,
                "created": 0.0}]
    grid = GridState().compute(GridSpec("demo", "pca"), [], {}, entries)
    cs = grid[("graphst", "none")]
    assert (cs.state, cs.reason, cell_text(cs), cs.runnable) == (NO_WEIGHTS, line, "⊘", False)
    assert Text.from_markup(describe_cell(cs)).plain == line  # the install line, read as written
    assert grid[("stagate", "none")].state == "ready" and grid[("gene_only", "none")].state == "ready"
    import numpy as np

    from mihd.embedding import Embedding

    g = Embedding(np.zeros((9, 2), np.float32), {"modality": "gene", "name": "pca"}, np.arange(9).astype(str))
    with pytest.raises(MihdError, match=r"^--fusion graphst: graphst-modern is not installed: pip install -e"):
        run_cell_arrays(g, None, np.zeros((9, 2)), fusion="graphst", cluster="gmm", n_clusters=2)


def test_the_baselines_train_on_the_device_asked_for():
    from mihd.plan import device_users

    cells = tuple(Cell("demo", "pca", None, f) for f in ("graphst", "stagate", "spagcn"))
    assert device_users(RunSpec(cells, kind="grid")) == ["--fusion graphst", "--fusion stagate"]  # spagcn: CPU only
    assert not FUSIONS["spagcn"].trains and FUSIONS["spagcn"].clusters


def test_the_dashboard_imports_no_baseline_package():
    code = ("import sys, mihd_tui.app, mihd.grid, mihd.grid_study; "
            "print([m for m in ('GraphST', 'STAGATE_pyG', 'SpaGCN', 'torch_geometric', 'numba', 'ot') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


def test_a_baseline_in_training_shows_its_progress_and_is_killed_like_any_run(strip, workspace):
    from mihd.data.registry import register
    from mihd.runs.launch import launch
    from mihd.workspace import run_path
    from runs_helpers import alive, session_pids, view, wait_for

    register(workspace, "strip", strip)
    run_id = launch(workspace, RunSpec((Cell("strip", "pca", None, "stagate"),)))  # 1,000 epochs: minutes here
    run_dir = run_path(workspace, run_id)
    running = wait_for(lambda: (v := view(workspace, run_id)).status == "running" and (v.cell_progress or 0) > 0.05
                       and v, timeout=600, every=1.0)  # its own epochs move the cell's progress
    assert running.eta_s is None or running.eta_s > 0
    pids = session_pids(run_dir)
    kill = run_mihd("runs", "kill", run_id, "--grace", "2s", root=workspace)
    assert kill.returncode == 0 and "status killed" in kill.stdout, kill.stdout + kill.stderr
    assert wait_for(lambda: not alive(pids), timeout=30)
    assert view(workspace, run_id).status == "killed"
