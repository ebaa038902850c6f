"""Local fan-out (`mihd launch --parallel N -- grid ...`): real demo cells as worker processes, extractions
first and once, one registry row that opens into its cells, a failed extraction failing only its cells,
kills of one cell and of the whole grid; and the critical-path packing the ETA rests on."""

import json
import os
from pathlib import Path

import pytest

from mihd.plan import Cell, RunSpec
from mihd.runs.fanout_submit import fans_out
from mihd.runs.fanout_status import critical_path
from mihd.runs.kill import kill_run
from mihd.runs.status import RunWatcher

from conftest import assert_one_line_error, run_mihd
from fanout_helpers import (GRID_14, allowed_share, assert_cells_waited_for_their_extractions, cache_statuses,
                            interval, max_overlap, processes_left, processes_of, read)
from runs_helpers import view, wait_for


def launch(root, *args) -> str:
    proc = run_mihd("launch", *args, root=root)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_parallel_grid_runs_its_cells_side_by_side_as_one_run(demo_root):
    root = demo_root  # nothing cached: pca, scgpt and texture are extracted first, once each
    grid_id = launch(root, "--parallel", "2", "--", *GRID_14)
    etas = []  # no history here: no ETA until a training's rate is measured or a cell finishes, then one

    def ended():
        v = view(root, grid_id)
        if v.status == "running":
            etas.append((sum(c.status == "done" for c in v.cells), v.eta_s))
        return v.status not in ("queued", "running") and v

    done = wait_for(ended, timeout=900, every=1)
    assert etas[0] == (0, None), etas  # nothing measured yet: unknown, not a guess
    assert any(isinstance(e, float) and e > 0 for n, e in etas), etas
    grid = Path(done.run_dir)
    print(f"\nlocal --parallel 2, 14 cells: {done.elapsed:.0f} s")
    assert done.status == "failed" and done.error.startswith("7 of 14 cells failed"), done.error
    # one row for the user, opening into its cells
    rows = json.loads(run_mihd("runs", "ls", "--json", "--all", root=root).stdout)
    assert [r["id"] for r in rows] == [grid_id] and rows[0]["n_cells"] == 14
    pca = [c for c in done.cells if "pca" in c.label]
    scgpt = [c for c in done.cells if "scgpt" in c.label]
    assert len(pca) == len(scgpt) == 7 and all(c.status == "done" and c.ari is not None for c in pca)
    assert all(c.status == "failed" and c.error.startswith("extraction of gene scgpt failed: ") and "scgpt" in c.error
               for c in scgpt), [c.error for c in scgpt]
    shown = [ln.split(None, 2)[2] for ln in run_mihd("runs", "show", grid_id, root=root).stdout.splitlines()
             if ln.split()[:1] == ["cell"] and ln.split()[1].isdigit()]
    assert len(shown) == 14 and sum(" done  ARI " in ln for ln in shown) == 7, shown
    assert sum("failed  extraction of gene scgpt failed: --gene scgpt" in ln for ln in shown) == 7, shown
    # each embedding computed once, by its extraction; the cells only hit the cache, after the extractions
    extractions = sorted(p.name for p in (grid / "extract").iterdir())
    assert extractions == ["gene-pca", "gene-scgpt", "vision-texture-standard"]
    assert [read(grid / "extract" / k / "exit.json")["code"] == 0 for k in extractions] == [True, False, True]
    assert cache_statuses(grid) and set(cache_statuses(grid)) == {"hit"}
    assert_cells_waited_for_their_extractions(grid)
    # two workers, each with its share of the cores, never more
    cells = [interval(grid / "cells" / str(i)) for i in range(14)]
    assert max_overlap(cells) == 2
    first = sorted(range(14), key=lambda i: cells[i][0])[:2]
    assert sorted(first) == [6, 13]  # the staig_fusion cells, longest expected, start first
    assert f"on worker 1 ({allowed_share(2)})" in (grid / "run.log").read_text()
    # the grid's merged result feeds scores like a one-process grid's
    result = read(grid / "result.json")
    assert len(result["cells"]) == 14 and sum(c["ari"] is not None for c in result["cells"]) == 7
    w = RunWatcher(root)
    try:
        assert sum(s["run_id"] == grid_id for s in w.latest_scores().values()) == 7
    finally:
        w.close()


