"""Damage to a Slurm grid's own files after submission, against the real single-node Slurm: a grid whose
fanout.json is garbled while every one of its jobs waits lists as one `corrupt` row, and each cell still starts
from what was fixed at submission (its job script, its own run dir), waits for its extractions and ends done.
A cell laid out before cells had their own copy still reads its grid's fanout.json."""

import json
import subprocess
from pathlib import Path

import pytest

from mihd.runs.run_row import describe_part

from conftest import run_mihd, with_demo
from fanout_helpers import assert_cells_waited_for_their_extractions, read
from runs_helpers import view, wait_for
from test_slurm_real import slurm, ws  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(700)]


def test_a_garbled_fanout_json_costs_no_waiting_cell_of_a_slurm_grid(ws, demo_h5ad):
    root = with_demo(ws, demo_h5ad)  # nothing cached: the cells wait for two extraction jobs
    proc = run_mihd("launch", "--backend", "slurm", "--cpus", "1", "--max-parallel", "2", "--sbatch-arg=--hold",
                    "--", "grid", "demo", "--gene", "pca", "--vision", "texture", "--fusion", "concat,mean",
                    "--cluster", "kmeans,gmm", root=root)
    assert proc.returncode == 0, proc.stderr
    grid_id = proc.stdout.strip()
    grid = Path(root) / "runs" / grid_id
    handle = read(grid / "handle.json")
    saved = (grid / "fanout.json").read_bytes()
    (grid / "fanout.json").write_text('{"cells": "garbled')  # every job still held: no part has started

    listing = run_mihd("runs", "ls", "--all", root=root)
    assert listing.returncode == 0 and "Traceback" not in listing.stderr, listing.stderr
    assert f"{grid_id}: corrupt: " in listing.stdout and "fanout.json" in listing.stdout, listing.stdout
    subprocess.run(["scontrol", "release", *handle["extract_jobs"], handle["job_id"]], check=True)

    cells = [grid / "cells" / str(i) for i in range(4)]
    wait_for(lambda: all((d / "exit.json").exists() for d in cells), timeout=600, every=2)
    for d in cells:
        row, crows = describe_part(d)
        assert row["status"] == "done" and crows[0]["ari"] is not None, (d.name, row, (d / "run.log").read_text())

    (grid / "fanout.json").write_bytes(saved)  # repaired: the grid reads as it ran
    assert_cells_waited_for_their_extractions(grid)
    done = wait_for(lambda: (v := view(root, grid_id)).status not in ("queued", "running", "corrupt") and v,
                    timeout=60)
    assert done.status == "done" and [c.status for c in done.cells] == ["done"] * 4, done


def test_a_cell_queued_before_cells_had_their_own_needs_reads_its_grids_layout(tmp_path):
    """A task laid out by an earlier release (no needs.json) and started after the upgrade still waits right."""
    from mihd.runs.fanout_cell import extraction_problem, needs_of

    grid = tmp_path / "grid"
    (grid / "cells" / "1").mkdir(parents=True)
    pca = {"slice": None, "modality": "gene", "name": "pca", "variant": None, "cells": [1]}
    (grid / "fanout.json").write_text(json.dumps({"cells": [{"needs": []}, {"needs": ["gene-pca"]}],
                                                  "extract": {"gene-pca": pca}}))
    needs = needs_of(grid / "cells" / "1", None)
    assert needs == {"gene-pca": pca}
    assert extraction_problem(grid, needs) == "extraction of gene pca did not finish (see extract/gene-pca/run.log)"
