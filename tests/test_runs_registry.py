"""The registry as a host-local, rebuildable index: a workspace of the previous release (tests/fixtures/
workspace_prev: run dirs and the `mihd.sqlite` its code made), schema versions, a second host, a read-only
workspace, an index folder that cannot be written."""

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mihd.runs.registry import INDEX_FILE, LEGACY_FILE, SCHEMA_VERSION
from mihd.runs.status import RunWatcher
from mihd.workspace import host_index_dir

from conftest import assert_one_line_error, run_mihd
from runs_helpers import launch_fake, view, wait_for

PREV = Path(__file__).parent / "fixtures" / "workspace_prev"


@pytest.fixture(autouse=True)
def index_dir(tmp_path_factory, monkeypatch):
    """This test's own host-local index folder (subprocesses inherit it)."""
    path = tmp_path_factory.mktemp("host-index")
    monkeypatch.setenv("MIHD_INDEX_DIR", str(path))
    return path


@pytest.fixture
def prev(tmp_path) -> Path:
    """A copy of the previous release's workspace, in a place it was not made in."""
    root = tmp_path / "moved-workspace"
    shutil.copytree(PREV, root)
    return root


def old_rows(root: Path) -> dict[str, tuple]:
    """What the previous release's registry said: {id: (status, best ARI, label)}."""
    conn = sqlite3.connect(f"file:{root / LEGACY_FILE}?mode=ro", uri=True)
    aris = dict(conn.execute("SELECT run_id, MAX(ari) FROM cells GROUP BY run_id"))
    out = {i: (s, aris.get(i), label) for i, s, label in conn.execute("SELECT id, status, label FROM runs")}
    conn.close()
    return out


def test_a_previous_release_workspace_lists_as_its_registry_did_without_opening_it(prev):
    before = hashlib.sha256((prev / LEGACY_FILE).read_bytes()).hexdigest()
    expected = old_rows(prev)
    assert sorted(s for s, _, _ in expected.values()) == ["done", "done", "failed", "killed", "lost"]
    proc = run_mihd("runs", "ls", "--all", "--json", root=prev)
    assert proc.returncode == 0, proc.stderr
    seen = {r["id"]: (r["status"], r["ari"], r["label"]) for r in json.loads(proc.stdout)}
    assert seen.keys() == expected.keys()
    for run_id, (status, ari, label) in expected.items():  # a named run's label now also says its cell
        assert seen[run_id][:2] == (status, ari) and seen[run_id][2].startswith(label), (seen[run_id], label)
    assert proc.stderr.count("\n") == 1 and f"{LEGACY_FILE}: an earlier release's registry" in proc.stderr
    again = run_mihd("runs", "ls", "--all", root=prev)
    assert again.returncode == 0 and again.stderr == ""  # said once, when this host's index was made
    assert hashlib.sha256((prev / LEGACY_FILE).read_bytes()).hexdigest() == before
    lost = next(i for i, (s, _, _) in expected.items() if s == "lost")
    assert '"kind": "lost"' in (prev / "runs" / lost / "events.jsonl").read_text()  # the decision is in the run dir
    show = run_mihd("runs", "show", lost, root=prev)
    assert show.returncode == 0 and "status  lost" in show.stdout and "cannot be told here" in show.stdout


def test_an_older_index_is_rebuilt_and_a_newer_one_refused(prev):
    index = host_index_dir(prev) / INDEX_FILE
    index.parent.mkdir(parents=True)
    shutil.copy(prev / LEGACY_FILE, index)  # an index of the old layout (schema 0) where this release keeps its own
    watcher = RunWatcher(prev)
    try:
        seen = {v.id: v.status for v in watcher.refresh(all=True)}
        assert seen == {i: s for i, (s, _, _) in old_rows(prev).items()}
        assert watcher.notes == [f"registry {index}: schema 0 -> {SCHEMA_VERSION}, rebuilt from the run dirs"]
        assert watcher.registry.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        watcher.close()
    conn = sqlite3.connect(index)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    for command in (["runs", "ls"], ["runs", "reindex"]):
        assert_one_line_error(run_mihd(*command, root=prev), f"{index}: registry schema {SCHEMA_VERSION + 1} "
                                                            "is newer than this mihd knows")


def test_the_index_is_host_local_and_a_second_host_sees_a_new_run_within_one_refresh(tmp_path, index_dir):
    root = tmp_path / "ws"
    other_host = RunWatcher(root)  # another host: its own index, here kept in another folder
    other_host.registry.path = index_dir / "other-host" / INDEX_FILE
    try:
        assert other_host.refresh() == []
        run_id = launch_fake(root, "--seconds", 0.3, "--ari", 0.44)
        assert [v.id for v in other_host.refresh()] == [run_id]
        done = wait_for(lambda: (v := other_host.refresh()[0]).status == "done" and v)
        assert done.ari == pytest.approx(0.44)
        assert list(root.rglob("*.sqlite*")) == []  # nothing SQLite in the shared workspace
        shutil.rmtree(root / "runs" / run_id)
        assert other_host.refresh(all=True) == []  # a run dir removed is forgotten
    finally:
        other_host.close()


def _read_only(root: Path, *args: str) -> subprocess.CompletedProcess:
    """`mihd ARGS` with `root` mounted read-only (a private mount namespace: nothing outlives the call)."""
    script = (f'mount --bind "{root}" "{root}" && mount -o remount,bind,ro "{root}" && '
              f'exec "$0" -m mihd "$@" --root "{root}"')
    return subprocess.run(["unshare", "-m", "sh", "-c", script, sys.executable, *args], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[1], timeout=120)


def test_a_read_only_workspace_lists_and_shows(prev):
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f'mount --bind "{prev}" "{prev}" && '
                            f'mount -o remount,bind,ro "{prev}" && ! touch "{prev}/x"'], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("no private read-only bind mounts here (needs root and mount namespaces)")
    expected = old_rows(prev)
    ls = _read_only(prev, "runs", "ls", "--all", "--json")
    assert ls.returncode == 0, ls.stderr
    assert {r["id"]: r["status"] for r in json.loads(ls.stdout)} == {i: s for i, (s, _, _) in expected.items()}
    done = next(i for i, (s, _, _) in expected.items() if s == "done")
    show = _read_only(prev, "runs", "show", done)
    assert show.returncode == 0 and "status  done" in show.stdout, show.stderr


def test_an_unwritable_index_folder_falls_back_to_memory(prev, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("MIHD_INDEX_DIR", str(blocker))
    proc = run_mihd("runs", "ls", "--all", "--json", root=prev)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) == 5 and "indexing the run dirs in memory" in proc.stderr
    assert view(prev, next(iter(old_rows(prev)))).status == "done"
