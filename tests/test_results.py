"""`mihd results`: the grid's scores as a table, CSV, Markdown or JSON, read from real runs' result.json."""

from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_dir_of, run_mihd, with_demo

from mihd.plan import Cell
from mihd.results import Score, aggregate
from mihd.rundir import read_result, write_result
from mihd.runs.registry import Registry

ONLY = ("--gene", "pca", "--cluster", "kmeans")


def _run(root: Path, *args: str) -> str:
    return run_dir_of(*args, root=root).name


@pytest.fixture(scope="module")
def scored(tmp_path_factory, demo_h5ad):
    """A workspace with real runs: gene_only twice (seeds 0, 1), then a grid of gene_only and gene_smooth (seed 2)."""
    root = with_demo(tmp_path_factory.mktemp("results") / "ws", demo_h5ad)
    ids = [_run(root, "run", "demo", *ONLY, "--fusion", "gene_only", "--seed", "0"),
           _run(root, "run", "demo", *ONLY, "--fusion", "gene_only", "--seed", "1"),
           _run(root, "grid", "demo", *ONLY, "--fusion", "gene_only,gene_smooth", "--seed", "2")]
    return root, ids


def _registry_scores(root: Path) -> dict:
    reg = Registry(root)
    try:
        return {(run_id, c["idx"]): (c["ari"], c["nmi"]) for run_id, cells in reg.cells().items() for c in cells}
    finally:
        reg.close()


def _csv(root: Path, *args: str) -> list[dict]:
    proc = run_mihd("results", "--format", "csv", *args, root=root)
    assert proc.returncode == 0, proc.stderr
    return list(csv.DictReader(io.StringIO(proc.stdout)))


def test_csv_equals_the_registry_numbers(scored):
    root, (first, second, grid) = scored
    rows = _csv(root)
    registry = _registry_scores(root)
    by_fusion = {r["fusion"]: r for r in rows}
    assert len(rows) == 2 and set(by_fusion) == {"gene_only", "gene_smooth"}
    for idx, fusion in enumerate(("gene_only", "gene_smooth")):  # latest: both come from the grid
        row = by_fusion[fusion]
        assert row["run_ids"] == grid and row["n"] == "1" and row["ari_sd"] == ""
        assert (float(row["ari_mean"]), float(row["nmi_mean"])) == registry[(grid, idx)]
        assert (row["slice"], row["gene"], row["vision"], row["cluster"], row["k"], row["refine"]) == \
               ("demo", "pca", "", "kmeans", "6", "False")
        assert row["cache"] == "gene hit" and row["random_init"] == "False" and float(row["seconds"]) > 0
    assert float(rows[0]["ari_mean"]) >= float(rows[1]["ari_mean"])  # best first


def test_all_pools_every_run_of_a_cell(scored):
    root, (first, second, grid) = scored
    registry = _registry_scores(root)
    proc = run_mihd("results", "--all", "--format", "json", root=root)
    assert proc.returncode == 0, proc.stderr
    rows = {r["fusion"]: r for r in json.loads(proc.stdout)}
    pooled = rows["gene_only"]
    aris = [registry[(first, 0)][0], registry[(second, 0)][0], registry[(grid, 0)][0]]
    assert pooled["n"] == 3 and pooled["run_ids"] == [first, second, grid]
    assert pooled["ari_values"] == aris
    assert pooled["ari_mean"] == pytest.approx(statistics.mean(aris))
    assert pooled["ari_sd"] == pytest.approx(statistics.stdev(aris))
    assert pooled["label"] == "demo pca gene_only kmeans"
    assert rows["gene_smooth"]["n"] == 1

    table = run_mihd("results", "--all", root=root).stdout.splitlines()
    line = next(line for line in table if " gene_only " in line)
    assert f"{statistics.mean(aris):.3f} ± {statistics.stdev(aris):.3f}" in line and f"{grid} +2" in line


def test_run_filter_and_markdown_table(scored):
    root, (first, second, grid) = scored
    proc = run_mihd("results", "--run", first[:-3], "--format", "markdown", root=root)  # an id prefix
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("|") and line.endswith("|") for line in lines)
    assert len({line.count("|") for line in lines}) == 1  # every line has the same columns
    assert lines[1].startswith("|---|") and "---:" in lines[1]
    assert f"| {first} |" in lines[2] and "| gene_only |" in lines[2]
    assert run_mihd("results", "--run", first, second, "--format", "csv", root=root).stdout.count("\n") == 2  # latest


