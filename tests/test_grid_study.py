"""The dashboard's `all slices` grid (mihd.grid_study): each combination's mean ARI over the slices that have
it, with its per-slice scores; what launching it means (a study); the slice switcher's last choice."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mihd import grid as gs
from mihd.grid import ALL_SLICES, GridSpec
from mihd.grid_state import GridState
from mihd.jsonio import write_json_atomic
from mihd.plan import Cell, RunSpec, plan_argv
from mihd.rundir import write_spec
from mihd.runs.cells import headline
from mihd_tui.wording import cell_text, describe_cell

COHORT = GridSpec("demo", "pca").with_slice(ALL_SLICES, ["demo", "s2", "s3", ALL_SLICES])


def score(run_id, slice_id, ari, fusion="concat", vision="texture", cluster="gmm"):
    sig = {"slice": slice_id, "gene": "pca", "vision": vision, "variant": "standard" if vision else None,
           "fusion": fusion, "cluster": cluster, "cached": True, "backend": "local"}
    return {f"{run_id}:{slice_id}:{fusion}:{vision}:{cluster}": {"run_id": run_id, "ari": ari, "nmi": ari,
                                                                 "label": "x", "sig": sig}}


def entry(slice_id, modality, name):
    return {"slice": slice_id, "modality": modality, "name": name, "variant": "-" if modality == "gene" else "standard"}


def test_all_slices_shows_each_combinations_mean_over_the_slices_that_have_it():
    scores = {**score("20250101-000000-000-aaaaaa", "demo", 0.30),   # an older run of demo: replaced below
              **score("20250102-000000-000-bbbbbb", "demo", 0.60),
              **score("20250102-000000-000-bbbbbb", "s2", 0.40),
              **score("20250102-000000-000-bbbbbb", "other", 0.99),  # not of the cohort
              **score("20250102-000000-000-bbbbbb", "s3", 0.95, cluster="kmeans"),  # another clusterer
              **score("20250103-000000-000-cccccc", "s3", 0.20, fusion="gene_only", vision=None)}
    grid = GridState().compute(COHORT, [], scores, [])
    cs = grid[("concat", "texture")]
    # (0.60 + 0.40) / 2 = 0.50; sample sd sqrt((0.1^2 + 0.1^2) / 1) = 0.141421
    assert cs.state == gs.DONE and cs.slices == (("demo", 0.60), ("s2", 0.40))
    assert cs.ari == pytest.approx(0.50) and cs.ari_sd == pytest.approx(0.141421, abs=1e-6)
    assert cs.scored_by == "20250102-000000-000-bbbbbb" and cs.band == 2
    alone = grid[("gene_only", "none")]
    assert alone.slices == (("s3", 0.20),) and alone.ari == pytest.approx(0.20) and alone.ari_sd is None
    assert grid[("concat", "none")].state == gs.NA and grid[("mean", "texture")].state == gs.NEVER


def test_all_slices_says_running_and_ready_over_the_cohort(tmp_path):
    run_dir = tmp_path / "study"
    run_dir.mkdir()
    cells = tuple(Cell(s, "pca", "texture", "mean") for s in ("demo", "s2", "s3"))
    write_spec(run_dir, RunSpec(cells, kind="grid"), run_id="study", argv=["mihd"], cached=[True] * 3)
    view = SimpleNamespace(id="20250104-000000-000-dddddd", run_dir=str(run_dir), active=True, status="running")
    scores = score("20250102-000000-000-bbbbbb", "demo", 0.5, fusion="mean")
    entries = [entry(s, m, n) for s in ("demo", "s2", "s3") for m, n in (("gene", "pca"), ("vision", "texture"))]
    grid = GridState().compute(COHORT, [view], scores, entries[:-1])
    running = grid[("mean", "texture")]
    assert running.state == gs.RUNNING and (len(running.slices), running.cohort) == (1, 3)  # 1 of 3 slices scored
    assert cell_text(running) == "1/3 .50" and "1 of 3 slices scored" in describe_cell(running)  # not `33%`
    assert running.runs[0] == view.id
    assert grid[("gene_only", "none")].state == gs.READY  # pca is cached on every slice
    assert grid[("concat", "texture")].state == gs.NEVER  # s3 lacks its texture embedding


def test_launching_on_all_slices_is_a_study_of_the_cohort():
    (study,) = gs.launch_plans(COHORT, [(["concat", "mean"], ["texture"])], seeds=(0, 1))
    assert study.kind == "grid" and study.slices == ("demo", "s2", "s3") and len(study.cells) == 6
    assert plan_argv(study)[:2] == ["grid", "demo,s2,s3"]
    (one,) = gs.launch_plans(COHORT, [(["concat"], ["texture"])])
    assert one.kind == "grid" and one.label == "study 3 slices, 3 cells"
    assert GridSpec("demo").with_slice("s2", ["demo", "s2", ALL_SLICES]) == GridSpec("s2")


def test_the_slice_switcher_ends_with_all_slices_when_there_are_several(tmp_path):
    assert gs.slice_choices(tmp_path, []) == ["demo"]
    write_json_atomic(tmp_path / "slices.json", {"151673": {"path": "/x"}})
    assert gs.slice_choices(tmp_path, []) == ["demo", "151673", ALL_SLICES]


def test_all_slices_reads_as_a_mean_with_its_slices_on_screen():
    from mihd_tui.wording import cell_text, describe_cell, history_text

    scores = {**score("20250102-000000-000-bbbbbb", "demo", 0.60), **score("20250102-000000-000-bbbbbb", "s2", 0.40)}
    cs = GridState().compute(COHORT, [], scores, [])[("concat", "texture")]
    assert cell_text(cs) == "0.50 n2"
    assert describe_cell(cs) == "mean ARI 0.500 ± 0.141 over 2 slices"
    assert history_text(cs) == "per slice: demo 0.600 · s2 0.400"


def test_all_slices_marks_a_combination_no_slice_can_compute_here(tmp_path, monkeypatch):
    monkeypatch.setenv("MIHD_WEIGHTS", str(tmp_path / "none"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    entries = [entry("demo", "gene", "pca"), entry("demo", "vision", "uni2")]  # uni2 cached for demo only
    cs = GridState().compute(COHORT, [], {}, entries)[("concat", "uni2")]
    assert (cs.state, cs.reason) == (gs.NO_WEIGHTS, "no weights for uni2")
    assert gs.plan_launches(COHORT, GridState().compute(COHORT, [], {}, entries), ["concat"], ["uni2"]) == []


def test_a_studys_headline_is_its_best_combinations_mean_not_its_best_single_cell():
    def cell(slice_id, fusion, ari):
        return {"signature": f"{slice_id}|pca|texture|standard|{fusion}|gmm|true|local", "ari": ari, "nmi": ari and ari / 2,
                "random_init": False}

    study = [cell("151673", "concat", 0.82), cell("151674", "concat", 0.40),
             cell("151673", "mean", 0.70), cell("151674", "mean", 0.68), cell("151673", "attention", None)]
    assert headline(study)["ari"] == pytest.approx(0.69) and headline(study)["nmi"] == pytest.approx(0.345)
    partial = study + [cell("151673", "staig_fusion", 0.95)]  # scored on one slice only: not the same measure
    assert headline(partial)["ari"] == pytest.approx(0.69)
    assert headline(study[:1] + study[2:3])["ari"] == pytest.approx(0.82)  # one slice: its best cell
