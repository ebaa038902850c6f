"""The grid's decision logic (mihd.grid_state): columns, cell states, what a launch runs, expected time."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from mihd import grid_state as gs
from mihd.grid_state import GridSpec, GridState
from mihd.jsonio import write_json_atomic

SPEC = GridSpec("demo", "pca")


def entry(name, modality="vision", variant="standard", slice_id="demo", **kw):
    return {"slice": slice_id, "modality": modality, "name": name, "variant": "-" if modality == "gene" else variant,
            "shape": [100, 8], "nbytes": 3200, "created": time.time() - 7200, **kw}


def view(tmp_path, run_id, cells, status="running", **kw):
    d = tmp_path / run_id
    d.mkdir(exist_ok=True)
    write_json_atomic(d / "spec.json", {"cells": cells})
    base = dict(id=run_id, run_dir=str(d), status=status, active=status in ("queued", "running"),
                progress=None, cell_index=None, overrun=False, cell_results={}, cell_progress=None)
    return SimpleNamespace(**{**base, **kw})


def score(run_id, ari, vision="texture", fusion="concat", cluster="gmm"):
    sig = {"slice": "demo", "gene": "pca", "vision": vision, "variant": "standard" if vision else None,
           "fusion": fusion, "cluster": cluster, "cached": True, "backend": "local"}
    return {f"{run_id}:{fusion}:{vision}": {"run_id": run_id, "ari": ari, "nmi": ari, "label": "x", "sig": sig}}


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
    assert grid[("concat", "texture")].text == "ready"
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
    assert (cs.state, cs.ari, cs.random_init, cs.text, cs.band) == (gs.DONE, 0.73, True, "0.730*", 3)


def test_active_runs_override_scores_running_queued_overrun(tmp_path):
    scores = score("20250101-000000-000-aaaaaa", 0.5)
    cells = [dict(CELL, vision=v) for v in ("texture", "uni2")]
    running = view(tmp_path, "20250103-000000-000-cccccc", cells, progress=0.25, cell_index=0, cell_progress=0.5)
    grid = GridState().compute(SPEC, [running], scores, [])
    first, second = grid[("concat", "texture")], grid[("concat", "uni2")]
    assert (first.state, round(first.progress, 2), first.previous_ari, first.text) == (gs.RUNNING, 0.5, 0.5, "50%")
    assert second.state == gs.QUEUED
    over = view(tmp_path, "20250103-000000-000-dddddd", [CELL], progress=0.9, cell_index=0, overrun=True,
                cell_progress=0.9)
    grid = GridState().compute(SPEC, [over], scores, [])
    assert grid[("concat", "texture")].state == gs.OVERRUN and grid[("concat", "texture")].text.endswith("!")


def test_a_running_grid_shows_each_cell_score_as_soon_as_the_cell_is_scored(tmp_path):
    cells = [dict(CELL, vision=v) for v in ("texture", "uni2", "uni")]
    running = view(tmp_path, "20250103-000000-000-cccccc", cells, progress=0.7, cell_index=2, cell_progress=0.1,
                   cell_results={0: {"ari": 0.612, "nmi": 0.6, "random_init": False},
                                 1: {"ari": 0.31, "nmi": 0.3, "random_init": True, "error": None}})
    grid = GridState().compute(SPEC, [running], {}, [])
    first, second, third = (grid[("concat", v)] for v in ("texture", "uni2", "uni"))
    assert (first.state, first.text, first.run_id) == (gs.DONE, "0.612", running.id)
    assert second.text == "0.310*"  # random-init weights are flagged while the grid still runs
    assert third.state == gs.RUNNING and third.text == "10%"
    failed = view(tmp_path, "20250103-000000-000-dddddd", cells[:2], progress=0.6, cell_index=1,
                  cell_results={0: {"ari": None, "nmi": None, "error": "concat: vision missing"}})
    assert GridState().compute(SPEC, [failed], {}, [])[("concat", "texture")].state == gs.FAILED


def test_failed_or_killed_after_the_score_shows_that(tmp_path):
    scores = score("20250101-000000-000-aaaaaa", 0.5)
    killed = view(tmp_path, "20250104-000000-000-eeeeee", [CELL], status="killed")
    assert GridState().compute(SPEC, [killed], scores, [])[("concat", "texture")].state == gs.KILLED
    older = view(tmp_path, "20241231-000000-000-ffffff", [CELL], status="failed")
    assert GridState().compute(SPEC, [older], scores, [])[("concat", "texture")].state == gs.DONE


def test_cells_of_other_clusterers_or_genes_do_not_leak(tmp_path):
    scores = score("20250101-000000-000-aaaaaa", 0.5, cluster="kmeans")
    grid = GridState().compute(SPEC, [], scores, [])
    assert grid[("concat", "texture")].state == gs.NEVER
    grid = GridState().compute(GridSpec("demo", "pca", cluster="kmeans"), [], scores, [])
    assert grid[("concat", "texture")].ari == 0.5


def test_launch_argv_single_cell_row_and_column():
    assert gs.launch_argv(SPEC, ["concat"], ["texture"]) == [
        "run", "demo", "--gene", "pca", "--vision", "texture", "--variant", "standard", "--fusion", "concat",
        "--cluster", "gmm"]
    argv = gs.launch_argv(SPEC, ["concat", "mean"], ["texture", "uni2"], n_clusters=7, override=True)
    assert argv[0] == "grid" and "texture,uni2" in argv and "concat,mean" in argv
    assert argv[-3:] == ["--n-clusters", "7", "--override"]
    assert gs.launch_argv(SPEC, ["gene_only", "concat"], ["none"])[:2] == ["run", "demo"]
    assert "--vision" not in gs.launch_argv(SPEC, ["gene_only"], ["none"])
    with pytest.raises(ValueError):
        gs.launch_argv(SPEC, ["concat"], ["none"])


def test_plan_launches_splits_none_from_vision_columns():
    grid = GridState().compute(SPEC, [], {}, [])
    row = gs.plan_launches(SPEC, grid, ["staig_fusion"], grid.columns)
    assert row == [(["staig_fusion"], grid.columns[:-1]), (["staig_fusion"], ["none"])]
    assert gs.plan_launches(SPEC, grid, ["concat"], ["none"]) == []
    assert gs.plan_launches(SPEC, grid, grid.rows, ["none"]) == [(["gene_only", "gene_smooth", "staig_fusion"], ["none"])]
    whole = gs.plan_launches(SPEC, grid, grid.rows, grid.columns)
    assert whole == [(grid.rows, grid.columns[:-1])]  # the whole grid is one run


def test_expected_from_history_of_the_same_cached_signature():
    from mihd.runs.cells import sig_string, signature

    entries = [entry("pca", "gene"), entry("texture")]
    hot = sig_string(signature({**CELL, "cached": True}, "local"))
    cold = sig_string(signature({**CELL, "cached": False}, "local"))
    history = {hot: [10.0, 12.0, 14.0], cold: [100.0]}
    exp = gs.expected_for(SPEC, ["concat"], ["texture"], entries, history)
    assert (exp.seconds, exp.source, exp.n) == (12.0, "history", 3)
    assert gs.expected_for(SPEC, ["concat"], ["texture"], [], history).seconds == 100.0
    direct = {sig_string(signature({**CELL, "cached": True}, "direct")): [20.0]}
    assert gs.expected_for(SPEC, ["concat"], ["texture"], entries, direct).seconds == 20.0
    assert gs.expected_for(SPEC, ["concat"], ["uni2"], entries, history).seconds is None
    assert gs.describe_expected(exp) == "~12s (history, 3 runs)"


def test_inventory_rows():
    rows = gs.inventory([entry("texture", random_init=True), entry("pca", "gene"), {"slice": "demo",
                         "modality": "vision", "name": "bad", "variant": "standard", "corrupt": "unreadable metadata"},
                         entry("uni2", config={"precision": "bf16"})])
    assert [r.name for r in rows] == ["pca", "bad", "texture", "uni2"]
    assert rows[2].flags == ("random init",) and rows[2].shape == "100x8" and round(rows[2].age_s) == 7200
    assert rows[3].flags == ("bf16",) and rows[0].flags == ()
    assert rows[1].problem == "unreadable metadata"


def test_slice_choices_put_demo_first(tmp_path):
    write_json_atomic(tmp_path / "slices.json", {"151673": {"path": "/x"}})
    assert gs.slice_choices(tmp_path, [entry("texture", slice_id="s9")]) == ["demo", "151673", "s9"]
