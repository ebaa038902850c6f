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
@pytest.mark.parametrize("free", [0, 16 << 10])  # 16 kB: room to make a run dir, none to end it saying why
def test_launch_and_run_on_a_full_disk_are_one_line_and_leave_no_run_dir(small_disk, demo_h5ad, free):
    from mount_helpers import fill

    from mihd.data.registry import register
    from mihd.errors import MihdError
    from mihd.runs.launch import launch
    from runs_helpers import FAKE, fake_plan

    root = small_disk / "ws"
    root.mkdir()
    register(root, "demo", demo_h5ad)  # where it lies, so the disk holds only what launching writes
    fill(small_disk, free)
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


# -- out-of-range numbers ------------------------------------------------------------------------------------
GRID = ("grid", "demo", "--gene", "pca", "--vision", "texture", "--fusion", "concat,mean")
NUMERIC = [  # (argv with {} for the value, values refused) across run, grid, launch, refine, extract and runs
    (RUN + ("--seed", "{}"), ["99999999999999999999", "4294967296", "-1", "nan", "inf", "1e400", "", " "]),
    (RUN + ("--seeds", "{}"), ["99999999999999999999", "0", "-1", "nan", "inf", "", "0,99999999999999999999",
                               "0,-1", "0,4294967296"]),
    (RUN + ("--n-clusters", "{}"), ["99999999999999999999", "0", "1", "-1", "nan", "inf", "101"]),
    (GRID + ("--n-clusters", "{}"), ["99999999999999999999", "0", "-3"]),
    (("refine", "scan", "demo", "--vision", "texture", "--seed", "{}"), ["99999999999999999999", "-1", "nan"]),
    (("refine", "scan", "demo", "--vision", "texture", "--n-clusters", "{}"), ["99999999999999999999", "0", "-1"]),
    (("launch", "--expect", "{}", "--", *RUN), ["99999999999999999999", "0", "-1", "nan", "inf", "", " ", "400d"]),
    (("launch", "--parallel", "{}", "--", *GRID), ["99999999999999999999", "0", "-1", "nan", "inf", ""]),
    (("launch", "--backend", "slurm", "--time", "{}", "--", *RUN), ["99999999999999999999", "0", "-1", "nan",
                                                                     "inf", "0:00:00", "9999-00", ""]),
    (("launch", "--backend", "slurm", "--cpus", "{}", "--", *RUN), ["99999999999999999999", "0", "-1", "nan"]),
    (("launch", "--backend", "slurm", "--max-parallel", "{}", "--", *GRID), ["99999999999999999999", "0", "-1"]),
    (("launch", "--backend", "slurm", "--extract-cpus", "{}", "--", *GRID), ["99999999999999999999", "0"]),
    (("launch", "--", *RUN, "--seeds", "{}"), ["99999999999999999999", "0,-1"]),
    (("extract", "demo", "--vision", "texture", "--device", "{}"), ["99999999999999999999", "", "gpu"]),
    (("runs", "ls", "--overrun-factor", "{}"), ["0", "-1", "nan", "inf", ""]),
    (("runs", "kill", "x", "--grace", "{}"), ["99999999999999999999", "0", "-1", "nan", "inf", ""]),
    (("cache", "gc", "--older-than", "{}"), ["99999999999999999999", "-1", "nan", "inf", ""]),
]


@pytest.mark.parametrize("argv,values", NUMERIC, ids=[f"{a[0]} {a[a.index('{}') - 1]}" for a, _ in NUMERIC])
def test_every_out_of_range_number_is_one_line_before_anything_is_made(workspace, argv, values):
    for value in values:
        proc = run_mihd(*(value if a == "{}" else a for a in argv), root=workspace)
        assert proc.returncode == 2, (value, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, (value, proc.stderr)
        assert proc.stdout == ""
        assert not (workspace / "runs").exists() or not any((workspace / "runs").iterdir()), value


NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}