def test_killing_one_cell_then_the_grid_leaves_nothing_running(demo_root):
    root = demo_root
    for flag, name in (("--gene", "pca"), ("--vision", "texture")):
        assert run_mihd("extract", "demo", flag, name, root=root).returncode == 0
    grid_id = launch(root, "--parallel", "2", "--", "grid", "demo", "--gene", "pca", "--vision", "texture",
                     "--fusion", "staig_fusion,concat", "--cluster", "gmm,kmeans")
    running = lambda i: (v := view(root, grid_id)).cells and v.cells[i].status == "running" and v  # noqa: E731
    v = wait_for(lambda: running(0) and running(1), timeout=120)
    assert not (Path(v.run_dir) / "extract").exists()  # everything was cached: no extraction
    out = kill_run(root, f"{grid_id}/0", grace=5)
    assert out["id"] == f"{grid_id}/0" and out["status"] == "killed" and out["survivors"] == 0
    v = wait_for(lambda: (v := view(root, grid_id)).cells[2].status in ("running", "done") and v, timeout=120)
    assert v.status == "running" and v.cells[0].status == "killed" and v.cells[1].status == "running"
    proc = run_mihd("runs", "kill", grid_id, "--grace", "5s", root=root)
    assert proc.returncode == 0 and "status killed, 0 processes left" in proc.stdout, proc.stdout + proc.stderr
    v = view(root, grid_id)
    assert v.status == "killed" and all(c.status in ("killed", "done") for c in v.cells), v.cells
    assert v.cells[1].status == "killed"  # staig_fusion kmeans was still training
    assert v.progress < 1.0  # its killed cells are work undone, not `killed ██████ 100%`
    assert processes_of(Path(v.run_dir)) == []
    assert_one_line_error(run_mihd("runs", "kill", f"{grid_id}/9", root=root), "no such cell")


def test_a_runner_killed_outright_leaves_no_process_and_a_grid_that_ended(demo_root):
    """The local runner SIGKILLed (the OOM killer's choice, say): its running cells are forks of it and
    end with it, the cells it never started read lost, and the grid ends instead of running forever."""
    import signal

    root = demo_root
    for flag, name in (("--gene", "pca"), ("--vision", "texture")):
        assert run_mihd("extract", "demo", flag, name, root=root).returncode == 0
    grid_id = launch(root, "--parallel", "2", "--", "grid", "demo", "--gene", "pca", "--vision", "texture",
                     "--fusion", "staig_fusion,concat", "--cluster", "gmm,kmeans")
    v = wait_for(lambda: (v := view(root, grid_id)).cells and v.cells[0].status == "running" and v, timeout=120)
    os.kill(read(Path(v.run_dir) / "proc.json")["child_pid"], signal.SIGKILL)
    v = wait_for(lambda: (v := view(root, grid_id)).status not in ("queued", "running", "orphaned") and v,
                 timeout=60)
    assert v.status == "failed" and not any(c.status in ("queued", "running", "orphaned") for c in v.cells), v.cells
    assert processes_left(Path(v.run_dir)) == []


def test_parallel_auto_gives_each_worker_one_of_several_gpus(demo_root):
    root = demo_root
    proc = run_mihd("launch", "--parallel", "auto", "--", "grid", "demo", "--gene", "pca", "--fusion",
                    "gene_only,gene_smooth", root=root, env={"CUDA_VISIBLE_DEVICES": "3,5"})
    assert proc.returncode == 0, proc.stderr
    v = wait_for(lambda: (v := view(root, proc.stdout.strip())).status not in ("queued", "running") and v, timeout=300)
    assert v.status == "done" and [c.status for c in v.cells] == ["done", "done"]
    log = (Path(v.run_dir) / "run.log").read_text()
    share = allowed_share(2)  # two GPUs: two workers, the cores divided between them
    assert f"on worker 0 ({share}, GPU 3)" in log and f"on worker 1 ({share}, GPU 5)" in log, log


