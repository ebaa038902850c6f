"""The embedding cache: raw arrays back bit for bit, stale and corrupt entries are never returned,
concurrent and killed writers cannot leave a readable partial entry."""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import assert_one_line_error, run_mihd

from mihd.cache import CacheKey, EmbeddingCache
from mihd.errors import MihdError

KEY = CacheKey("s1", "vision", "uni2", "standard")
SPOTS = [f"B{i}" for i in range(100)]


def _put(root, key=KEY, value=1.0, n=1000, fingerprint="fp1"):
    cache = EmbeddingCache(root)
    array = np.full((n, 16), value, dtype=np.float32)
    cache.put(key, array, [f"B{i}" for i in range(n)], encoder=key.name, config={}, fingerprint=fingerprint)
    cache.close()
    return array


def test_round_trip_is_exact_and_carries_provenance(tmp_path):
    array = np.random.default_rng(0).normal(size=(100, 16)).astype(np.float32)
    cache = EmbeddingCache(tmp_path)
    cache.put(KEY, array, SPOTS, encoder="uni2", config={"batch_size": 8}, fingerprint="fp1", compute_seconds=3.5)
    found = cache.lookup(KEY, "fp1")
    assert found.status == "hit"
    assert np.array_equal(found.embedding.array, array)
    assert list(found.embedding.obs_names) == SPOTS
    meta = found.embedding.meta
    assert meta["shape"] == [100, 16] and meta["config"] == {"batch_size": 8} and meta["transforms"] == []
    assert meta["compute_seconds"] == 3.5 and meta["version"]


def test_changed_slice_is_stale_not_a_hit(tmp_path):
    _put(tmp_path)
    found = EmbeddingCache(tmp_path).lookup(KEY, "fp-of-a-changed-slice")
    assert found.status == "stale" and found.embedding is None


@pytest.mark.parametrize("damage", ["truncate", "delete_blob", "garble_meta"])
def test_corrupt_entries_are_reported_never_returned(tmp_path, damage):
    _put(tmp_path)
    cache = EmbeddingCache(tmp_path)
    meta = cache.meta(KEY)
    store = cache._store
    if damage == "garble_meta":
        store.set(KEY.meta_key, "{not json")
    else:
        path = store.get(meta["data_key"], read=True).name
        if damage == "truncate":
            with open(path, "r+b") as fh:
                fh.truncate(100)
        else:
            store.delete(meta["data_key"])
    found = cache.lookup(KEY, "fp1")
    assert found.status == "corrupt" and found.embedding is None and str(KEY) in found.reason
    checked, problems = cache.verify()
    assert checked == 1 and len(problems) == 1


def test_verify_catches_flipped_bits(tmp_path):
    _put(tmp_path)
    cache = EmbeddingCache(tmp_path)
    path = cache._store.get(cache.meta(KEY)["data_key"], read=True).name
    with open(path, "r+b") as fh:
        fh.seek(40)
        fh.write(b"\x7f")
    proc = run_mihd("cache", "verify", root=tmp_path)
    assert proc.returncode == 1 and "CORRUPT" in proc.stdout and "1 corrupt" in proc.stdout


def test_bad_cache_names_are_refused(tmp_path):
    for bad in ("a/b", "..", "x..y", "", "-lead", "sp ace", "é"):
        with pytest.raises(MihdError, match="invalid name"):
            CacheKey("s1", "vision", bad, "standard")


def _writer(root, value):
    key = CacheKey("s1", "vision", f"enc{int(value) % 3}", "standard")
    for _ in range(5):
        _put(root, key=key, value=value)


def test_concurrent_writers_leave_only_whole_entries(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), float(v))) for v in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = EmbeddingCache(tmp_path)
    checked, problems = cache.verify()
    assert checked == 3 and problems == []
    for name in ("enc0", "enc1", "enc2"):
        array = cache.lookup(CacheKey("s1", "vision", name, "standard"), "fp1").embedding.array
        assert len(np.unique(array)) == 1  # one writer's array, never a mix


KILL_WRITER = """
import sys, numpy as np
from mihd.cache import CacheKey, EmbeddingCache
cache = EmbeddingCache(sys.argv[1])
key = CacheKey("s1", "vision", "big", "standard")
i = 0
while True:
    i += 1
    cache.put(key, np.full((3639, 1536), float(i), dtype=np.float32), [f"B{j}" for j in range(3639)], fingerprint="fp")
    print(i, flush=True)
"""


