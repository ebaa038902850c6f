"""An action on one run (`mihd runs show`, kill, rm) reads that run's row and files, not the whole workspace:
on a workspace of many finished runs it costs the same as on an empty one, and still sees its own run's
files change."""

from __future__ import annotations

import json
import os
import shutil
import time

from runs_helpers import launch_fake, view, wait_for

from mihd.runs.launch import new_run_id
from mihd.runs.remove import remove_run
from mihd.runs.status import RunWatcher

MANY = 300


def _workspace(root) -> list[str]:
    """MANY finished runs (one real fake run, copied under new ids), all indexed; their ids."""
    first = launch_fake(root, "--seconds", 0.2, "--ari", 0.42)
    wait_for(lambda: view(root, first).status == "done", 30)
    for i in range(MANY - 1):
        shutil.copytree(root / "runs" / first, root / "runs" / new_run_id(time.time() - 86400 - i))
    ids = sorted(os.listdir(root / "runs"))
    assert len([v for v in RunWatcher(root).refresh(all=True) if v.status == "done"]) == MANY
    return ids


def _stats_during(fn, monkeypatch) -> int:
    calls = [0]
    real = os.stat

    def counting(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(os, "stat", counting)
    try:
        fn()
    finally:
        monkeypatch.setattr(os, "stat", real)
    return calls[0]


def test_rm_and_show_read_their_own_run_only(tmp_path, monkeypatch):
    ids = _workspace(tmp_path)
    watcher = RunWatcher(tmp_path)
    try:
        watcher.registry.sync()  # opened and current: what follows is the one-run action alone
        stats = _stats_during(lambda: remove_run(tmp_path, ids[0], watcher=watcher), monkeypatch)
        assert stats < 60, f"rm of one run stat'ed {stats} files in a workspace of {MANY} runs"
        assert not (tmp_path / "runs" / ids[0]).exists()
        assert {v.id for v in watcher.refresh(all=True)} == set(ids[1:])

        # its own file changed since it was indexed: the view says so (the others are not read for it)
        result = tmp_path / "runs" / ids[1] / "result.json"
        data = json.loads(result.read_text())
        data["cells"][0]["ari"] = 0.77
        result.write_text(json.dumps(data))
        stats = _stats_during(lambda: watcher.view(ids[1]), monkeypatch)
        assert watcher.view(ids[1]).ari == 0.77
        assert stats < 60, f"the view of one run stat'ed {stats} files in a workspace of {MANY} runs"
    finally:
        watcher.close()
