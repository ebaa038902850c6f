"""Single flight: processes that need the same missing embedding compute it once; the others wait, say
for whom, and hit; a waiter whose computer died takes over after the lock's heartbeat stops."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, run_mihd

NEED = """
import os, sys, time, numpy as np
from mihd.cache import CacheKey, EmbeddingCache
root, run, compute_seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
cache = EmbeddingCache(root)
key = CacheKey("s1", "gene", "pca", "-")
found = cache.lookup(key, "fp")
if found.status != "hit":
    found, claim = cache.acquire(key, "fp", run=run, poll=0.1,
                                 on_wait=lambda h: print(f"waiting for {key} computed by run {h.get('run')}", flush=True))
    if claim is not None:
        print("computing", flush=True)
        time.sleep(compute_seconds)
        cache.put(key, np.full((50, 4), float(os.getpid()), dtype=np.float32), [f"B{i}" for i in range(50)], fingerprint="fp")
        claim.release()
        print("computed", flush=True)
        sys.exit(0)
print("hit", int(cache.lookup(key, "fp").embedding.array[0, 0]), flush=True)
"""


def _start(root, run, seconds, timeout=None):
    env = {**os.environ, **({"MIHD_CACHE_LOCK_TIMEOUT": str(timeout)} if timeout else {})}
    return subprocess.Popen([sys.executable, "-c", NEED, str(root), run, str(seconds)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def test_concurrent_misses_compute_once_and_the_others_wait_then_hit(tmp_path):
    procs = [_start(tmp_path, f"run{i}", 2.0) for i in range(8)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all("Traceback" not in err for _, err in outs), [err for _, err in outs]
    computed = [out for out, _ in outs if out.strip().endswith("computed")]
    assert len(computed) == 1, [out for out, _ in outs]
    hits = [out for out, _ in outs if out.strip().splitlines()[-1].startswith("hit")]
    assert len(hits) == 7 and len({h.split()[-1] for h in hits}) == 1  # all got the one computed array
    assert any("waiting for s1/gene/pca/- computed by run run" in out for out in hits)


def test_a_waiter_takes_over_when_the_heartbeat_of_another_hosts_computer_stopped(tmp_path):
    lock = tmp_path / "embeddings" / "locks" / "s1~gene~pca~-.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": "node-elsewhere", "pid": 4242, "create_time": 1.0, "boot_id": "b",
                                "run": "dead", "token": "t"}))  # its heartbeat never moves
    waiter = _start(tmp_path, "heir", 0.1, timeout=1.5)
    out, err = waiter.communicate(timeout=60)
    assert "waiting for s1/gene/pca/- computed by run dead" in out and out.strip().endswith("computed"), out + err


def test_a_slow_but_live_computer_keeps_its_lock(tmp_path):
    slow = _start(tmp_path, "slow", 4.0, timeout=1.0)  # heartbeats every ~0.2 s, far inside the timeout
    assert slow.stdout.readline().strip() == "computing"
    waiter = _start(tmp_path, "patient", 0.1, timeout=1.0)
    out, _ = waiter.communicate(timeout=60)
    slow_out, _ = slow.communicate(timeout=60)
    assert "computed" in slow_out and out.strip().splitlines()[-1].startswith("hit"), out


def test_concurrent_extracts_of_one_encoder_compute_it_once(demo_root):
    procs = [subprocess.Popen([sys.executable, "-m", "mihd", "extract", "demo", "--gene", "pca"], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "MIHD_ROOT": str(demo_root)}) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    statuses = sorted(out.split()[0] for out, _ in outs)
    assert statuses == ["hit", "hit", "miss"], outs
    for out, err in outs:
        if out.startswith("hit") and err:
            assert "waiting for demo/gene/pca/- computed by" in err and "Traceback" not in err


@pytest.mark.parametrize("custom", [False, True])
def test_a_corrupt_entry_is_recomputed_or_a_one_line_error(demo_root, custom):
    from mihd.cache import CacheKey, EmbeddingCache

    name = "pca_copy" if custom else "pca"
    args = ("--gene", "pca", "--cache-name", name) if custom else ("--gene", "pca")
    assert run_mihd("extract", "demo", *args, root=demo_root).returncode == 0
    cache = EmbeddingCache(demo_root)
    blob = cache.slice_dir("demo") / cache.meta(CacheKey("demo", "gene", name, "-"))["blob"]
    with open(blob, "r+b") as fh:  # bytes overwritten in place (NaN), size unchanged
        fh.seek(200)
        fh.write(b"\xff\xff\xc0\x7f" * 16)
    if custom:  # a name that is not an encoder: nothing to recompute it with
        proc = run_mihd("run", "demo", "--gene", name, "--fusion", "gene_only", root=demo_root)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert "checksum mismatch" in proc.stderr and f"'{name}'" in proc.stderr
    else:
        proc = run_mihd("extract", "demo", *args, root=demo_root)
        assert proc.returncode == 0 and proc.stdout.startswith("corrupt"), proc.stdout + proc.stderr
        assert "checksum mismatch" in proc.stderr and "recomputing" in proc.stderr
        assert run_mihd("extract", "demo", *args, root=demo_root).stdout.startswith("hit")


def test_an_sftp_style_eperm_for_a_held_lock_reads_as_held_and_a_real_refusal_as_one_line(tmp_path, monkeypatch):
    """sshfs answers an exclusive create of a lock another host made a moment ago with EPERM: that is
    contention (wait), not an error; a folder that cannot be written is still a one-line refusal."""
    import errno

    from mihd.cache import CacheKey, EmbeddingCache
    from mihd.errors import MihdError

    cache, key = EmbeddingCache(tmp_path), CacheKey("s1", "gene", "pca", "-")
    lock, real_open = cache.lock_path(key), os.open

    def sftp_open(path, flags, *args):
        if str(path) == str(lock) and flags & os.O_EXCL:
            if not lock.exists():  # the other host's create lands between our lookup and our create
                lock.parent.mkdir(parents=True, exist_ok=True)
                lock.write_text('{"host": "b", "pid": 1, "run": "other", "token": "t"}')
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", sftp_open)
    assert cache.claim(key, "mine") is None
    assert cache.holder(key)["run"] == "other"

    lock.unlink()
    monkeypatch.setattr(os, "open", lambda path, flags, *a: (_ for _ in ()).throw(
        PermissionError(errno.EACCES, "Permission denied")) if str(path) == str(lock) else real_open(path, flags, *a))
    monkeypatch.setattr("mihd.cache_flight.is_writable", lambda _path: False)
    with pytest.raises(MihdError, match="cannot lock s1/gene/pca/-: Permission denied"):
        cache.claim(key, "mine")
