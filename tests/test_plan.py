"""The typed plan (mihd.plan): Cell and RunSpec round trip through JSON and spec.json, bad specs are one-line
errors, the CLI builds the same RunSpec it shows, and a launched plan runs to the end."""

from __future__ import annotations

import json

import pytest
from conftest import run_mihd

from mihd.cli import build_parser
from mihd.cli.run_cmd import plan_from_args
from mihd.plan import plan_argv
from mihd.errors import MihdError
from mihd.jsonio import write_json_atomic
from mihd.plan import Cell, RunSpec, grid_cells
from mihd.rundir import read_plan, read_spec, write_spec
from mihd_tui.run_result import _cell_label
from runs_helpers import view, wait_for

CELL = Cell("demo", "pca", "texture", "concat")
GOOD = {"cells": [CELL.to_dict()], "kind": "run"}


def test_run_spec_round_trips_through_json_and_spec_json(tmp_path):
    plan = RunSpec(grid_cells("demo", ["pca"], ["texture", "uni2"], ["concat", "mean"], ["gmm"], "freq"), kind="grid",
                   n_clusters=7, refine=True, seeds=(3,), override=True, drop_unlabelled=True, device="cpu",
                   encoder={"random_init": True}, slice_options={"truth_col": "layer"}, backend="slurm",
                   backend_options={"partition": "gpu"}, expect=90.0, name="sweep 1")
    assert RunSpec.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    write_spec(tmp_path, plan, run_id="r1", argv=["mihd", "exec-plan"], cached=[True, False, True, False])
    spec = read_spec(tmp_path)
    assert read_plan(tmp_path) == plan and spec["cells"][1] == {**plan.cells[1].to_dict(), "cached": False}
    assert (spec["id"], spec["backend"], spec["expect"], spec["name"]) == ("r1", "slurm", 90.0, "sweep 1")


@pytest.mark.parametrize("data, needle", [
    ([GOOD], "spec: expected an object, got list"),
    ({**GOOD, "cells": [{"slice": "demo", "gene": "pca"}]}, "spec: cells[0]: missing fusion"),
    ({**GOOD, "cells": [{**CELL.to_dict(), "vision": "../uni"}]}, "vision: '../uni' is not a name"),
    ({**GOOD, "colour": "red"}, "spec: unknown field 'colour'"),
    ({**GOOD, "n_clusters": 1}, "--n-clusters 1: not a whole number from 2 to 100"),
    ({**GOOD, "n_clusters": "7"}, "--n-clusters '7'"),
    ({**GOOD, "seeds": [1, 1]}, "--seeds: [1, 1] must be distinct"),
    ({**GOOD, "seeds": 3}, "spec: seeds must be a list"),
    ({**GOOD, "name": "two\nlines"}, "--name: 'two\\nlines' must be one line"),
    ({**GOOD, "cells": [CELL.to_dict(), {**CELL.to_dict(), "slice": "151673"}]},
     "plan: all cells of a run must be on one slice"),
    ({**GOOD, "cells": [CELL.to_dict(), {**CELL.to_dict(), "fusion": "mean"}]}, "a `run` has exactly one cell"),
    ({**GOOD, "device": "tpu"}, "--device: 'tpu' is not one of auto, cpu, cuda"),
])
def test_bad_specs_are_one_line_errors_naming_the_field(data, needle):
    with pytest.raises(MihdError) as err:
        RunSpec.from_dict(data)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_no_vision_reads_as_the_gene_encoder_alone():
    cell = Cell("demo", "pca", None, "gene_only", variant="freq")
    assert cell.variant is None and cell.label == "demo pca gene_only gmm"
    assert Cell("demo", "pca", "texture", "concat", variant="freq").label == "demo pca+texture/freq concat gmm"
    result_cell = {"gene": "pca", "vision": None, "variant": None, "fusion": "gene_only", "cluster": "gmm", "ari": 0.4}
    assert _cell_label("demo", result_cell) == "pca gene_only gmm"  # the run detail's cells table


def test_the_cli_shows_the_command_that_builds_the_same_plan(demo_root):
    for argv in (["run", "demo", "--gene", "pca", "--fusion", "gene_only"],
                 ["grid", "demo", "--gene", "pca", "--vision", "texture,uni2", "--variant", "freq", "--fusion",
                  "concat,mean", "--cluster", "kmeans,gmm", "--n-clusters", "5", "--seed", "2", "--refine",
                  "--device", "cpu", "--random-init"]):
        plan = plan_from_args(build_parser().parse_args(argv), demo_root)
        assert plan_from_args(build_parser().parse_args(plan_argv(plan)), demo_root) == plan
    assert plan_argv(RunSpec((Cell("demo", "pca", None, "gene_only"),))) == [
        "run", "demo", "--gene", "pca", "--fusion", "gene_only", "--cluster", "gmm"]
    grid = plan_from_args(build_parser().parse_args(argv), demo_root)
    assert (grid.kind, len(grid.cells), grid.n_clusters, grid.seeds, grid.device) == ("grid", 8, 5, (2,), "cpu")
    assert grid.encoder == {"random_init": True} and grid.cells[0] == Cell("demo", "pca", "texture", "concat", "kmeans", "freq")


def test_an_older_spec_json_still_reads_as_a_plan(tmp_path):
    write_json_atomic(tmp_path / "spec.json", {
        "id": "old", "name": None, "argv": ["python", "-m", "mihd", "grid"], "mihd_args": ["grid", "demo"],
        "cells": [{"slice": "demo", "gene": "pca", "vision": "texture", "variant": "standard", "fusion": f,
                   "cluster": "gmm", "cached": True} for f in ("concat", "mean")],
        "backend": "local", "expect": 60.0, "options": {}, "created": 1.0, "by": "a@b"})
    plan = read_plan(tmp_path)
    assert plan.kind == "grid" and plan.cells[1] == Cell("demo", "pca", "texture", "mean") and plan.expect == 60.0
    assert read_spec(tmp_path)["cells"][0]["cached"] is True


def test_mihd_launch_runs_the_plan_to_the_end(demo_root):
    """`mihd launch -- grid ...` as documented: the run reaches done with one scored cell per plan cell."""
    proc = run_mihd("launch", "--name", "baselines", "--", "grid", "demo", "--gene", "pca", "--fusion",
                    "gene_only,gene_smooth", "--cluster", "kmeans", "--device", "cpu", root=demo_root)
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip()
    v = wait_for(lambda: (v := view(demo_root, run_id)).status in ("done", "failed", "killed") and v, timeout=300)
    assert v.status == "done" and v.label == "baselines (demo grid 2 cells)", (v.status, v.error)
    assert [s["label"] for s in v.scores] == ["demo pca gene_only kmeans", "demo pca gene_smooth kmeans"]
    assert all(0 < s["ari"] <= 1 for s in v.scores)
    assert read_plan(demo_root / "runs" / run_id).device == "cpu"
