"""The grid's decision logic (mihd.grid): columns, cell states, what a launch runs, expected time; the cache
inventory rows (mihd.inventory) and how states read on screen (mihd_tui.wording)."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from mihd import grid as gs
from mihd.plan import plan_argv
from mihd.grid import GridSpec
from mihd.grid_state import GridState
from mihd.grid_weights import weights_found
from mihd.inventory import inventory
from mihd.jsonio import write_json_atomic
from mihd.plan import Cell, RunSpec
from mihd.rundir import write_spec
from mihd_tui.wording import cell_text, describe_cell, describe_expected, history_text

SPEC = GridSpec("demo", "pca")
# the rows that run without a vision embedding
NO_VISION = ["gene_only", "gene_smooth", "staig_fusion", "graphst", "stagate", "spagcn"]


def entry(name, modality="vision", variant="standard", slice_id="demo", **kw):
    return {"slice": slice_id, "modality": modality, "name": name, "variant": "-" if modality == "gene" else variant,
            "shape": [100, 8], "nbytes": 3200, "created": time.time() - 7200, **kw}


def view(tmp_path, run_id, plan_cells, status="running", **kw):
    d = tmp_path / run_id
    d.mkdir(exist_ok=True)
    plan = RunSpec(tuple(Cell.from_dict(c) for c in plan_cells), kind="grid" if len(plan_cells) > 1 else "run")
    write_spec(d, plan, run_id=run_id, argv=["mihd"], cached=[True] * len(plan_cells))
    base = dict(id=run_id, run_dir=str(d), status=status, active=status in ("queued", "running", "orphaned"),
                progress=None, cell_index=None, overrun=False, late=None, cell_results={}, cell_progress=None,
                error=None)
    return SimpleNamespace(**{**base, **kw})


def score(run_id, ari, vision="texture", fusion="concat", cluster="gmm"):
    sig = {"slice": "demo", "gene": "pca", "vision": vision, "variant": "standard" if vision else None,
           "fusion": fusion, "cluster": cluster, "cached": True, "backend": "local"}
    return {f"{run_id}:{fusion}:{vision}": {"run_id": run_id, "ari": ari, "nmi": ari, "label": "x", "sig": sig}}


@pytest.fixture(autouse=True)
def weights_here(tmp_path, monkeypatch):
    """Every pretrained encoder finds a weights file under $MIHD_WEIGHTS; no Hugging Face cache."""
    from mihd.encoders import VISION_ENCODERS

    for name, spec in VISION_ENCODERS.items():
        if spec.needs_weights:
            (tmp_path / "weights" / name).mkdir(parents=True)
            (tmp_path / "weights" / name / "model.safetensors").write_bytes(b"x")
    monkeypatch.setenv("MIHD_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path / "weights"


CELL = {"slice": "demo", "gene": "pca", "vision": "texture", "variant": "standard", "fusion": "concat", "cluster": "gmm"}


def test_rows_and_clusterers_come_from_the_registries():
    from mihd.cluster import CLUSTERERS
    from mihd.fusion import FUSIONS

    assert GridState().compute(SPEC, [], {}, []).rows == list(FUSIONS)
    assert set(CLUSTERERS) == set(gs.CLUSTERERS) and gs.CLUSTERERS[0] == "gmm"


def test_columns_include_custom_cache_names_of_the_slice_and_none():
    entries = [entry("scan_uni2"), entry("texture"), entry("other", slice_id="s2"), entry("pca", "gene")]
    cols = gs.vision_columns(entries, "demo")
    assert cols[:5] == ["uni2", "uni", "hipt", "resnet50", "texture"]
    assert cols[5:] == ["scan_uni2", "none"]


def test_states_never_ready_and_na(tmp_path):
    grid = GridState().compute(SPEC, [], {}, [entry("pca", "gene"), entry("texture")])
    assert grid[("concat", "texture")].state == gs.READY
    assert cell_text(grid[("concat", "texture")]) == "ready"
    assert grid[("concat", "uni2")].state == gs.NEVER
    assert grid[("concat", "none")].state == gs.NA
    assert grid[("gene_only", "none")].state == gs.READY  # needs only the gene embedding
    assert grid[("staig_fusion", "none")].state == gs.READY
    assert grid[("gene_smooth", "none")].state == gs.READY


def test_latest_score_wins_and_random_init_is_flagged(tmp_path):
    run_dir = tmp_path / "runs" / "20250102-000000-000-bbbbbb"
    run_dir.mkdir(parents=True)
    write_json_atomic(run_dir / "result.json", {"cells": [{**CELL, "random_init": True}]})
    scores = {**score("20250101-000000-000-aaaaaa", 0.41), **score("20250102-000000-000-bbbbbb", 0.73)}
    grid = GridState().compute(SPEC, [], scores, [], {"20250102-000000-000-bbbbbb": str(run_dir)})
    cs = grid[("concat", "texture")]
    assert (cs.state, cs.ari, cs.random_init, cell_text(cs), cs.band) == (gs.DONE, 0.73, True, "0.730*", 3)


def test_active_runs_override_scores_running_queued_overrun(tmp_path):
    scores = score("20250101-000000-000-aaaaaa", 0.5)
    cells = [dict(CELL, vision=v) for v in ("texture", "uni2")]
    running = view(tmp_path, "20250103-000000-000-cccccc", cells, progress=0.25, cell_index=0, cell_progress=0.5)
    grid = GridState().compute(SPEC, [running], scores, [])
    first, second = grid[("concat", "texture")], grid[("concat", "uni2")]
    assert (first.state, round(first.progress, 2), first.ari, cell_text(first)) == (gs.RUNNING, 0.5, 0.5, "50% .50")
    assert second.state == gs.QUEUED
    over = view(tmp_path, "20250103-000000-000-dddddd", [CELL], progress=0.9, cell_index=0, overrun=True,
                cell_progress=0.9)
    grid = GridState().compute(SPEC, [over], scores, [])
    assert grid[("concat", "texture")].state == gs.OVERRUN and cell_text(grid[("concat", "texture")]) == "90%! .50"


def test_a_running_grid_shows_each_cell_score_as_soon_as_the_cell_is_scored(tmp_path):
    cells = [dict(CELL, vision=v) for v in ("texture", "uni2", "uni")]
    running = view(tmp_path, "20250103-000000-000-cccccc", cells, progress=0.7, cell_index=2, cell_progress=0.1,
                   cell_results={0: {"ari": 0.612, "nmi": 0.6, "random_init": False},
                                 1: {"ari": 0.31, "nmi": 0.3, "random_init": True, "error": None}})
    grid = GridState().compute(SPEC, [running], {}, [])
    first, second, third = (grid[("concat", v)] for v in ("texture", "uni2", "uni"))
    assert (first.state, cell_text(first), first.run_id) == (gs.DONE, "0.612", running.id)
    assert cell_text(second) == "0.310*"  # random-init weights are flagged while the grid still runs
    assert third.state == gs.RUNNING and cell_text(third) == "10%"
    failed = view(tmp_path, "20250103-000000-000-dddddd", cells[:2], progress=0.6, cell_index=1,
                  cell_results={0: {"ari": None, "nmi": None, "error": "concat: vision missing"}})
    assert GridState().compute(SPEC, [failed], {}, [])[("concat", "texture")].state == gs.FAILED


def test_failed_or_killed_after_the_score_shows_that(tmp_path):
    scores = score("20250101-000000-000-aaaaaa", 0.5)
    killed = view(tmp_path, "20250104-000000-000-eeeeee", [CELL], status="killed")
    cs = GridState().compute(SPEC, [killed], scores, [])[("concat", "texture")]
    assert (cs.state, cs.ari, cell_text(cs), cs.run_id) == (gs.KILLED, 0.5, "0.500 ✗", killed.id)
    older = view(tmp_path, "20241231-000000-000-ffffff", [CELL], status="failed")
    assert GridState().compute(SPEC, [older], scores, [])[("concat", "texture")].state == gs.DONE


def test_a_killed_grid_keeps_each_cells_outcome_and_the_cause_of_a_failure(tmp_path):
    cells = [dict(CELL, vision=v) for v in ("texture", "uni2", "uni")]
    killed = view(tmp_path, "20250105-000000-000-aaaaaa", cells, status="killed")
    with open(tmp_path / killed.id / "events.jsonl", "w") as fh:  # killed before it wrote result.json
        for ev in ({"t": 1, "kind": "start", "cells": 3}, {"t": 2, "kind": "metric", "index": 0, "ari": 0.61, "nmi": 0.6},
                   {"t": 3, "kind": "metric", "index": 1, "ari": None, "nmi": None, "error": "no weights for uni2"},
                   {"t": 4, "kind": "kill", "signal": "TERM"}):
            fh.write(json.dumps(ev) + "\n")
    grid = GridState().compute(SPEC, [killed], {}, [])
    first, second, third = (grid[("concat", v)] for v in ("texture", "uni2", "uni"))
    assert (first.state, first.ari, cell_text(first)) == (gs.DONE, 0.61, "0.610")
    assert (second.state, second.reason, cell_text(second)) == (gs.FAILED, "no weights for uni2", "failed")
    assert "no weights for uni2" in describe_cell(second)
    assert (third.state, cell_text(third)) == (gs.KILLED, "killed")


def test_the_latest_result_stays_beside_a_later_failed_attempt_with_the_history_of_scores(tmp_path):
    old, new = "20250101-000000-000-aaaaaa", "20250102-000000-000-bbbbbb"
    scores = {**score(old, 0.41), **score(new, 0.767)}
    all_scores = [{"run_id": r, "ari": a, "sig": next(iter(score(r, a).values()))["sig"]} for r, a in ((old, 0.41), (new, 0.767))]
    failed = view(tmp_path, "20250103-000000-000-cccccc", [CELL], status="failed", error="concat: out of memory")
    cs = GridState().compute(SPEC, [failed], scores, [], all_scores=all_scores)[("concat", "texture")]
    assert (cs.state, cs.ari, cs.scored_by, cs.reason) == (gs.FAILED, 0.767, new, "concat: out of memory")
    assert cell_text(cs) == "0.767 ✗" and describe_cell(cs) == "failed: concat: out of memory · last ARI 0.767"
    assert cs.runs == (failed.id, new, old) and [s.ari for s in cs.history] == [0.41, 0.767]
    assert history_text(cs).startswith("ARI over 2 runs ")
    later = view(tmp_path, "20250104-000000-000-dddddd", [CELL], status="done")
    write_json_atomic(tmp_path / later.id / "result.json", {"cells": [{**CELL, "ari": 0.8, "nmi": 0.7}]})
    cs = GridState().compute(SPEC, [failed, later], scores, [])[("concat", "texture")]
    assert (cs.state, cs.ari, cell_text(cs)) == (gs.DONE, 0.8, "0.800")  # a later finish wins over the kill


def test_cells_without_weights_or_cache_cannot_run_and_launches_skip_them(tmp_path, weights_here):
    import shutil

    shutil.rmtree(weights_here / "uni2")
    entries = [entry("pca", "gene"), entry("texture")]
    grid = GridState().compute(SPEC, [], {}, entries)
    cs = grid[("concat", "uni2")]
    assert (cs.state, cs.reason, cell_text(cs), cs.runnable) == (gs.NO_WEIGHTS, "no weights for uni2", "⊘", False)
    assert grid[("concat", "uni")].state == gs.NEVER  # weights there: it can run (extracts first)
    assert grid.first_runnable() == ("gene_only", "texture")  # the first cell ready to run
    assert gs.skipped_columns(grid, grid.rows, grid.columns) == ["uni2"]
    whole = gs.plan_launches(SPEC, grid, grid.rows, grid.columns)
    assert whole == [(grid.rows, ["uni", "hipt", "resnet50", "texture"]),
                     (NO_VISION, ["none"])]
    assert gs.plan_launches(SPEC, grid, ["concat"], ["uni2"]) == []
    cached = GridState().compute(SPEC, [], {}, entries + [entry("uni2")])  # cached: runs without weights
    assert cached[("concat", "uni2")].state == gs.READY
    hf = tmp_path / "hf" / "models--MahmoodLab--UNI2-h" / "snapshots" / "abc"  # the Hugging Face cache counts
    hf.mkdir(parents=True)
    (hf / "pytorch_model.bin").write_bytes(b"x")
    assert weights_found("vision", "uni2") and GridState().compute(SPEC, [], {}, entries)[("concat", "uni2")].state == gs.NEVER
    assert not weights_found("vision", "scan_uni2")  # a custom cache name is never computed


def test_a_fanned_out_grid_shows_each_cells_own_state(tmp_path):
    from mihd.runs.fanout_status import CellView

    cells = [dict(CELL, vision=v) for v in ("texture", "uni2", "uni")]

    def part(i, status, **kw):
        base = dict(index=i, label="x", status=status, reason=None, job_id=None, run_dir="", started=None, ended=None,
                    elapsed=None, expected_s=None, eta_s=None, progress=None, overrun=False, ari=None, nmi=None,
                    error=None)
        return CellView(**{**base, **kw})

    fan = view(tmp_path, "20250106-000000-000-aaaaaa", cells, cells=[
        part(0, "done", ari=0.7, nmi=0.6), part(1, "failed", error="no weights for uni2"),
        part(2, "running", progress=0.4, overrun=True)])
    grid = GridState().compute(SPEC, [fan], {}, [])
    assert cell_text(grid[("concat", "texture")]) == "0.700"
    assert (grid[("concat", "uni2")].state, grid[("concat", "uni2")].reason) == (gs.FAILED, "no weights for uni2")
    assert cell_text(grid[("concat", "uni")]) == "40%!"


def test_runs_of_workspaces_from_before_the_plan_still_place_their_cells(tmp_path):
    """An older spec.json has top-level cell dicts (and `mihd_args`) instead of a plan."""
    old = view(tmp_path, "20250104-000000-000-eeeeee", [CELL], status="killed")
    write_json_atomic(tmp_path / old.id / "spec.json", {"cells": [{**CELL, "cached": True}], "mihd_args": ["run"]})
    assert GridState().compute(SPEC, [old], {}, [])[("concat", "texture")].state == gs.KILLED


def test_cells_of_other_clusterers_or_genes_do_not_leak(tmp_path):
    scores = score("20250101-000000-000-aaaaaa", 0.5, cluster="kmeans")
    grid = GridState().compute(SPEC, [], scores, [])
    assert grid[("concat", "texture")].state == gs.NEVER
    grid = GridState().compute(GridSpec("demo", "pca", cluster="kmeans"), [], scores, [])
    assert grid[("concat", "texture")].ari == 0.5


def test_launch_plans_single_cell_row_and_column():
    (one,) = gs.launch_plans(SPEC, [(["concat"], ["texture"])])
    assert one.kind == "run" and one.cells == (Cell("demo", "pca", "texture", "concat", "gmm", "standard"),)
    assert plan_argv(one) == ["run", "demo", "--gene", "pca", "--vision", "texture", "--variant", "standard",
                              "--fusion", "concat", "--cluster", "gmm"]
    (grid,) = gs.launch_plans(SPEC, [(["concat", "mean"], ["texture", "uni2"])], n_clusters=7, override=True)
    assert grid.kind == "grid" and len(grid.cells) == 4 and (grid.n_clusters, grid.override) == (7, True)
    argv = plan_argv(grid)
    assert argv[0] == "grid" and "texture,uni2" in argv and "concat,mean" in argv
    assert argv[-3:] == ["--n-clusters", "7", "--override"]
    (gene_only,) = gs.launch_plans(SPEC, [(["gene_only", "concat"], ["none"])])  # concat needs vision: left out
    assert gene_only.kind == "run" and gene_only.cells[0].vision is None and gene_only.label == "demo pca gene_only gmm"
    assert "--vision" not in plan_argv(gene_only)
    with pytest.raises(ValueError):
        gs.launch_plans(SPEC, [(["concat"], ["none"])])


def test_plan_launches_splits_none_from_vision_columns():
    grid = GridState().compute(SPEC, [], {}, [])
    row = gs.plan_launches(SPEC, grid, ["staig_fusion"], grid.columns)
    assert row == [(["staig_fusion"], grid.columns[:-1]), (["staig_fusion"], ["none"])]
    assert gs.plan_launches(SPEC, grid, ["concat"], ["none"]) == []
    assert gs.plan_launches(SPEC, grid, grid.rows, ["none"]) == [(NO_VISION, ["none"])]
    whole = gs.plan_launches(SPEC, grid, grid.rows, grid.columns)
    assert whole == [(grid.rows, grid.columns[:-1]), (NO_VISION, ["none"])]


def test_expected_from_history_of_the_same_cached_signature():
    from mihd.runs.cells import sig_string, signature

    entries = [entry("pca", "gene"), entry("texture")]
    cell = Cell.from_dict(CELL)
    hot = sig_string(signature(cell, "local", True))
    cold = sig_string(signature(cell, "local", False))
    history = {hot: [10.0, 12.0, 14.0], cold: [100.0]}
    exp = gs.expected_for(SPEC, ["concat"], ["texture"], entries, history)
    assert (exp.seconds, exp.source, exp.n) == (12.0, "history", 3)
    assert gs.expected_for(SPEC, ["concat"], ["texture"], [], history).seconds == 100.0
    direct = {sig_string(signature(cell, "direct", True)): [20.0]}
    assert gs.expected_for(SPEC, ["concat"], ["texture"], entries, direct).seconds == 20.0
    assert gs.expected_for(SPEC, ["concat"], ["uni2"], entries, history).seconds is None
    assert describe_expected(exp) == "~12s (history, 3 runs)"
    five = {sig_string(signature(cell, "local", True, n_seeds=5)): [55.0]}  # five seeds: five times the fusing
    assert gs.expected_for(SPEC, ["concat"], ["texture"], entries, {**history, **five}, n_seeds=5).seconds == 55.0
    assert gs.expected_for(SPEC, ["concat"], ["texture"], entries, history, n_seeds=5).seconds is None


def test_inventory_rows():
    rows = inventory([entry("texture", random_init=True), entry("pca", "gene"), {"slice": "demo",
                         "modality": "vision", "name": "bad", "variant": "standard", "corrupt": "unreadable metadata"},
                         entry("uni2", config={"precision": "bf16"})])
    assert [r.name for r in rows] == ["pca", "bad", "texture", "uni2"]
    assert rows[2].flags == ("random init",) and rows[2].shape == "100x8" and round(rows[2].age_s) == 7200
    assert rows[3].flags == ("bf16",) and rows[0].flags == ()
    assert rows[1].problem == "unreadable metadata"


def test_slice_choices_put_demo_first(tmp_path):
    write_json_atomic(tmp_path / "slices.json", {"151673": {"path": "/x"}})
    assert gs.slice_choices(tmp_path, [entry("texture", slice_id="s9")]) == ["demo", "151673", "s9", gs.ALL_SLICES]


def test_a_queued_cell_keeps_its_last_score_in_sight_marked_as_waiting():
    """Its last ARI stays (hidden, a researcher could not compare before the new run ends), marked as a failed
    run's is (`0.500 ✗`): the mark says the latest attempt, the line under the grid whose score it is."""
    cs = gs.CellState("concat", "texture", gs.QUEUED, ari=0.5, nmi=0.5, scored_by="20250101-000000-000-aaaaaa")
    assert cell_text(cs) == "0.500 ⧗" and "queued" in describe_cell(cs) and "last ARI 0.500" in describe_cell(cs)
    assert cell_text(gs.CellState("concat", "texture", gs.QUEUED)) == "queued"
