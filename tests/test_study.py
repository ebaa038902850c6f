"""Studies: a grid over several slices (`mihd grid A,B ...`, `--slices FILE`), its plan and its fanned-out layout
(each embedding extracted once per slice), a real local study run, read back and killed, and the aggregation
across slices (`mihd results --across-slices`) against numbers worked out by hand."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from mihd.cli import build_parser
from mihd.cli.run_cmd import plan_from_args
from mihd.plan import Cell, RunSpec, plan_argv
from mihd.results import Score
from mihd.study import TRUTH_K, combine, render

from conftest import assert_one_line_error, run_mihd
from fanout_helpers import cache_statuses, processes_of, read
from runs_helpers import view, wait_for

GRID = ("--gene", "pca", "--vision", "texture", "--fusion", "concat,gene_only", "--cluster", "kmeans")


@pytest.fixture
def two_slices(demo_root):
    """The demo slice and a copy of it registered as `demo2`, and a third copy given by its path only."""
    from mihd.data.registry import register

    copy = demo_root / "copies" / "demo2.h5ad"
    copy.parent.mkdir()
    shutil.copy(demo_root / "demo" / "demo.h5ad", copy)
    register(demo_root, "demo2", copy)
    shutil.copy(copy, copy.parent / "demo3.h5ad")
    return demo_root


def plan_of(root, *argv):
    return plan_from_args(build_parser().parse_args(list(argv)), root)


def test_a_grid_over_several_slices_holds_every_cell_on_every_slice(two_slices):
    root = two_slices
    third = str(root / "copies" / "demo3.h5ad")
    plan = plan_of(root, "grid", f"demo,demo2,{third}", *GRID)
    assert plan.slices == ("demo", "demo2", "demo3") and plan.is_study and len(plan.cells) == 6
    assert [c.slice for c in plan.cells] == ["demo", "demo", "demo2", "demo2", "demo3", "demo3"]
    assert {c.short_label for c in plan.cells} == {"pca+texture concat kmeans", "pca+texture gene_only kmeans"}
    assert plan.label == "study 3 slices, 6 cells"
    assert plan.slice_options == {"sources": {"demo3": third}}  # a slice given as a path is loaded from it
    assert plan.on_slice("demo3").slice_options == {"source": third} and plan.on_slice("demo").slice_options == {}
    assert [c.slice for c in plan.on_slice("demo2").cells] == ["demo2", "demo2"]
    assert plan_of(root, *plan_argv(plan)) == plan  # the command the dashboard shows builds the same study
    assert RunSpec.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    listed = root / "slices.txt"
    listed.write_text(f"# the cohort\ndemo\n\ndemo2   # a copy\n{third}\n")
    assert plan_of(root, "grid", "--slices", str(listed), *GRID) == plan
    with pytest.raises(Exception, match="one slice"):
        RunSpec((Cell("demo", "pca", None, "gene_only"), Cell("demo2", "pca", None, "gene_only")), kind="run")


@pytest.mark.parametrize("argv, needle", [
    (("grid", "demo", "--slices", "slices.txt", *GRID), "either there or as SLICE"),
    (("grid", "--slices", "empty.txt", *GRID), "names no slice"),
    (("grid", "--slices", "missing.txt", *GRID), "--slices"),
    (("grid", *GRID), "SLICE: required"),
    (("grid", "demo,demo2,demo", *GRID), "'demo': named twice"),
    (("grid", "demo,", *GRID), "names no slice"),
    (("grid", "demo,demo2", "--fullres", "img.png", *GRID), "--fullres: names one image"),
    (("grid", "demo,nowhere", *GRID), "'nowhere': not a registered slice"),
    (("run", "demo,demo2", "--gene", "pca", "--fusion", "gene_only"), "SLICE 'demo,demo2'"),
])
def test_bad_slices_are_one_line_errors_before_anything_runs(two_slices, argv, needle):
    root = two_slices
    (root / "slices.txt").write_text("demo\n")
    (root / "empty.txt").write_text("# nothing yet\n\n")
    args = [str(root / a) if a.endswith((".txt", ".png")) else a for a in argv]
    assert_one_line_error(run_mihd(*args, root=root), needle)
    assert not (root / "runs").exists()


def test_a_study_extracts_each_embedding_once_per_slice(two_slices, tmp_path):
    from mihd.runs.fanout import read_fanout
    from mihd.runs.fanout_submit import prepare

    root = two_slices
    third = str(root / "copies" / "demo3.h5ad")
    plan = plan_of(root, "grid", f"demo,{third}", *GRID)
    grid = tmp_path / "grid"
    grid.mkdir()
    prepare(root, grid, plan, [False] * len(plan.cells), 2)
    fan = read_fanout(grid)
    assert sorted(fan["extract"]) == ["demo-gene-pca", "demo-vision-texture-standard", "demo3-gene-pca",
                                      "demo3-vision-texture-standard"]
    for i, cell in enumerate(plan.cells):
        assert sorted(fan["cells"][i]["needs"]) == [f"{cell.slice}-gene-pca", f"{cell.slice}-vision-texture-standard"]
        one = RunSpec.from_dict(read(grid / "cells" / str(i) / "spec.json")["plan"])
        assert one.cells == (cell,) and one.slices == (cell.slice,)
        assert one.slice_options == ({"source": third} if cell.slice == "demo3" else {})
    argv = read(grid / "extract" / "demo3-gene-pca" / "extract.json")["argv"]
    assert argv[2:6] == ["mihd", "extract", third, "--gene"]
    assert read(grid / "extract" / "demo-vision-texture-standard" / "extract.json")["argv"][4] == "demo"


def launch(root, *args) -> str:
    proc = run_mihd("launch", *args, root=root)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_a_local_study_runs_as_one_grid_and_reads_back_across_slices(two_slices):
    root = two_slices
    study = launch(root, "--parallel", "2", "--", "grid", "demo,demo2", *GRID, "--seeds", "2")
    done = wait_for(lambda: (v := view(root, study)).status not in ("queued", "running") and v, timeout=600, every=1)
    print(f"\nlocal study, 2 slices x 2 cells x 2 seeds, nothing cached, --parallel 2: {done.elapsed:.1f} s")
    assert done.status == "done", (done.error, [c.error for c in done.cells])
    grid = Path(done.run_dir)
    assert sorted(p.name for p in (grid / "extract").iterdir()) == [
        "demo-gene-pca", "demo-vision-texture-standard", "demo2-gene-pca", "demo2-vision-texture-standard"]
    assert set(cache_statuses(grid)) == {"hit"}  # the extractions were the only writers, once per slice
    rows = json.loads(run_mihd("runs", "ls", "--json", "--all", root=root).stdout)
    assert [r["id"] for r in rows] == [study]
    shown = run_mihd("runs", "show", study, root=root).stdout.splitlines()
    said = [ln.strip() for ln in shown if ln.split()[:1] in (["slice"], ["cells"])]
    assert said == ["cells  4 done", "slice  demo: 2 done", "slice  demo2: 2 done"], shown
    proc = run_mihd("results", "--across-slices", "--format", "json", root=root)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert sorted(r["fusion"] for r in out) == ["concat", "gene_only"] and [r["rank"] for r in out] == [1, 2]
    for r in out:
        per_slice = {c.slice: c.ari for c in done.cells if c.label.endswith(f"{r['fusion']} kmeans")}
        assert r["n_slices"] == 2 and r["k"] == TRUTH_K and set(r["slices"]) == {"demo", "demo2"}
        assert r["ari_mean"] == pytest.approx(sum(per_slice.values()) / 2)  # each slice: its 2 seeds' mean
        assert r["slices"]["demo"]["n"] == 2 and r["worst_ari"] == pytest.approx(min(per_slice.values()))
    png = root / "study.png"
    proc = run_mihd("results", "--across-slices", "--png", str(png), "--format", "markdown", root=root)
    assert proc.returncode == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", proc.stderr
    assert proc.stdout.startswith("| RANK | GENE |")
    # a cell of the study exported on its own slice; cells of two slices are refused in one line
    second = next(c.index for c in done.cells if c.slice == "demo2")
    h5ad = root / "cell.h5ad"
    proc = run_mihd("export", study, "--cell", str(second), "--h5ad", str(h5ad), "--png", str(root / "cell.png"),
                    root=root)
    assert proc.returncode == 0, proc.stderr
    import anndata

    labels = anndata.read_h5ad(h5ad).obs["mihd_pca+texture_" + done.cells[second].label.split()[-2] + "_kmeans"]
    assert labels.notna().all()
    assert_one_line_error(run_mihd("export", study, "--png", str(root / "all.png"), root=root),
                          "a study over slices demo, demo2; choose cells of one slice")


def test_mihd_grid_runs_a_study_in_the_foreground(two_slices):
    root = two_slices
    third = str(root / "copies" / "demo3.h5ad")
    proc = run_mihd("grid", f"demo,{third}", "--gene", "pca", "--fusion", "gene_only,gene_smooth", "--json", root=root)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "ok" and len(out["cells"]) == 4
    assert [(c["slice"], c["fusion"]) for c in out["cells"]] == [
        ("demo", "gene_only"), ("demo", "gene_smooth"), ("demo3", "gene_only"), ("demo3", "gene_smooth")]
    assert all(c["ari"] is not None for c in out["cells"])
    rows = json.loads(run_mihd("runs", "ls", "--json", "--all", root=root).stdout)
    assert len(rows) == 1 and rows[0]["status"] == "done" and rows[0]["n_cells"] == 4
    table = run_mihd("results", "--across-slices", root=root).stdout.splitlines()
    assert table[0].split()[:2] == ["RANK", "GENE"] and len(table) == 3 and all(" 2 " in ln for ln in table[1:])


def test_killing_a_study_stops_every_slice(two_slices):
    root = two_slices
    for slice_id in ("demo", "demo2"):
        for flag, name in (("--gene", "pca"), ("--vision", "texture")):
            assert run_mihd("extract", slice_id, flag, name, root=root).returncode == 0
    study = launch(root, "--parallel", "2", "--", "grid", "demo,demo2", "--gene", "pca", "--vision", "texture",
                   "--fusion", "staig_fusion,concat", "--cluster", "gmm")
    v = wait_for(lambda: (v := view(root, study)).cells and sum(c.status == "running" for c in v.cells) == 2 and v,
                 timeout=180)
    assert not (Path(v.run_dir) / "extract").exists()  # all cached: nothing to extract
    proc = run_mihd("runs", "kill", study, "--grace", "5s", root=root)
    assert proc.returncode == 0 and "status killed, 0 processes left" in proc.stdout, proc.stdout + proc.stderr
    v = view(root, study)
    assert v.status == "killed" and all(c.status in ("killed", "done") for c in v.cells), v.cells
    assert {c.slice for c in v.cells if c.status == "killed"} == {"demo", "demo2"}  # the slice not yet started too
    assert processes_of(Path(v.run_dir)) == []


# -- the aggregation, against numbers worked out by hand -------------------------------------------------------
def _scores(cell, aris, nmis=None, *, k=7, run="r1", when=2.0, random_init=False, k_auto=True):
    nmis = nmis or aris
    return [Score(cell, k, False, random_init, run, when, seed, a, n, 1.0, (), k_auto)
            for seed, (a, n) in enumerate(zip(aris, nmis))]


def _hand_study() -> list[Score]:
    a = lambda s: Cell(s, "pca", "texture", "concat")  # noqa: E731
    return [
        *_scores(a("s1"), [0.5, 0.7, 0.9], [0.6, 0.6, 0.6]),               # s1: ARI 0.7, NMI 0.6
        *_scores(a("s2"), [0.4], [0.5], k=5),                               # s2 (5 domains): ARI 0.4, NMI 0.5
        *_scores(a("s2"), [0.9], [0.9], k=5, run="r0", when=1.0),          # an older run of s2
        *_scores(a("s3"), [0.3, 0.5, 0.35], [0.4, 0.5, 0.45]),             # s3: ARI 1.15/3, NMI 0.45
        *_scores(Cell("s1", "pca", "texture", "mean"), [0.8]),              # another fusion, one slice
        *_scores(a("s1"), [0.1], random_init=True),                         # random weights: a row apart
        *_scores(a("s1"), [0.2], k=5, k_auto=False),                        # --n-clusters 5: a row apart
    ]


def test_across_slices_averages_seeds_within_a_slice_then_the_slices():
    rows = combine(_hand_study())
    assert [(r.rank, r.combo.fusion, r.combo.k, r.combo.random_init) for r in rows] == [
        (1, "mean", TRUTH_K, False), (2, "concat", TRUTH_K, False), (3, "concat", 5, False), (4, "concat", TRUTH_K, True)]
    study = rows[1]
    # per slice: 0.7, 0.4, 0.383333; mean 1.483333 / 3 = 0.494444
    # sample sd (ddof=1): deviations .205556, -.094444, -.111111 -> squares sum .063519 / 2 -> sqrt .178211
    # (pooling the 7 scores instead would give a mean of 3.65 / 7 = 0.521429)
    assert study.ari.mean == pytest.approx(0.494444, abs=1e-6) and study.ari.sd == pytest.approx(0.178211, abs=1e-6)
    # NMI per slice 0.6, 0.5, 0.45: mean 0.516667, sd sqrt((.083333^2 + .016667^2 + .066667^2) / 2) = 0.076376
    assert study.nmi.mean == pytest.approx(0.516667, abs=1e-6) and study.nmi.sd == pytest.approx(0.076376, abs=1e-6)
    assert study.n_slices == 3 and (study.worst.slice, round(study.worst.ari, 6)) == ("s3", 0.383333)
    assert [s.n for s in study.slices] == [3, 1, 3]  # the latest run of s2 only
    # every run pooled: s2 becomes (0.4 + 0.9) / 2 = 0.65; mean (0.7 + 0.65 + 0.383333) / 3 = 0.577778, sd 0.170239
    pooled = combine(_hand_study(), "all")[1]
    assert pooled.ari.mean == pytest.approx(0.577778, abs=1e-6) and pooled.ari.sd == pytest.approx(0.170239, abs=1e-6)
    one = rows[0]
    assert one.n_slices == 1 and one.ari.mean == pytest.approx(0.8) and one.ari.sd is None


def test_across_slices_keeps_runs_scored_on_labelled_spots_only_apart():
    cell = Cell("s1", "pca", "texture", "concat")
    every = _scores(cell, [0.5], run="r1")
    labelled = [replace(s, run_id="r2", when=3.0, ari=0.9, labelled_only=True) for s in _scores(cell, [0.9])]
    rows = combine(every + labelled, "all")
    assert sorted((r.combo.labelled_only, r.ari.mean, r.slices[0].n) for r in rows) == [(False, 0.5, 1), (True, 0.9, 1)]
    assert [r.combo.label for r in rows][0].endswith("(labelled spots)")


def test_across_slices_renders_for_a_paper_and_for_a_program():
    rows = combine(_hand_study())
    data = json.loads(render(rows, "json"))
    assert {"n_slices", "ari_mean", "ari_sd", "nmi_mean", "nmi_sd", "worst_slice", "rank", "k"} <= set(data[0])
    assert data[1]["slices"]["s2"] == {"ari": 0.4, "nmi": 0.5, "n": 1}
    csv_lines = render(rows, "csv").splitlines()
    assert csv_lines[0].startswith("rank,gene,vision,variant,fusion,cluster,k,refine,random_init,ari_mean,ari_sd")
    assert csv_lines[1].startswith("1,pca,texture,standard,mean,gmm,truth,False,False,0.8,,")  # one slice: sd blank
    per_slice = [part.split(":") for part in csv_lines[2].rsplit(",", 1)[1].split(";")]
    assert [(s, round(float(ari), 3)) for s, ari in per_slice] == [("s1", 0.7), ("s2", 0.4), ("s3", 0.383)]
    table = render(rows, "table").splitlines()
    assert "0.494 ± 0.178" in table[2] and "s3 0.383" in table[2] and table[2].split()[0] == "2"
    assert "| 1 | pca | texture | standard | mean |" in render(rows, "markdown")
