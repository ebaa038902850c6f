"""Faults of input: a run id that is empty or a path, out-of-range numbers, bad config files, a full or read-only
disk at launch. Each is one line on stderr (exit 2) before anything is made, and nothing a researcher had is
touched: no other run is killed, removed or read, no half-made run dir is left behind.

Real `mihd` subprocesses, real runs (the protocol-following fake run), real mounts (root; skipped otherwise).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_dir_of, run_mihd
from runs_helpers import launch_fake, view, wait_for

BAD_REFS = ["", " ", "\t", ".", "..", "/x", "/", "x/..", "GRID/../../OTHER", "../OTHER", "a\\b", "2", "20"]


@pytest.fixture
def two_runs(tmp_path):
    """A finished run and a running one, each with a log; `grid` has a `cells/` folder as a fanned-out grid does."""
    root = tmp_path / "ws"
    done = launch_fake(root, "--seconds", 0.1, name="first")
    live = launch_fake(root, "--seconds", 120, name="second")
    wait_for(lambda: view(root, done).status == "done" and view(root, live).status == "running", timeout=60)
    (root / "runs" / done / "cells" / "0").mkdir(parents=True)
    (root / "runs" / live / "run.log").write_text("SECRET OF THE OTHER RUN\n")
    yield root, done, live
    run_mihd("runs", "kill", live, "--signal", "KILL", "--grace", "1s", root=root)


@pytest.fixture
def one_run(tmp_path):
    root = tmp_path / "ws"
    done = launch_fake(root, "--seconds", 0.1)
    wait_for(lambda: view(root, done).status == "done", timeout=60)
    return root, done


@pytest.mark.parametrize("verb", ["kill", "rm", "show", "logs"])
@pytest.mark.parametrize("ref", ["", " ", "2"])
def test_an_empty_or_short_run_id_acts_on_no_run(one_run, verb, ref):
    """`mihd runs rm "$UNSET"` used to remove the only run (every id starts with ""); now nothing is a pattern."""
    root, done = one_run
    proc = run_mihd("runs", verb, ref, root=root)
    assert_one_line_error(proc, repr(ref))
    assert proc.stdout == ""
    assert (root / "runs" / done / "result.json").exists()
    assert view(root, done).status == "done"


def test_a_path_like_cell_never_reads_another_runs_log(two_runs):
    root, done, live = two_runs
    for ref in (f"{done}/../../{live}", f"{done}/../{done}", f"{done}/0/../../../{live}", f"{done}/-1",
                f"{done}/³", f"{done}/ 0", f"{done}/0x1", f"{done}/{'9' * 30}"):
        proc = run_mihd("runs", "logs", ref, root=root)
        assert_one_line_error(proc, "GRID/N")
        assert "SECRET" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("ref", BAD_REFS)
def test_every_command_that_takes_a_run_id_refuses_a_bad_one_in_one_line(two_runs, tmp_path, ref):
    root, done, live = two_runs
    commands = [("runs", "show", ref), ("runs", "logs", ref), ("runs", "kill", ref), ("runs", "rm", ref),
                ("runs", "rm", live, ref), ("export", ref, "--h5ad", str(tmp_path / "out.h5ad")),
                ("results", "--run", ref)]
    for argv in commands:
        proc = run_mihd(*argv, root=root)
        assert_one_line_error(proc, repr(ref))
        assert "SECRET" not in proc.stdout
    assert not (tmp_path / "out.h5ad").exists()
    assert view(root, live).status == "running" and view(root, done).status == "done"


def test_a_unique_prefix_of_four_or_more_characters_and_a_name_still_name_a_run(two_runs):
    root, done, live = two_runs
    proc = run_mihd("runs", "show", done[:-2], root=root)
    assert proc.returncode == 0 and done in proc.stdout
    assert run_mihd("runs", "show", "second", root=root).stdout.split("\n")[0].split() == ["id", live]
    assert_one_line_error(run_mihd("runs", "show", done[:4], root=root), "ambiguous")


def test_a_run_name_with_a_slash_is_refused_at_launch(tmp_path):
    """A name with `/` could never be told from GRID/N, so it is not given."""
    root = tmp_path / "ws"
    proc = run_mihd("launch", "--name", "a/b", "--", "run", "demo", "--gene", "pca", "--fusion", "gene_only",
                    root=root)
    assert_one_line_error(proc, "--name")
    assert not (root / "runs").exists() or not any((root / "runs").iterdir())


# -- a full disk, a read-only workspace ------------------------------------------------------------------------
RUN = ("run", "demo", "--gene", "pca", "--fusion", "gene_only")
WRITERS = [("launch", "--", *RUN), ("launch", "--", "grid", "demo", "--gene", "pca", "--vision", "texture,resnet50",
                                    "--fusion", "concat,mean", "--random-init"),
           ("launch", "--parallel", "2", "--", "grid", "demo", "--gene", "pca", "--vision", "texture", "--fusion",
            "concat,mean"), RUN]


def files_of(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def assert_no_run_left(root: Path) -> None:
    """No run dir, and nothing `runs ls --all` would not show or `runs rm` could not find."""
    assert not (root / "runs").exists() or not any((root / "runs").iterdir()), files_of(root / "runs")
    listing = run_mihd("runs", "ls", "--all", "--json", root=root)
    assert listing.returncode == 0 and json.loads(listing.stdout) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_launch_and_run_on_a_full_disk_are_one_line_and_leave_no_run_dir(small_disk, demo_h5ad):
    from mount_helpers import fill

    from mihd.data.registry import register
    from mihd.errors import MihdError
    from mihd.runs.launch import launch
    from runs_helpers import FAKE, fake_plan

    root = small_disk / "ws"
    root.mkdir()
    register(root, "demo", demo_h5ad)  # where it lies, so the disk holds only what launching writes
    fill(small_disk, 0)
    for argv in WRITERS:
        proc = run_mihd(*argv, "--root", str(root)) if argv == RUN else run_mihd(argv[0], "--root", str(root),
                                                                                   *argv[1:])
        assert_one_line_error(proc, f"--root {root}", "no space left")
        assert_no_run_left(root)
    with pytest.raises(MihdError, match="no space left") as err:  # the dashboard's launch path
        launch(root, fake_plan(), raw_argv=[FAKE, "{run_dir}"], cached=[True])
    assert "\n" not in str(err.value)
    assert_no_run_left(root)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_slices_add_results_tables_and_export_on_a_full_disk_leave_nothing_half_written(small_disk, demo_h5ad):
    from mount_helpers import fill

    from mihd.errors import MihdError
    from mihd.results import write_tables

    from mihd.data.registry import register

    root = small_disk / "ws"
    root.mkdir()
    register(root, "demo", demo_h5ad)
    done = run_dir_of(*RUN, root=root).name  # a real run, with labels and spots to export
    fill(small_disk, 0)
    before = files_of(root)
    assert_one_line_error(run_mihd("slices", "add", "x", str(demo_h5ad), root=root), f"--root {root}", "no space")
    with pytest.raises(MihdError, match="no space left.*no table was written"):  # the dashboard's `e`
        write_tables(root)
    for out in ("--h5ad", "--png"):
        proc = run_mihd("export", done, out, str(small_disk / f"out.{out[2:]}"), root=root)
        assert_one_line_error(proc, out, "No space left")
    assert [f for f in files_of(root) if f != "results"] == before
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "ws"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_every_writing_command_on_a_read_only_workspace_is_one_line_and_changes_nothing(one_run, tmp_path, mounts,
                                                                                       demo_h5ad):
    from mount_helpers import mount

    from mihd.errors import MihdError
    from mihd.results import write_tables

    root, done = one_run
    ro = tmp_path / "ro"
    ro.mkdir()
    mount("--bind", str(root), str(ro))
    mounts.append(ro)
    mount("-o", "remount,ro,bind", str(ro))
    before = files_of(root)
    for argv in WRITERS:
        proc = run_mihd(*argv, "--root", str(ro)) if argv == RUN else run_mihd(argv[0], "--root", str(ro), *argv[1:])
        assert_one_line_error(proc, f"--root {ro}", "read-only")
    assert_one_line_error(run_mihd("slices", "add", "x", str(demo_h5ad), "--root", str(ro)), "read-only")
    assert_one_line_error(run_mihd("export", done, "--png", str(ro / "x.png"), "--root", str(ro)), "x.png")
    with pytest.raises(MihdError, match="read-only"):
        write_tables(ro)
    assert files_of(root) == before