def test_device_cuda_without_a_gpu_is_refused_at_launch_only_for_methods_that_use_a_device(cached_root):
    for argv in [("launch", "--", *RUN[:-1], "attention", "--vision", "texture", "--device", "cuda"),
                 ("launch", "--", *GRID[:-1], "concat,staig_fusion", "--device", "cuda"),
                 ("launch", "--", "run", "demo", "--gene", "pca", "--vision", "uni", "--random-init",
                  "--fusion", "concat", "--device", "cuda"),
                 ("launch", "--backend", "slurm", "--", *RUN[:-1], "attention", "--vision", "texture",
                  "--device", "cuda")]:
        proc = run_mihd(*argv, root=cached_root, env=NO_GPU)
        assert_one_line_error(proc, "--device cuda", "--fusion" if "uni" not in argv else "--vision uni")
        assert not (cached_root / "runs").exists() or not any((cached_root / "runs").iterdir())
    proc = run_mihd(*RUN[:-1], "staig_fusion", "--device", "cuda", root=cached_root, env=NO_GPU)
    assert_one_line_error(proc, "--device cuda")
    assert "load" not in proc.stderr  # refused before the slice loads
    proc = run_mihd("run", "demo", "--gene", "pca", "--vision", "texture", "--fusion", "concat", "--device", "cuda",
                    root=cached_root, env=NO_GPU)  # concat uses no device: cuda is no reason to fail
    assert proc.returncode == 0, proc.stderr
    proc = run_mihd("extract", "demo", "--vision", "texture", "--device", "cuda", root=cached_root, env=NO_GPU)
    assert proc.returncode == 0 and proc.stdout.startswith("hit"), proc.stderr  # weight-free: no device
    proc = run_mihd("extract", "demo", "--vision", "uni", "--random-init", "--device", "cuda", root=cached_root,
                    env=NO_GPU)
    assert_one_line_error(proc, "--device cuda")


# -- config files: one warning line, the rest used ---------------------------------------------------------------
def test_a_bad_cache_from_json_is_one_warning_and_the_command_goes_on(cached_root, tmp_path):
    from mihd.cache import cache_from_config

    other = tmp_path / "shared"
    other.mkdir()
    for content, said in [(json.dumps([str(other), "/no/such/folder", 5, ""]), ["/no/such/folder", "entry 2: 5",
                                                                                "entry 3: ''"]),
                          ('{"a": 1}', ["expected a JSON list"]), ("[1,", ["not valid JSON"])]:
        (cached_root / "cache_from.json").write_text(content)
        proc = run_mihd("extract", "demo", "--gene", "pca", root=cached_root)
        assert proc.returncode == 0 and proc.stdout.startswith("hit"), proc.stderr
        warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("mihd: warning:")]
        assert len(warnings) == len(said) and all("cache_from.json" in w for w in warnings), proc.stderr
        for needle, line in zip(said, warnings):
            assert needle in line
    (cached_root / "cache_from.json").write_text(json.dumps([str(other), "/no/such/folder"]))
    assert cache_from_config(cached_root) == [other]


def test_slices_json_entries_of_the_wrong_shape_are_said_not_hidden(tmp_path, demo_h5ad):
    root = tmp_path / "ws"
    root.mkdir()
    (root / "slices.json").write_text(json.dumps({"mine": {"path": str(demo_h5ad)}, "lost": {"pth": "/x"}, "num": 5,
                                                  "odd": {"path": "/x", "truth_col": 3}}))
    proc = run_mihd("slices", "ls", root=root)
    assert proc.returncode == 0 and "mine" in proc.stdout
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("mihd: warning:")]
    assert [w.split("slice ")[1].split(":")[0] for w in warnings] == ["'lost'", "'num'", "'odd'"], proc.stderr
    assert json.loads((root / "slices.json").read_text())["lost"] == {"pth": "/x"}  # never written over


def test_tui_keys_json_with_a_value_that_is_no_key_keeps_the_default_and_says_so(tmp_path):
    from mihd.workspace import config_problems, read_keymap

    root = tmp_path / "ws"
    root.mkdir()
    (root / "tui_keys.json").write_text(json.dumps({"quit": 5, "main.kill": "K", "help": "", "main.tab_runs": "a b"}))
    keymap, problems = read_keymap(root)
    assert keymap == {"main.kill": "K"}
    assert [p.split(": ")[1] for p in problems] == ["quit", "help", "main.tab_runs"]
    assert all(len(p.splitlines()) == 1 and "tui_keys.json" in p for p in problems)
    (root / "tui_keys.json").write_text("[1, 2]")
    assert read_keymap(root) == ({}, [config_problems(root)[0]])


async def test_the_dashboard_shows_a_config_warning_and_quit_stays_on_q(tmp_path):
    from tui_helpers import app_for

    root = tmp_path / "ws"
    root.mkdir()
    (root / "tui_keys.json").write_text(json.dumps({"quit": 5}))
    (root / "cache_from.json").write_text('"/shared"')
    app = app_for(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.5)
        said = [n.message for n in app._notifications]
        assert any("tui_keys.json: quit: 5" in m for m in said), said
        assert any("cache_from.json" in m for m in said), said
        await pilot.press("5")
        await pilot.pause(0.3)
        assert app.is_running
        await pilot.press("q")
        await pilot.pause(0.5)
        assert not app.is_running
