"""A Slurm grid's last running cell ended by its array task's time limit, against the real single-node Slurm: once
the grid has ended, `mihd runs show GRID` (text and --json) and the dashboard's grid say that Slurm's time limit
failed the cell, not a bare `killed`, though the grid ended before Slurm said TIMEOUT. The supervisor that Slurm's
TERM reached says so in exit.json, by the clock where Slurm does not answer then."""

from __future__ import annotations

import json

import pytest

from conftest import run_mihd, with_demo
from mihd import grid as gs
from mihd.grid import GridSpec
from mihd.grid_state import GridState
from mihd.jsonio import read_json
from mihd.runs.end_window import EndWindow
from runs_helpers import view, wait_for
from test_slurm_cell_limit import launch_against_a_minute
from test_slurm_real import slurm, ws  # noqa: F401  (fixtures)

LIMIT = "killed by Slurm: time limit 0:01:00 reached"


@pytest.mark.slurm
@pytest.mark.timeout(300)
def test_the_last_cell_of_a_slurm_grid_ended_by_its_time_limit_reads_failed_by_the_time_limit(ws, demo_h5ad):
    root = with_demo(ws, demo_h5ad)
    grid_id, slow, quick = launch_against_a_minute(root)
    grid = root / "runs" / grid_id
    # watched as the dashboard does, until the grid ends: Slurm's answer (kept a few seconds) may still say the slow
    # cell's job runs when its exit.json comes
    ended = wait_for(lambda: (v := view(root, grid_id)).status not in ("queued", "running") and v, timeout=200,
                     every=0.25)
    assert ended.status == "failed" and ended.cells[slow].status == "failed", ended.cells
    assert ended.cells[slow].error.startswith(LIMIT), ended.cells[slow]

    shown = run_mihd("runs", "show", grid_id, "--json", root=root)
    assert shown.returncode == 0, shown.stderr
    cell = json.loads(shown.stdout)["cells"][slow]
    assert cell["status"] == "failed" and cell["error"].startswith(LIMIT), cell
    assert json.loads(shown.stdout)["cells"][quick]["status"] == "done"
    text = run_mihd("runs", "show", grid_id, root=root).stdout
    assert f"staig_fusion gmm  failed  {LIMIT}" in text, text
    assert LIMIT in read_json(grid / "result.json")["cells"][slow]["error"]

    state = GridState().compute(GridSpec("demo", "pca"), [view(root, grid_id)], {}, [])
    timed_out = state[("staig_fusion", "texture")]
    assert timed_out.state == gs.FAILED and timed_out.reason.startswith(LIMIT), timed_out


def test_a_term_at_the_time_limit_is_said_by_the_clock_when_slurm_does_not_answer(tmp_path, monkeypatch):
    for var in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol to ask: Slurm cannot say who sent the TERM
    window = EndWindow(kill_wait=5.0)
    assert window.slurm_outcome(61.0, 60.0) is None  # no TERM came: the command ended on its own
    window.termed()
    assert window.slurm_outcome(61.0, 60.0) == {"status": "failed", "note": LIMIT}
    assert window.slurm_outcome(58.0, 60.0)["note"] == LIMIT  # the job started a moment before its supervisor
    assert window.slurm_outcome(30.0, 60.0) is None  # long before its limit: a scancel, not the limit
    assert window.slurm_outcome(61.0, None) is None  # no limit known: nothing is guessed
