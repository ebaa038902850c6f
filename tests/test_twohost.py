"""Two hosts over one workspace: scripts/twohost.sh mounts one folder twice through sshfs (own caches, no
shared locks), and each mount is used as another node of a cluster would use NFS. Concurrent extracts,
replaces and reads, single flight, killed writers, runs and the dashboard's poller, across the two."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO
from test_cache import KILL_WRITER, REPLACE_AND_READ
from test_cache_flight import NEED

pytestmark = pytest.mark.twohost
STATE = Path(os.environ.get("MIHD_TWOHOST_DIR", "/tmp/mihd-twohost"))


@pytest.fixture(scope="module")
def hosts():
    """(A, B): the two mount points; started here (and stopped after) when scripts/test.sh did not."""
    started = False
    if not (STATE / "mounts").exists() or not all(os.path.ismount(p) for p in (STATE / "a", STATE / "b")):
        proc = subprocess.run(["bash", str(REPO / "scripts" / "twohost.sh"), "start"], capture_output=True,
                              text=True, timeout=600)
        if proc.returncode != 0:
            pytest.skip(f"two-host mounts cannot be made here: {proc.stderr.strip() or proc.stdout.strip()}")
        started = True
    a, b = STATE / "a", STATE / "b"
    yield a, b
    if started:
        subprocess.run(["bash", str(REPO / "scripts" / "twohost.sh"), "stop"], capture_output=True, timeout=60)


@pytest.fixture
def ws(hosts, tmp_path, demo_h5ad):
    """A fresh workspace seen through both mounts, with the demo slice registered; each host has its own
    host-local index folder."""
    import shutil
    import uuid

    from mihd.data.registry import register

    a, b = hosts
    name = f"ws-{uuid.uuid4().hex[:8]}"
    (a / name / "demo").mkdir(parents=True)
    shutil.copy(demo_h5ad, a / name / "demo" / "demo.h5ad")
    register(a / name, "demo", a / name / "demo" / "demo.h5ad")
    yield _Host(a / name, tmp_path / "index-a"), _Host(b / name, tmp_path / "index-b")
    shutil.rmtree(a / name, ignore_errors=True)


class _Host:
    def __init__(self, root: Path, index: Path):
        self.root, self.env = root, {**os.environ, "MIHD_ROOT": str(root), "MIHD_INDEX_DIR": str(index)}

    def popen(self, *argv: str) -> subprocess.Popen:
        return subprocess.Popen(list(argv), cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def mihd(self, *args: str) -> subprocess.Popen:
        return self.popen(sys.executable, "-m", "mihd", *args)

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mihd", *args], cwd=REPO, env=self.env, capture_output=True,
                              text=True, timeout=timeout)


def _finish(procs) -> list[tuple[str, str]]:
    outs = [p.communicate(timeout=600) for p in procs]
    for (out, err), p in zip(outs, procs):
        assert "Traceback" not in err, err
    return outs


def test_concurrent_extracts_through_both_hosts_compute_each_key_once(ws):
    a, b = ws
    procs = [h.mihd("extract", "demo", *args) for args in (("--gene", "pca"), ("--vision", "texture")) for h in (a, b, a, b)]
    outs = _finish(procs)
    assert all(p.returncode == 0 for p in procs), outs
    for which in ("demo/gene/pca/-", "demo/vision/texture/standard"):
        statuses = sorted(out.split()[0] for out, _ in outs if which in out)
        assert statuses == ["hit", "hit", "hit", "miss"], outs
    for host in (a, b):
        verify = host.run("cache", "verify")
        assert verify.returncode == 0 and "2 entries checked, 0 corrupt" in verify.stdout, verify.stdout
        listing = json.loads(host.run("cache", "ls", "--json").stdout)
        assert sorted(m["name"] for m in listing) == ["pca", "texture"]


def test_replacing_and_reading_through_both_hosts_never_fails(ws):
    import numpy as np

    from mihd.cache import CacheKey, EmbeddingCache

    a, b = ws
    seed = EmbeddingCache(a.root)
    for i in range(6):
        seed.put(CacheKey("s1", "vision", f"k{i}", "standard"), np.zeros((500, 64), np.float32),
                 [f"B{j}" for j in range(500)], fingerprint="fp")
    procs = [h.popen(sys.executable, "-c", REPLACE_AND_READ, str(h.root), role, "8")
             for h, role in ((a, "writer"), (b, "writer"), (a, "reader"), (b, "reader"))]
    outs = _finish(procs)
    figures = []
    for (out, _), role in zip(outs, ("writer A", "writer B", "reader A", "reader B")):
        done, failures = out.split()[:2]
        figures.append(f"{role}: {done} ops")
        if role.startswith("reader"):
            assert failures == "0", (role, out)
    print("two-host replace/read stress (8 s):", ", ".join(figures))
    for host in (a, b):
        assert "6 entries checked, 0 corrupt" in host.run("cache", "verify").stdout


def test_single_flight_holds_across_hosts(ws):
    a, b = ws
    procs = [h.popen(sys.executable, "-c", NEED, str(h.root), f"run-{tag}{i}", "2")
             for i in range(3) for h, tag in ((a, "a"), (b, "b"))]
    outs = _finish(procs)
    computed = [out for out, _ in outs if out.strip().endswith("computed")]
    assert len(computed) == 1, outs
    assert sum(out.strip().splitlines()[-1].startswith("hit") for out, _ in outs) == 5
    assert any("waiting for s1/gene/pca/- computed by run run-" in out for out, _ in outs)


def test_killed_writers_on_one_host_leave_files_gc_on_the_other_finds(ws):
    from mihd.cache import CacheKey, EmbeddingCache

    a, b = ws
    for _ in range(4):
        proc = a.popen(sys.executable, "-c", KILL_WRITER, str(a.root))
        assert proc.stdout.readline().strip()
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    cache_b = EmbeddingCache(b.root)
    assert cache_b.lookup(CacheKey("s1", "vision", "big", "standard"), "fp").status == "hit"
    entries = b.root / "embeddings" / "entries" / "s1"
    referenced = cache_b.meta(CacheKey("s1", "vision", "big", "standard"))["blob"]
    leftovers = {str(p) for p in entries.iterdir() if p.name not in (referenced, "vision~big~standard.json")}
    found = {str(b.root / "embeddings" / rel) for rel, _ in cache_b.orphans(grace=0)}
    assert leftovers and leftovers <= found
    time.sleep(1.1)
    gc = b.run("cache", "gc", "--older-than", "1s")
    assert gc.returncode == 0 and gc.stdout.startswith("removed"), gc.stdout + gc.stderr
    assert "1 entries checked, 0 corrupt" in a.run("cache", "verify").stdout


def test_the_other_hosts_dashboard_poller_sees_a_new_entry_within_one_refresh(ws, monkeypatch):
    from mihd.grid import GridSpec
    from mihd_tui.poller import Poller

    a, b = ws
    monkeypatch.setenv("MIHD_INDEX_DIR", b.env["MIHD_INDEX_DIR"])
    poller = Poller(b.root)
    try:
        assert poller.snapshot(GridSpec("demo")).entries == []
        assert a.run("extract", "demo", "--gene", "pca").returncode == 0
        time.sleep(1.5)  # one dashboard refresh (the mounts cache names for up to 1 s)
        assert [m["name"] for m in poller.snapshot(GridSpec("demo")).entries] == ["pca"]
    finally:
        poller.close()


def test_runs_launched_through_one_host_are_listed_and_killed_through_the_other(ws):
    a, b = ws
    code = ("import sys; sys.path.insert(0, 'tests'); from runs_helpers import launch_fake; "
            "print(launch_fake(sys.argv[1], '--seconds', 120))")
    launched = subprocess.run([sys.executable, "-c", code, str(a.root)], cwd=REPO, env=a.env, capture_output=True,
                              text=True, timeout=120)
    assert launched.returncode == 0, launched.stderr
    run_id = launched.stdout.strip().splitlines()[-1]
    deadline = time.monotonic() + 20
    while True:
        listing = b.run("runs", "ls", "--json")
        assert listing.returncode == 0 and "Traceback" not in listing.stderr, listing.stderr
        rows = {r["id"]: r for r in json.loads(listing.stdout)}
        if rows.get(run_id, {}).get("status") == "running" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert rows.get(run_id, {}).get("status") == "running", rows
    killed = b.run("runs", "kill", run_id, "--grace", "2s")
    assert killed.returncode == 0 and "Traceback" not in killed.stderr, killed.stdout + killed.stderr
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = {r["id"]: r["status"] for r in json.loads(a.run("runs", "ls", "--json", "--all").stdout)}.get(run_id)
        if status == "killed":
            break
        time.sleep(0.5)
    assert status == "killed"
