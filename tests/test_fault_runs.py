"""Run-control faults (issue 18): no fault of one part costs the others their work, and every end says why.

Real processes throughout: a fanned-out demo grid on two workers whose waiting cells are garbled or deleted
while the others run, a cell's supervisor or command killed with SIGKILL (what the OOM killer does), a
re-execution of a run dir that already ran."""

import json
import os
import signal
from pathlib import Path

import pytest

from mihd.runs.reasons import failure_reason

from conftest import assert_one_line_error, run_mihd
from fanout_helpers import interval, max_overlap, processes_of, read
from runs_helpers import launch_fake, view, wait_for

ACTIVE = ("queued", "running", "orphaned")
OOM = "killed by KILL (not by mihd: out of memory?)"


def launch_grid(root, fusions: str) -> Path:
    """A two-worker demo grid on cached embeddings (longest cells first: the staig_fusion ones); its run dir."""
    for flag, name in (("--gene", "pca"), ("--vision", "texture")):
        assert run_mihd("extract", "demo", flag, name, root=root).returncode == 0
    proc = run_mihd("launch", "--parallel", "2", "--", "grid", "demo", "--gene", "pca", "--vision", "texture",
                    "--fusion", fusions, "--cluster", "gmm,kmeans", root=root)
    assert proc.returncode == 0, proc.stderr
    return Path(root) / "runs" / proc.stdout.strip()


def ended(root, grid: Path):
    return wait_for(lambda: (v := view(root, grid.name)).status not in ACTIVE and v, timeout=600, every=1)


def shown_cells(root, run_id: str) -> dict[int, str]:
    """`mihd runs show`'s cell lines, by index."""
    out = run_mihd("runs", "show", run_id, root=root).stdout
    return {int(ln.split()[1]): ln for ln in out.splitlines() if ln.split()[:1] == ["cell"] and ln.split()[1].isdigit()}


def test_damaged_waiting_cells_and_a_killed_cell_fail_alone_saying_why(demo_root):
    """Cells 4 and 5 wait behind the two staig_fusion cells: one's spec.json is garbled, the other's run dir
    deleted, and cell 1's command is SIGKILLed. Each fails alone with its reason; cell 0 trains on to done
    (the runner used to crash on the damaged cell and its clean-up killed the running ones)."""
    root = demo_root
    grid = launch_grid(root, "staig_fusion,concat,mean")
    (grid / "cells" / "4" / "spec.json").write_text("{garbled")
    for f in (grid / "cells" / "5").iterdir():
        f.unlink()
    (grid / "cells" / "5").rmdir()
    wait_for(lambda: view(root, grid.name).cells[1].status == "running", timeout=120)
    wait_for(lambda: (grid / "cells" / "1" / "events.jsonl").exists(), timeout=60)
    os.kill(read(grid / "cells" / "1" / "proc.json")["child_pid"], signal.SIGKILL)
    v = ended(root, grid)
    cells = {c.index: c for c in v.cells}
    assert [cells[i].status for i in range(4)] == ["done", "failed", "done", "done"], v.cells
    assert cells[0].ari is not None
    assert cells[1].error == OOM
    assert cells[4].status == "corrupt" and cells[4].error.startswith("spec.json: not JSON"), cells[4]
    assert cells[5].status == "failed" and cells[5].error == "cells/5: its run dir is gone", cells[5]
    assert v.status == "failed" and v.error.startswith("3 of 6 cells failed; cell 1: " + OOM), v.error
    shown = shown_cells(root, v.id)
    assert OOM in shown[1] and "spec.json: not JSON" in shown[4] and "its run dir is gone" in shown[5], shown
    log = (grid / "run.log").read_text()
    assert "cells/4 not started: spec.json: not JSON" in log and "cells/5 not started: cells/5: its run dir is gone" in log
    assert "Traceback" not in log, log
    assert processes_of(grid) == []


