"""A run's scores are indexed from its small scores.json (run_scores), not its result.json of per-spot labels
and coordinates, so rebuilding a lab's index reads kilobytes a run, not the spots; a result.json written
again by hand, or a run from before scores.json existed, still lists what its result.json says. Real
launched runs and a real `mihd runs ls` in its own process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mihd.rundir import write_result

from runs_helpers import drop_index, launch_fake, view, wait_for

REPO = Path(__file__).resolve().parents[1]
COUNTING = """import atexit, runpy, sys
opened = []
sys.addaudithook(lambda ev, a: ev == "open" and str(a[0]).endswith("result.json") and opened.append(a[0]))
atexit.register(lambda: print(f"result.json opened: {len(opened)}", file=sys.stderr))
sys.argv = ["mihd", *sys.argv[1:]]
runpy.run_module("mihd", run_name="__main__")
"""


@pytest.fixture(autouse=True)
def index_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MIHD_INDEX_DIR", str(tmp_path_factory.mktemp("host-index")))


def finished(root: Path, ari: float) -> Path:
    run_id = launch_fake(root, "--seconds", 0.1, "--ari", ari)
    wait_for(lambda: view(root, run_id).status == "done")
    return root / "runs" / run_id


def test_a_rebuilt_index_reads_each_runs_scores_without_its_spots(tmp_path):
    run_dir = finished(tmp_path, 0.61)
    result = json.loads((run_dir / "result.json").read_text())
    result["spots"] = {"barcodes": [f"AAAC{i:06d}-1" for i in range(3000)], "x": list(range(3000))}
    result["cells"][0]["labels"] = [i % 7 for i in range(3000)]
    write_result(run_dir, result)  # as the pipeline writes it: spots and labels
    assert (run_dir / "scores.json").stat().st_size * 10 < (run_dir / "result.json").stat().st_size
    drop_index(tmp_path)
    got = subprocess.run([sys.executable, "-c", COUNTING, "runs", "ls", "--json", "--all", "--root", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert got.returncode == 0, got.stderr
    assert "result.json opened: 0" in got.stderr, got.stderr
    row = next(r for r in json.loads(got.stdout) if r["id"] == run_dir.name)
    assert row["status"] == "done" and abs(row["ari"] - 0.61) < 1e-9, row


def test_a_result_written_again_or_without_scores_lists_as_itself(tmp_path):
    edited, older = finished(tmp_path, 0.61), finished(tmp_path, 0.42)
    result = json.loads((edited / "result.json").read_text())
    result["cells"][0]["ari"] = 0.93
    (edited / "result.json").write_text(json.dumps(result))  # by hand, in place: its scores.json is stale
    (older / "scores.json").unlink()  # a run made before scores.json existed
    drop_index(tmp_path)
    assert abs(view(tmp_path, edited.name).ari - 0.93) < 1e-9
    assert abs(view(tmp_path, older.name).ari - 0.42) < 1e-9
    (edited / "result.json").write_text("{ torn")
    assert view(tmp_path, edited.name).status == "corrupt"
