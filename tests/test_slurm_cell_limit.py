"""A cell of a Slurm grid judged against its own array task's time limit, against the real single-node Slurm: the
cell whose measured pace will not end within its task's --time is flagged late with the limit's words, and its
grid's hooks are told once, naming the cell, before Slurm kills it; the quick cell of the same grid is not. The
dashboard's grid shows such a cell late, with its reason."""

from __future__ import annotations

import pytest

from conftest import run_mihd, with_demo
from mihd import grid as gs
from mihd.grid_state import GridState
from mihd.jsonio import read_json
from mihd.runs.backends.slurm_commands import SlurmCommands
from mihd.runs.grid_view import CellView
from mihd.runs.late import LIMIT_WORDS
from notify_helpers import recorded, recorder, write_hooks
from runs_helpers import view, wait_for
from test_grid_state import CELL, SPEC
from test_grid_state import view as run_view
from test_slurm_late import events
from test_slurm_real import slurm, ws  # noqa: F401  (fixtures)



def launch_against_a_minute(root) -> tuple[str, int, int]:
    """(grid id, slow cell, quick cell) of a Slurm grid launched with a 1-minute --time: a staig_fusion cell of 3
    seeds (minutes of training) beside a concat cell (seconds), on cached embeddings so both start at once."""
    warm = run_mihd("run", "demo", "--gene", "pca", "--vision", "texture", "--fusion", "gene_only", "--cluster",
                    "kmeans", root=root)
    assert warm.returncode == 0, warm.stderr
    proc = run_mihd("launch", "--backend", "slurm", "--cpus", "1", "--max-parallel", "2", "--time", "1", "--",
                    "grid", "demo", "--gene", "pca", "--vision", "texture", "--fusion", "staig_fusion,concat",
                    "--cluster", "gmm", "--seeds", "3", root=root)
    assert proc.returncode == 0, proc.stderr
    grid_id = proc.stdout.strip()
    cells = {c.label.split()[2]: c.index for c in wait_for(lambda: view(root, grid_id).cells, timeout=60)}
    return grid_id, cells["staig_fusion"], cells["concat"]


@pytest.mark.slurm
@pytest.mark.timeout(400)
def test_a_cell_that_will_hit_its_array_tasks_time_limit_is_flagged_and_told_once_before_slurm_kills_it(
        ws, demo_h5ad):
    root, alerts = with_demo(ws, demo_h5ad), ws / "alerts.jsonl"
    write_hooks(root, [{"on": ["late"], "command": recorder(alerts)}])
    grid_id, slow, quick = launch_against_a_minute(root)
    grid = root / "runs" / grid_id
    late = wait_for(lambda: events(root, f"{grid_id}/cells/{slow}", "late"), timeout=120, every=0.5)[0]
    assert late["reason"].startswith(f"{LIMIT_WORDS} 0:01:00 (projected "), late
    assert not (grid / "cells" / str(slow) / "exit.json").exists()  # told before Slurm ends it
    cell = wait_for(lambda: (c := view(root, grid_id).cells[slow]).late and c, timeout=20, every=1.0)
    assert cell.status == "running" and cell.late == late["reason"], cell
    assert view(root, grid_id).late == f"cell {slow} {late['reason']}"  # the runs table's row of the grid too
    told = wait_for(lambda: recorded(alerts), timeout=30)
    assert len(told) == 1 and told[0]["stdin"]["run_id"] == f"{grid_id}/{slow}", told
    assert told[0]["env"]["MIHD_EVENT_LABEL"] == f"demo grid 2 cells, cell {slow}: demo pca+texture staig_fusion gmm"
    assert told[0]["stdin"]["reason"] == late["reason"]
    shown = wait_for(lambda: (out := run_mihd("runs", "show", grid_id, root=root).stdout) and "late  " in out
                     and out, timeout=30, every=1.0)
    assert "staig_fusion gmm  running  " in shown and f" {late['reason']}" in shown, shown
    ended = wait_for(lambda: read_json(grid / "cells" / str(slow) / "exit.json"), timeout=150, every=1.0)
    assert late["t"] < ended["ended"]
    wait_for(lambda: SlurmCommands().show_job(cell.job_id).state == "TIMEOUT", timeout=60, every=1.0)
    assert len(events(root, f"{grid_id}/cells/{slow}", "late")) == 1 and len(recorded(alerts)) == 1
    assert events(root, f"{grid_id}/cells/{quick}", "late") == []  # it ended in time


def test_the_dashboards_grid_shows_a_cell_flagged_late_as_late_with_its_reason(tmp_path):
    said = f"{LIMIT_WORDS} 0:01:00 (projected 0:01:57)"
    cells = [CellView(index=i, label="x", status="running", reason=None, job_id=f"7_{i}", run_dir="", started=None,
                      ended=None, elapsed=10.0, expected_s=None, eta_s=None, progress=0.2, overrun=False, ari=None,
                      nmi=None, error=None, late=said if i == 0 else None) for i in range(2)]
    fan = run_view(tmp_path, "20250106-000000-000-aaaaaa", [CELL, dict(CELL, fusion="mean")], cells=cells)
    grid = GridState().compute(SPEC, [fan], {}, [])
    late, other = grid[("concat", "texture")], grid[("mean", "texture")]
    assert (late.state, late.reason, late.progress) == (gs.LATE, said, 0.2) and other.state == gs.RUNNING


def test_a_cells_late_flag_read_by_its_grid_follows_each_turn_of_its_supervisors_judgement(tmp_path):
    """Told once to the hooks, but each later turn of the flag is in the cell's events: a cell back on time
    stops reading late in its grid, and reads late again if its pace falls behind once more."""
    from mihd.rundir import read_events
    from mihd.runs.eta import Expected
    from mihd.runs.fanout_status import cell_late
    from mihd.runs.late import tell

    cell = tmp_path / "runs" / "20250106-000000-000-aaaaaa" / "cells" / "0"
    cell.mkdir(parents=True)
    said = f"{LIMIT_WORDS} 0:01:00 (projected 0:01:57)"
    turns = [(said, None), (None, said), (said, None)]
    seen = []
    for late, was in turns:
        tell(cell, late, was, 10.0, 117.0, Expected(None), 0.1, False, 1.5, "demo grid 2 cells, cell 0")
        seen.append(cell_late(read_events(cell)[0]))
    assert seen == [said, None, said]
