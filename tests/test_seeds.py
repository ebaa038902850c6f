"""`--seeds`: each cell fused and clustered once per seed on embeddings loaded once, every seed's score kept."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, run_dir_of, run_mihd, with_demo

from mihd.rundir import read_events, read_plan, read_result
from mihd.runs.eta import ProgressTracker
from mihd.runs.registry import Registry

GRID = ("grid", "demo", "--gene", "pca", "--fusion", "gene_only,gene_smooth", "--cluster", "gmm")


def _grid(root: Path, *seed_args: str) -> Path:
    return run_dir_of(*GRID, *seed_args, root=root)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, demo_h5ad):
    """A workspace where the same 2-cell grid ran with --seeds 3 and, alone, with --seed 0, 1 and 2."""
    root = with_demo(tmp_path_factory.mktemp("seeds") / "ws", demo_h5ad)
    three = _grid(root, "--seeds", "3")
    singles = [read_result(_grid(root, "--seed", str(s))) for s in range(3)]
    return root, three, read_result(three), singles


def test_seeds_3_gives_three_scores_per_cell_with_the_mean_of_three_single_runs(seeded):
    _, run_dir, three, singles = seeded
    for index, cell in enumerate(three["cells"]):
        single = [s["cells"][index] for s in singles]
        assert [s["seed"] for s in cell["seeds"]] == [0, 1, 2]
        assert [s["ari"] for s in cell["seeds"]] == [c["ari"] for c in single]
        assert [s["nmi"] for s in cell["seeds"]] == [c["nmi"] for c in single]
        assert cell["ari"] == pytest.approx(statistics.mean(c["ari"] for c in single), abs=1e-12)
        assert cell["ari_sd"] == pytest.approx(statistics.stdev(c["ari"] for c in single), abs=1e-12)
        assert cell["nmi"] == pytest.approx(statistics.mean(c["nmi"] for c in single), abs=1e-12)
        assert cell["labels"] == single[0]["labels"]  # labels and fused embedding of the first seed
        assert cell["signature"]["n_seeds"] == 3 and "n_seeds" not in single[0]["signature"]
    assert np.load(run_dir / "fused" / "0.npy").shape[0] == len(three["cells"][0]["labels"])
    assert len({s["ari"] for s in three["cells"][0]["seeds"]}) > 1  # gmm on gene_only moves with the seed


def test_embeddings_load_once_and_progress_counts_over_all_seeds(seeded):
    _, run_dir, three, _ = seeded
    events, _ = read_events(run_dir)
    assert [(e["modality"], e["name"]) for e in events if e["kind"] == "cache"] == [("gene", "pca")]
    metrics = [e for e in events if e["kind"] == "metric"]
    assert [(e["ari"], e["n"]) for e in metrics] == [(c["ari"], 3) for c in three["cells"]]
    per_cell = []
    for e in events:
        if e["kind"] == "cell":
            per_cell.append([])
        elif e.get("stage") == "cluster":
            per_cell[-1].append((e["done"], e["total"]))
    for steps in per_cell:  # one cluster stage over the three seeds (rate-limited events may skip a step)
        assert len(steps) > 1 and steps[0] == (0, 3) and steps[-1] == (3, 3) and steps == sorted(steps)
    fractions, tracker = [], ProgressTracker()
    for event in events:
        fractions.append(tracker.feed([event]).fraction or 0.0)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_results_table_shows_mean_sd_and_n_per_seeded_cell(seeded):
    root, run_dir, three, _ = seeded
    rows = json.loads(run_mihd("results", "--run", run_dir.name, "--format", "json", root=root).stdout)
    by_fusion = {r["fusion"]: r for r in rows}
    for cell in three["cells"]:
        row = by_fusion[cell["fusion"]]
        assert row["n"] == 3 and row["ari_values"] == [s["ari"] for s in cell["seeds"]]
        assert row["ari_mean"] == pytest.approx(cell["ari"]) and row["ari_sd"] == pytest.approx(cell["ari_sd"])
    text = run_mihd("results", "--run", run_dir.name, root=root).stdout
    gene_only = three["cells"][0]
    assert f"{gene_only['ari']:.3f} ± {gene_only['ari_sd']:.3f}" in text


def test_the_eta_history_files_a_seeded_run_apart_from_a_single_seed_one(seeded):
    root, _, _, _ = seeded
    reg = Registry(root)
    try:
        history = reg.durations()
    finally:
        reg.close()
    grids = sorted(len(samples) for sig, samples in history.items() if sig.startswith("grid:"))
    assert grids == [1, 3]  # the 3-seed grid is not timed with the three one-seed ones
    cells = {sig: len(samples) for sig, samples in history.items() if sig.startswith("cell:")}
    seeded_cells = [sig for sig in cells if sig.endswith("|seeds=3")]
    assert len(cells) == 4 and len(seeded_cells) == 2
    assert all(cells[sig] == (1 if sig in seeded_cells else 3) for sig in cells)


def test_seeds_count_and_list_and_bad_values(demo_root):
    proc = run_mihd("run", "demo", "--gene", "pca", "--fusion", "gene_only", "--seeds", "0,3", "--json", root=demo_root)
    assert proc.returncode == 0, proc.stderr
    cell = json.loads(proc.stdout)["cells"][0]
    assert [s["seed"] for s in cell["seeds"]] == [0, 3]
    for bad, needle in (("0", "from 1 to 100"), ("x", "number of seeds"), ("1,1", "listed twice"),
                        ("-2", "number of seeds"), ("2,b", "number of seeds"), ("500", "from 1 to 100")):
        assert_one_line_error(run_mihd("run", "demo", "--gene", "pca", "--fusion", "gene_only", "--seeds", bad,
                                       root=demo_root), f"--seeds {bad}".rstrip(), needle)


def test_a_launched_run_runs_every_seed(demo_root):
    proc = run_mihd("launch", "--", "run", "demo", "--gene", "pca", "--fusion", "gene_smooth", "--cluster", "kmeans",
                    "--seeds", "5", root=demo_root)
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.split()[0]
    run_dir = demo_root / "runs" / run_id
    assert read_plan(run_dir).seeds == (0, 1, 2, 3, 4)
    deadline = time.time() + 300
    while time.time() < deadline:
        view = json.loads(run_mihd("runs", "show", run_id, "--json", root=demo_root).stdout)
        if view["status"] not in ("queued", "running"):
            break
        time.sleep(1)
    assert view["status"] == "done", view
    assert "--seeds 0,1,2,3,4" in " ".join(read_events(run_dir)[0][0]["argv"])
    assert [s["seed"] for s in read_result(run_dir)["cells"][0]["seeds"]] == [0, 1, 2, 3, 4]
