"""Damage to a run's own files costs only what it must. A running grid whose fanout.json and spec.json are
garbled lists as one `corrupt` row (never a failed listing) while its runner goes on from what it read at the
start: every waiting cell still runs and the grid's result is merged; a cell that finished with a result stays
done though a garbage line landed in its events or its proc.json was garbled. A finished run whose
result.json was deleted is not `done`. Real processes and a real fanned-out demo grid."""

from pathlib import Path

import pytest

from mihd.runs.run_row import describe_part

from conftest import run_mihd
from fanout_helpers import read
from runs_helpers import launch_fake, view, wait_for


@pytest.fixture(autouse=True)
def index_dir(tmp_path_factory, monkeypatch):
    """This test's own host-local index folder (subprocesses inherit it)."""
    monkeypatch.setenv("MIHD_INDEX_DIR", str(tmp_path_factory.mktemp("host-index")))


def test_a_finished_run_whose_result_was_deleted_is_not_done(tmp_path):
    run_id = launch_fake(tmp_path, "--seconds", 0.2, "--ari", 0.61)
    wait_for(lambda: view(tmp_path, run_id).status == "done")
    (tmp_path / "runs" / run_id / "result.json").unlink()
    v = view(tmp_path, run_id)
    assert v.status == "corrupt" and v.error.startswith("result.json: missing") and v.ari is None, v
    listing = run_mihd("runs", "ls", "--all", root=tmp_path)
    assert listing.returncode == 0 and f"{run_id}: corrupt: result.json: missing" in listing.stdout, listing.stdout


def test_a_running_grids_damaged_files_cost_only_themselves(demo_root):
    root = demo_root
    other = launch_fake(root, "--seconds", 0.2, "--ari", 0.7)
    for flag, name in (("--gene", "pca"), ("--vision", "texture")):
        assert run_mihd("extract", "demo", flag, name, root=root).returncode == 0
    proc = run_mihd("launch", "--parallel", "2", "--", "grid", "demo", "--gene", "pca", "--vision", "texture",
                    "--fusion", "staig_fusion,concat,mean", "--cluster", "gmm,kmeans", root=root)
    assert proc.returncode == 0, proc.stderr
    grid = Path(root) / "runs" / proc.stdout.strip()
    order = read(grid / "fanout.json")["order"]
    first, second = order[:2]  # the two longest cells (staig_fusion) start first; the other four wait
    wait_for(lambda: all((grid / "cells" / str(i) / "events.jsonl").exists() for i in (first, second)), timeout=120)
    saved = {name: (grid / name).read_bytes() for name in ("fanout.json", "spec.json")}
    (grid / "fanout.json").write_text('{"cells": "garbled')
    with open(grid / "cells" / str(first) / "events.jsonl", "a") as fh:
        fh.write('{"t": 1.0, "kind": "sta\n')  # a torn write, with the cell's next events after it
    (grid / "cells" / str(second) / "proc.json").write_text('{"pid": "garbled"}')

    listing = run_mihd("runs", "ls", "--all", root=root)  # the whole workspace still lists
    assert listing.returncode == 0 and "Traceback" not in listing.stderr, listing.stderr
    assert f"{grid.name}: corrupt: " in listing.stdout and "fanout.json" in listing.stdout, listing.stdout
    assert any(other in ln and "done" in ln and "0.700" in ln for ln in listing.stdout.splitlines()), listing.stdout
    (grid / "spec.json").write_text("[garbled")

    wait_for(lambda: (grid / "exit.json").exists(), timeout=600, every=1)
    assert read(grid / "exit.json")["code"] == 0
    log = (grid / "run.log").read_text()
    assert "Traceback" not in log and "not started" not in log, log
    result = read(grid / "result.json")
    assert result["status"] == "ok" and len(result["cells"]) == 6 and all(c["ari"] is not None for c in result["cells"])
    row = describe_part(grid / "cells" / str(first))[0]
    assert row["status"] == "done" and "events.jsonl: line" in row["note"] and "skipped" in row["note"], row

    for name, data in saved.items():  # repaired: the grid reads as it ran
        (grid / name).write_bytes(data)
    v = view(root, grid.name)
    assert v.status == "done" and [c.status for c in v.cells] == ["done"] * 6, v.cells
    assert all(c.ari is not None for c in v.cells)