def test_a_cell_whose_supervisor_dies_keeps_its_slot_until_its_command_ends(demo_root):
    """Cell 0's supervisor is SIGKILLed mid-training: the cell reads orphaned, no third cell starts on the two
    workers while it trains on, and it ends done with its score (it used to be counted as ended at once, a
    third training started in its slot, and the orphan was killed at the grid's end and called lost)."""
    root = demo_root
    grid = launch_grid(root, "staig_fusion,concat")
    wait_for(lambda: [c.status for c in view(root, grid.name).cells[:2]] == ["running", "running"], timeout=120)
    os.kill(read(grid / "cells" / "0" / "proc.json")["pid"], signal.SIGKILL)
    c = wait_for(lambda: (c := view(root, grid.name).cells[0]).status == "orphaned" and c, timeout=30)
    assert "its supervisor is gone" in c.reason, c
    v = ended(root, grid)
    assert v.status == "done" and all(c.status == "done" and c.ari is not None for c in v.cells), v.cells
    assert max_overlap([interval(grid / "cells" / str(i)) for i in range(4)]) == 2
    assert read(grid / "cells" / "0" / "exit.json")["written_by"] == "its grid's runner"
    assert "cells/0 orphaned: its supervisor ended (signal KILL)" in (grid / "run.log").read_text()
    assert processes_of(grid) == []


def test_a_run_killed_by_a_signal_no_one_in_mihd_sent_says_so(workspace):
    """The command SIGKILLed (the OOM killer) or ended by another signal: `runs show` says which signal and that mihd did
    not send it; a `mihd runs kill --signal KILL` still reads killed, with no such guess."""
    root = workspace
    said = {}
    for sig in (signal.SIGKILL, signal.SIGUSR1):
        run_id = launch_fake(root, "--seconds", "60")
        run_dir = root / "runs" / run_id
        wait_for(lambda: read(run_dir / "proc.json").get("child_pid") if (run_dir / "proc.json").exists() else None)
        os.kill(read(run_dir / "proc.json")["child_pid"], sig)
        v = wait_for(lambda: (v := view(root, run_id)).status not in ACTIVE and v)
        assert v.status == "failed" and v.exit_signal == sig.name.removeprefix("SIG"), v
        said[sig.name] = v.error
        assert f"error  {v.error}" in run_mihd("runs", "show", run_id, root=root).stdout
    assert said == {"SIGKILL": OOM, "SIGUSR1": "killed by USR1 (not by mihd)"}
    run_id = launch_fake(root, "--seconds", "60")
    wait_for(lambda: view(root, run_id).status == "running")
    assert run_mihd("runs", "kill", run_id, "--signal", "KILL", root=root).returncode == 0
    v = view(root, run_id)
    assert v.status == "killed" and v.error is None, v


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGUSR2])
def test_a_user_signal_to_the_supervisor_reaches_the_run_and_its_end_is_written(workspace, sig):
    """`scancel --signal=USR1` (Slurm hands it to the batch shell, which passes it on) or a `kill -USR1` of the
    supervisor: the run gets it, and its end is written and read as a signal the researcher sent, with no
    process of the run left behind."""
    run_id = launch_fake(workspace, "--seconds", "60")
    run_dir = workspace / "runs" / run_id
    wait_for(lambda: read(run_dir / "proc.json").get("child_pid") if (run_dir / "proc.json").exists() else None)
    os.kill(read(run_dir / "proc.json")["pid"], sig)
    v = wait_for(lambda: (v := view(workspace, run_id)).status not in ACTIVE and v)
    ended = read(run_dir / "exit.json")
    assert ended["forwarded"] == [sig.name] and ended["signal"] == sig.name.removeprefix("SIG"), ended
    assert v.status == "killed", v
    assert wait_for(lambda: processes_of(run_dir) == [], timeout=10)


@pytest.mark.parametrize("row, said", [
    ({"status": "failed", "exit_signal": "KILL", "error": None}, OOM),
    ({"status": "failed", "exit_signal": "TERM", "error": "out of patience"}, "out of patience"),
    ({"status": "killed", "exit_signal": "KILL", "error": None, "kill_signal": "KILL"}, None),
    ({"status": "failed", "exit_signal": None, "error": None}, None),
])
def test_failure_reason_names_the_signal_only_when_nothing_else_says_why(row, said):
    assert failure_reason(row) == said


