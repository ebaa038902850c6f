"""What a researcher types or pipes that used to be refused, ignored or a traceback: the ids the dashboard shows,
`| head`, an empty `--root`, our environment variables set to nonsense, `--slices /dev/zero`, a key name that is
no key in tui_keys.json. Real `mihd` subprocesses and real runs (the protocol-following fake run)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, assert_one_line_error, run_mihd
from mihd.runs.ids import short_id
from mihd.workspace import read_keymap
from runs_helpers import launch_fake, view, wait_for


def test_the_ids_the_dashboard_shows_name_the_run_in_the_cli(tmp_path):
    root = tmp_path / "ws"
    done = launch_fake(root, "--seconds", 0.1)
    wait_for(lambda: view(root, done).status == "done", timeout=60)
    tail = done.rsplit("-", 1)[1]
    for ref in (short_id(done), tail, tail[:4]):  # `175956·cb04` in the runs table, `cb041b` in a path
        proc = run_mihd("runs", "show", ref, root=root)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split("\n")[0].split() == ["id", done]
    assert_one_line_error(run_mihd("runs", "show", "123456·cb04", root=root), "no such run")


def test_runs_ls_into_a_reader_that_left_ends_quietly(tmp_path):
    """`mihd runs ls | head`: the reader is gone before the first line; no BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "mihd", "runs", "ls", "--all", "--root", str(tmp_path / "ws")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and err == "", err


@pytest.mark.parametrize("env, needle", [({"MIHD_THREADS": "abc"}, "MIHD_THREADS"),
                                         ({"MIHD_CACHE_LOCK_TIMEOUT": "abc"}, "MIHD_CACHE_LOCK_TIMEOUT"),
                                         ({"MIHD_CACHE_LOCK_TIMEOUT": "-5"}, "MIHD_CACHE_LOCK_TIMEOUT")])
def test_a_variable_of_ours_set_to_nonsense_is_one_line(tmp_path, env, needle):
    for argv in (("cache", "ls"), ("run", "demo", "--gene", "pca", "--fusion", "gene_only")):
        proc = run_mihd(*argv, root=tmp_path / "ws", env=env)
        assert_one_line_error(proc, needle)
    assert not (tmp_path / "ws" / "runs").exists()


def test_an_empty_root_is_refused_not_the_checkouts_cache(tmp_path):
    """`--root "$UNSET"` or `MIHD_ROOT=` must not run in the checkout's cache/ folder."""
    runs = REPO / "cache" / "runs"
    before = sorted(runs.iterdir()) if runs.is_dir() else []
    argv = ("run", "demo", "--gene", "pca", "--fusion", "gene_only")
    assert_one_line_error(run_mihd(*argv, "--root", "", env={"MIHD_ROOT": str(tmp_path)}), "--root ''")
    assert_one_line_error(run_mihd(*argv, env={"MIHD_ROOT": ""}), "MIHD_ROOT ''")
    assert (sorted(runs.iterdir()) if runs.is_dir() else []) == before


def test_slices_from_an_endless_file_is_one_line(tmp_path):
    proc = run_mihd("grid", "--slices", "/dev/zero", "--gene", "pca", "--fusion", "gene_only",
                    root=tmp_path / "ws", timeout=60)
    assert_one_line_error(proc, "--slices /dev/zero")


def test_a_key_map_value_that_is_no_key_keeps_the_default_key(tmp_path):
    (tmp_path / "tui_keys.json").write_text(json.dumps({"main.kill": "notakey!!", "main.open_run": "ctrl+o",
                                                        "main.filter_runs": "question_mark,f5"}))
    keymap, problems = read_keymap(tmp_path)
    assert keymap == {"main.open_run": "ctrl+o", "main.filter_runs": "question_mark,f5"}
    assert len(problems) == 1 and "main.kill" in problems[0] and "default key is kept" in problems[0]


def test_a_named_run_still_says_its_slice_and_cell(tmp_path):
    root = tmp_path / "ws"
    run_id = launch_fake(root, "--seconds", 0.1, name="sweep 1")
    wait_for(lambda: view(root, run_id).status == "done", timeout=60)
    assert view(root, run_id).label == "sweep 1 (demo pca+texture concat gmm)"
    listed = run_mihd("runs", "ls", "--all", root=root).stdout
    assert "sweep 1 (demo pca+texture concat gmm)" in listed
    assert run_mihd("runs", "show", "sweep 1", root=root).returncode == 0  # the name still names it