async def test_the_dashboard_opens_the_grid_row_into_its_cells(demo_root):
    from mihd_tui.app import MihdApp
    from mihd_tui.screens.detail import RunDetailScreen
    from mihd_tui.widgets.runs_table import RunsTable
    from tui_helpers import kept_view, no_gpu, wait_until

    root = demo_root
    for flag, name in (("--gene", "pca"), ("--vision", "texture")):
        assert run_mihd("extract", "demo", flag, name, root=root).returncode == 0
    grid_id = launch(root, "--parallel", "2", "--", "grid", "demo", "--gene", "pca", "--vision", "texture",
                     "--fusion", "staig_fusion,concat", "--cluster", "gmm")
    kept_view(root)
    app = MihdApp(root, interval=0.2, setup_demo=False, kill_grace=2.0, gpu=no_gpu())
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_until(pilot, lambda: (v := app.find_view(grid_id)) and v.cells
                             and v.cells[0].status == "running", timeout=120)
            runs = app.screen_stack[1].query_one(RunsTable)
            assert runs.row_count == 1  # the grid is one row, not one per cell
            runs.focus()
            await pilot.press("o")
            table = await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen)
                                     and (t := app.screen.query_one("#cells")).row_count == 2 and t)
            assert str(table.get_cell("0", "cell")).endswith("staig_fusion gmm")
            assert str(table.get_cell("0", "note")).startswith("running")
            assert "running" in str(app.screen.query_one("#detail-stage").render())
    finally:
        kill_run(root, grid_id, "KILL", grace=1)


def test_parallel_options_are_checked_before_anything_starts(demo_root):
    grid = ("--", "grid", "demo", "--gene", "pca", "--fusion", "gene_only,gene_smooth")
    assert_one_line_error(run_mihd("launch", "--parallel", "0", *grid, root=demo_root), "--parallel", ">= 1 or auto")
    assert_one_line_error(run_mihd("launch", "--backend", "slurm", "--parallel", "2", *grid, root=demo_root),
                          "--parallel", "--backend local")
    assert_one_line_error(run_mihd("launch", "--max-parallel", "2", *grid, root=demo_root),
                          "--max-parallel", "--backend slurm")
    assert not (demo_root / "runs").exists()


def test_what_fans_out(monkeypatch):
    """A launched grid fans out by default as wide as the allowed cores; --parallel 1 or one core keeps it
    one process; a single cell never fans out."""
    cells = (Cell("demo", "pca", None, "gene_only"), Cell("demo", "pca", None, "gene_smooth"))
    grid = RunSpec(cells, kind="grid")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    monkeypatch.setenv("MIHD_THREADS", "2")
    assert fans_out(grid, {"parallel": 2}) and fans_out(grid.with_(backend="slurm"), {})
    assert fans_out(grid, {}) and not fans_out(grid, {"parallel": 1})
    monkeypatch.setenv("MIHD_THREADS", "1")
    assert not fans_out(grid, {})  # one core: one process, as `mihd grid` is
    assert not fans_out(RunSpec(cells[:1]), {"parallel": 2})


def test_extraction_jobs_carry_the_grids_device_and_encoder_options(tmp_path):
    from mihd.runs.fanout_submit import Extraction, extract_argv

    cells = (Cell("demo", "pca", "uni2", "concat", variant="freq"),)
    ex = Extraction("vision-uni2-freq", "vision", "uni2", "freq", (0,))
    argv = extract_argv(tmp_path, RunSpec(cells, kind="grid", device="cpu", encoder={"precision": "bf16"}), ex)
    assert argv[2:] == ["mihd", "extract", "demo", "--vision", "uni2", "--variant", "freq", "--device", "cpu",
                        "--precision", "bf16", "--root", str(tmp_path)]
    assert "--device" not in extract_argv(tmp_path, RunSpec(cells, kind="grid"), ex)  # auto: the default


@pytest.mark.parametrize("running, waiting, lanes, expected", [
    ([10.0], [30.0, 20.0, 10.0], 2, 40.0),   # 30 beside the running cell, then 20 and 10 each on the shorter lane
    ([], [5.0] * 4, 2, 10.0),
    ([], [5.0, 5.0, 60.0], 14, 60.0),        # the slowest cell is the grid's time
    ([3.0], [4.0, 4.0], 1, 11.0),            # one slot: one after the other
])
def test_critical_path_packs_the_cells_left_into_the_slots(running, waiting, lanes, expected):
    assert critical_path(running, waiting, lanes) == expected