def test_sigkill_during_writes_leaves_no_readable_partial_entry(tmp_path):
    rng = np.random.default_rng(0)
    for attempt in range(5):
        proc = subprocess.Popen([sys.executable, "-c", KILL_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip()  # at least one full write happened
        time.sleep(float(rng.uniform(0.0, 0.3)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        cache = EmbeddingCache(tmp_path)
        found = cache.lookup(CacheKey("s1", "vision", "big", "standard"), "fp")
        assert found.status == "hit"
        values = np.unique(found.embedding.array)
        assert len(values) == 1  # a whole array of one write
        assert cache.verify() == (1, [])
        cache.close()
    cache = EmbeddingCache(tmp_path)  # the killed writes' blobs go, the entry stays whole
    cache.collect_orphans(grace=0)
    assert cache.orphans(grace=0) == [] and cache.verify() == (1, [])
    assert cache.lookup(CacheKey("s1", "vision", "big", "standard"), "fp").status == "hit"


def test_ls_reads_metadata_only(tmp_path):
    _put(tmp_path)
    cache = EmbeddingCache(tmp_path)
    cache._store.delete(cache.meta(KEY)["data_key"])  # arrays gone: listing must not notice
    proc = run_mihd("cache", "ls", "--json", root=tmp_path)
    assert proc.returncode == 0 and '"uni2"' in proc.stdout and '"shape"' in proc.stdout


def test_cache_rm_removes_only_the_matching_entries(tmp_path):
    _put(tmp_path)
    _put(tmp_path, key=CacheKey("s1", "gene", "pca", "-"))
    proc = run_mihd("cache", "rm", "s1", "--modality", "vision", root=tmp_path)
    assert proc.returncode == 0 and "removed 1 entry" in proc.stdout
    remaining = EmbeddingCache(tmp_path).entries()
    assert [(m["modality"], m["name"]) for m in remaining] == [("gene", "pca")]


def test_cli_rejects_bad_cache_name(tmp_path):
    assert_one_line_error(run_mihd("extract", "demo", "--gene", "pca", "--cache-name", "../evil", root=tmp_path),
                          "--cache-name '../evil'")


def test_gc_removes_blobs_no_entry_refers_to_and_spares_writes_in_flight(tmp_path):
    array = _put(tmp_path)
    cache = EmbeddingCache(tmp_path)
    hour_ago = f"{int((time.time() - 3600) * 1000):x}"
    old_big = f"data|s1|vision|uni2|standard|{hour_ago}-aa"       # a killed writer's blob (a file on disk)
    old_small = f"data|s1|vision|uni2|standard|{hour_ago}-bb"     # small enough to live in SQLite
    legacy = "data|s1|vision|uni2|standard|0123456789abcdef"       # written before keys carried a time
    in_flight = f"data|s1|vision|uni|standard|{int(time.time() * 1000):x}-cc"  # its meta is about to follow
    for key, size in ((old_big, 400_000), (old_small, 1_000), (legacy, 2_000), (in_flight, 400_000)):
        cache._store.set(key, b"x" * size)
    cache.close()
    verify = run_mihd("cache", "verify", root=tmp_path)
    assert verify.returncode == 0 and "3 blobs (0.4 MB) belong to no entry" in verify.stdout, verify.stdout
    dry = run_mihd("cache", "gc", "--dry-run", root=tmp_path)
    assert "would remove 3 blobs, 0.4 MB" in dry.stdout
    gc = run_mihd("cache", "gc", root=tmp_path)
    assert gc.returncode == 0 and "removed 3 blobs, 0.4 MB" in gc.stdout, gc.stdout + gc.stderr
    cache = EmbeddingCache(tmp_path)
    assert in_flight in set(cache._store.iterkeys()) and cache.orphans() == []
    np.testing.assert_array_equal(cache.lookup(KEY, "fp1").embedding.array, array)
    assert_one_line_error(run_mihd("cache", "gc", "--older-than", "soon", root=tmp_path), "--older-than 'soon'")


def test_ls_marks_random_init_and_bf16_entries(tmp_path):
    cache = EmbeddingCache(tmp_path)
    for name, config in (("uni2", {"precision": "bf16"}), ("uni", {"random_init": True}), ("hipt", {})):
        cache.put(CacheKey("s1", "vision", name, "standard"), np.zeros((3, 4)), ["a", "b", "c"], config=config,
                  random_init=config.get("random_init", False))
    cache.close()
    lines = run_mihd("cache", "ls", root=tmp_path).stdout.splitlines()
    assert any("uni2 (bf16)" in line for line in lines) and any("uni (random init)" in line for line in lines)
    assert any(" hipt " in f"{line} " and "(" not in line for line in lines)
