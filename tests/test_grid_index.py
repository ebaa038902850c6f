"""A finished study's rollup lives in the host-local index: listings and the dashboard's refresh read no run file
once it is indexed, say the same as a fresh index does, and still see a cell's files changed later."""

import json
import shutil
import sys
from pathlib import Path

import pytest

from mihd.runs.status import RunWatcher, list_runs

from conftest import run_mihd, with_demo
from runs_helpers import drop_index
from tui_helpers import no_gpu

_opened: list[str] = []
_watch: list[str] = []  # the folder whose opens are recorded (empty: none)


def _audit(event: str, args) -> None:
    if event == "open" and _watch and isinstance(args[0], (str, bytes)) and str(args[0]).startswith(_watch[0]):
        _opened.append(str(args[0]))


sys.addaudithook(_audit)


class opened_under:
    """The files opened under `folder` (any way: open, os.open, Path.read_text) while inside."""

    def __init__(self, folder: Path):
        self.folder = str(folder)

    def __enter__(self) -> list[str]:
        _opened.clear()
        _watch[:] = [self.folder]
        return _opened

    def __exit__(self, *_):
        _watch.clear()


@pytest.fixture(scope="module")
def study_template(tmp_path_factory, demo_h5ad) -> Path:
    """A workspace holding one real finished study: 2 slices x 2 fusions, run in the foreground."""
    from mihd.data.registry import register

    root = with_demo(tmp_path_factory.mktemp("study") / "ws", demo_h5ad)
    register(root, "demo2", root / "demo" / "demo.h5ad")
    proc = run_mihd("grid", "demo,demo2", "--gene", "pca", "--vision", "texture", "--fusion", "concat,gene_only",
                    "--cluster", "kmeans", root=root)
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture
def study(study_template, tmp_path) -> tuple[Path, Path]:
    """(a copy of that workspace of this test's own, its study's run dir)."""
    root = tmp_path / "ws"
    shutil.copytree(study_template, root, symlinks=True)
    grid = next((root / "runs").iterdir())
    assert (grid / "fanout.json").is_file()
    return root, grid


def listed(root: Path) -> list[dict]:
    """`runs ls --all` as its JSON says it, without the figures that follow the clock."""
    return [{k: v for k, v in view.to_dict().items() if k not in ("queued_s",)} for view in list_runs(root, all=True)]


def test_a_refresh_with_nothing_changed_reads_no_run_file(study):
    from mihd.grid import GridSpec
    from mihd_tui.poller import Poller

    root, grid = study
    first = listed(root)  # indexes the study: its parts are read once here
    with opened_under(root / "runs") as opened:
        again = listed(root)
    assert opened == [] and again == first
    poller = Poller(root, gpu=no_gpu())
    try:
        poller.snapshot(GridSpec("demo"))
        with opened_under(root / "runs") as opened:
            snap = poller.snapshot(GridSpec("demo"))
        assert opened == []
        (shown,) = [v for v in snap.views if v.id == grid.name]
        assert shown.status == "done" and len(shown.cells) == 4 and all(c.status == "done" for c in shown.cells)
    finally:
        poller.close()


def test_the_rollup_kept_in_the_index_says_what_the_files_say(study):
    root, _ = study
    listed(root)
    kept = listed(root)  # the study's cells read back from the index
    drop_index(root)
    assert listed(root) == kept  # a new host, reading every file


def test_a_cell_changed_after_its_study_ended_is_seen(study):
    root, grid = study
    watcher = RunWatcher(root, sweep=200, gpu=no_gpu())  # as the dashboard keeps one
    try:
        (before,) = watcher.refresh(all=True)
        assert before.status == "done"
        (grid / "cells" / "1" / "result.json").write_text("{ torn")  # written in place: its folder does not move
        (after,) = watcher.refresh(all=True)
        assert after.status == "failed" and [c.status for c in after.cells] == ["done", "corrupt", "done", "done"]
        assert "cell 1" in after.error and "result.json" in after.error
    finally:
        watcher.close()
    shown = json.loads(run_mihd("runs", "show", grid.name, "--json", root=root).stdout)
    assert shown["status"] == "failed" and shown["cells"][1]["status"] == "corrupt"


def test_a_cell_removed_after_its_study_ended_shows_at_the_next_listing(study):
    root, grid = study
    assert [c.status for c in list_runs(root, all=True)[0].cells] == ["done"] * 4
    shutil.rmtree(grid / "cells" / "2")
    (view,) = list_runs(root, all=True)
    assert view.status == "failed" and view.cells[2].status == "failed"
    assert "cells/2: its run dir is gone" in view.cells[2].error


def test_an_index_built_anew_takes_an_ended_studys_cells_from_its_parts_file(study):
    root, grid = study
    first = listed(root)  # the first description of the ended study leaves parts.json beside it
    assert (grid / "parts.json").is_file()
    drop_index(root)  # a new host, a wiped temporary folder, a schema upgrade
    with opened_under(grid / "cells") as opened:
        again = listed(root)
    assert opened == [] and again == first


def test_a_parts_file_never_outlives_a_change_to_a_cell(study):
    root, grid = study
    listed(root)
    (grid / "cells" / "1" / "result.json").write_text("{ torn")  # in place, after parts.json was written
    drop_index(root)
    (view,) = list_runs(root, all=True)
    assert [c.status for c in view.cells] == ["done", "corrupt", "done", "done"] and view.status == "failed"


def test_a_garbled_parts_file_is_read_past(study):
    root, grid = study
    first = listed(root)
    for garbage in ("{ torn", "[1, 2]", json.dumps({"cells/0": ["x", {"status": "done"}, []]})):
        (grid / "parts.json").write_text(garbage)
        drop_index(root)
        assert listed(root) == first


def test_a_moved_workspace_names_its_study_cells_where_they_are_now(study, tmp_path):
    from mihd.runs.registry import Registry

    root, grid = study
    listed(root)
    moved = tmp_path / "moved"
    root.rename(moved)  # same files, same inodes: the parts file still holds
    drop_index(moved)
    (view,) = list_runs(moved, all=True)
    assert view.status == "done" and all(c.run_dir.startswith(str(moved)) for c in view.cells)
    reg = Registry(moved)
    try:
        parts = json.loads(reg.conn.execute("SELECT parts FROM grids").fetchone()[0])
    finally:
        reg.close()
    assert parts and all(p[1]["run_dir"] == str((moved / "runs" / grid.name / name).resolve())
                         for name, p in parts.items())


def test_the_json_listing_kept_for_ended_runs_follows_their_files(study):
    root, grid = study

    def json_listing() -> list[dict]:
        proc = run_mihd("runs", "ls", "--json", "--all", root=root)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    first = json_listing()
    assert json_listing() == first  # the second listing reads the texts kept by the first
    assert [{k: v for k, v in r.items() if k != "queued_s"} for r in first] == listed(root)
    (grid / "exit.json").write_text("{ torn")  # in place: the grid's own file
    (damaged,) = json_listing()
    assert damaged["status"] == "corrupt" and "exit.json" in damaged["error"]