def test_exec_plan_refuses_a_run_dir_that_already_ran(workspace):
    """`mihd exec-plan --run-dir` on a run that ended, or that is running, is refused in one line and leaves
    its files as they were (it used to run the plan again in place, over the first run's result)."""
    root = workspace
    done_id = launch_fake(root, "--seconds", "0.2")
    wait_for(lambda: view(root, done_id).status == "done")
    running_id = launch_fake(root, "--seconds", "60")
    running = root / "runs" / running_id
    wait_for(lambda: (running / "events.jsonl").exists() and "start" in (running / "events.jsonl").read_text())
    for run_id, why in ((done_id, "its run ended (exit.json)"), (running_id, "its run started already")):
        run_dir = root / "runs" / run_id
        before = {f.name: f.read_bytes() for f in run_dir.iterdir() if f.name not in ("run.log", "usage.json")}
        proc = run_mihd("exec-plan", "--run-dir", str(run_dir), root=root)
        assert_one_line_error(proc, f"--run-dir {run_dir}: {why}")
        after = {f.name: f.read_bytes() for f in run_dir.iterdir() if f.name not in ("run.log", "usage.json")}
        assert after.keys() == before.keys() and all(after[k] == before[k] for k in before if k != "events.jsonl")
        starts = [e for e in map(json.loads, after["events.jsonl"].splitlines()) if e["kind"] == "start"]
        assert len(starts) == 1 and after["events.jsonl"].startswith(before["events.jsonl"])
    assert run_mihd("runs", "kill", running_id, "--grace", "2s", root=root).returncode == 0
    proc = run_mihd("run", "demo", "--gene", "pca", "--fusion", "gene_only", "--run-dir", str(root / "runs" / done_id),
                    root=root)
    assert_one_line_error(proc, "its run ended")
    assert json.loads((root / "runs" / done_id / "result.json").read_text())["status"] == "ok"


def test_a_run_whose_result_and_exit_cannot_be_written_ends_failed_saying_so(small_disk, monkeypatch):
    """The disk fills while the run runs (a 2 MB tmpfs workspace, root only): its result cannot be written, yet
    it ends `failed` saying the file system is full (it used to read lost, with a traceback in run.log), and
    `runs rm` leaves nothing of it behind."""
    from mount_helpers import fill

    root = small_disk
    monkeypatch.setenv("MIHD_ROOT", str(root))
    run_id = launch_fake(root, "--seconds", "4")
    run_dir = root / "runs" / run_id
    wait_for(lambda: (run_dir / "events.jsonl").exists() and (run_dir / ".reserve").exists())
    fill(root, 0)
    v = wait_for(lambda: (v := view(root, run_id)).status not in ACTIVE and v, timeout=60)
    assert v.status == "failed" and v.error.startswith("no result: the file system of its run dir is full"), v
    assert read(run_dir / "exit.json")["code"] != 0 and not (run_dir / ".reserve").exists()
    assert "; no result: the file system of its run dir is full" in (run_dir / "run.log").read_text()
    assert f"error  {v.error}" in run_mihd("runs", "show", run_id, root=root).stdout
    assert run_mihd("runs", "rm", run_id, root=root).returncode == 0
    assert not run_dir.exists() and not list((root / "runs").iterdir())


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_fused_embedding_that_does_not_fit_names_its_file(small_disk, demo_h5ad):
    """Room to start the run (300 kB), not to keep its fused embedding (more): the cell fails in one line that
    names the file it could not write (numpy's short write names none), and no half-written file stays."""
    from mount_helpers import fill

    from mihd.data.registry import register

    root = small_disk / "ws"
    root.mkdir()
    register(root, "demo", demo_h5ad)  # where it lies: the disk holds the cache entry and the run
    assert run_mihd("extract", "demo", "--gene", "pca", root=root).returncode == 0
    fill(small_disk, 300 << 10)
    proc = run_mihd("run", "demo", "--gene", "pca", "--fusion", "gene_only", "--run-dir", str(root / "runs" / "r1"),
                    root=root)
    fused = root / "runs" / "r1" / "fused" / "0.npy"
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"{fused}: cannot be written" in proc.stdout + proc.stderr, (proc.stdout, proc.stderr)
    assert not any(p.name.endswith(".tmp") for p in fused.parent.iterdir())