def test_per_seed_scores_of_one_run_show_mean_sd_and_n(scored, tmp_path):
    """A result.json cell that carries a score per seed (the --seeds form) is one row with n = seeds."""
    root, (first, _, _) = scored
    ws = tmp_path / "ws"
    shutil.copytree(root, ws, ignore=shutil.ignore_patterns("embeddings", "*.sqlite*"))
    run_dir = ws / "runs" / first
    result = read_result(run_dir)
    seeds = [{"seed": 0, "ari": 0.50, "nmi": 0.60}, {"seed": 1, "ari": 0.54, "nmi": 0.62},
             {"seed": 2, "ari": 0.58, "nmi": 0.64}]
    result["cells"][0]["seeds"] = seeds
    write_result(run_dir, result)
    rows = json.loads(run_mihd("results", "--run", first, "--format", "json", root=ws).stdout)
    assert len(rows) == 1 and rows[0]["n"] == 3 and rows[0]["ari_values"] == [0.50, 0.54, 0.58]
    assert rows[0]["ari_mean"] == pytest.approx(0.54) and rows[0]["ari_sd"] == pytest.approx(0.04)
    assert "0.540 ± 0.040" in run_mihd("results", "--run", first, root=ws).stdout


def test_random_init_results_are_never_pooled_with_pretrained_ones():
    cell = Cell("demo", "pca", "uni", "concat", "gmm")
    common = dict(k=7, refine=False, seed=0, nmi=None, seconds=1.0, cache=(("gene", "hit"),))
    scores = [Score(cell, random_init=False, run_id="a", when=1.0, ari=0.5, **common),
              Score(cell, random_init=True, run_id="b", when=2.0, ari=0.1, **common),
              Score(cell, random_init=False, run_id="c", when=3.0, ari=0.6, **common)]
    latest = aggregate(scores, "latest")
    assert [(r.random_init, r.ari.values, r.run_ids) for r in latest] == [(False, (0.6,), ("c",)),
                                                                          (True, (0.1,), ("b",))]
    pooled = aggregate(scores, "all")
    assert [(r.random_init, r.n) for r in pooled] == [(False, 2), (True, 1)]


def test_bad_input_is_one_line(scored):
    root, _ = scored
    assert_one_line_error(run_mihd("results", "--format", "bogus", root=root), "--format", "bogus")
    assert_one_line_error(run_mihd("results", "--run", "nosuch", root=root), "--run", "nosuch")
    assert_one_line_error(run_mihd("results", "--slice", "151999", root=root), "--slice", "151999", "demo")


def test_an_empty_workspace_says_so(workspace):
    proc = run_mihd("results", root=workspace)
    assert proc.returncode == 0 and "no scored cells yet" in proc.stdout
    assert run_mihd("results", "--format", "csv", root=workspace).stdout.strip().startswith("slice,gene,vision")


def test_write_tables_puts_markdown_and_csv_in_the_workspace_and_never_overwrites(scored, tmp_path):
    from mihd.results import write_tables

    root, _ = scored
    ws = tmp_path / "ws"
    shutil.copytree(root, ws, ignore=shutil.ignore_patterns("embeddings", "*.sqlite*"))
    md, table = write_tables(ws, "demo")
    assert (md.parent, md.suffix, table.suffix, md.stem) == (ws / "results", ".md", ".csv", table.stem)
    assert md.read_text() == run_mihd("results", "--slice", "demo", "--format", "markdown", root=ws).stdout
    assert table.read_text() == run_mihd("results", "--slice", "demo", "--format", "csv", root=ws).stdout
    again = write_tables(ws, "demo")
    assert again[0] != md and md.is_file() and sorted(p.name for p in (ws / "results").iterdir()) == \
        sorted(p.name for p in (md, table, *again))


def test_runs_scored_on_labelled_spots_only_are_never_pooled_with_the_others(tmp_path, demo_h5ad):
    """3,639 spots scored beside 3,611 (`--drop-unlabelled`) are two measures, not one mean."""
    root = with_demo(tmp_path / "ws", demo_h5ad)
    every = _run(root, "run", "demo", *ONLY, "--fusion", "gene_only")
    labelled = _run(root, "run", "demo", *ONLY, "--fusion", "gene_only", "--drop-unlabelled")
    rows = _csv(root, "--all")
    assert sorted((r["labelled_only"], r["run_ids"], r["n"]) for r in rows) == [("False", every, "1"),
                                                                               ("True", labelled, "1")]
    assert {"all", "labelled"} <= set(run_mihd("results", "--all", root=root).stdout.split())
