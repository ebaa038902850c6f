"""The embedding cache: raw arrays back bit for bit, stale and corrupt entries are never returned,
concurrent, replacing and killed writers cannot make a reader fail or leave a readable partial entry."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import assert_one_line_error, run_mihd

from mihd.cache import CacheKey, EmbeddingCache, inventory_stamp, read_entries
from mihd.errors import MihdError
from mihd.workspace import host_index_dir

KEY = CacheKey("s1", "vision", "uni2", "standard")
SPOTS = [f"B{i}" for i in range(100)]


def _put(root, key=KEY, value=1.0, n=1000, fingerprint="fp1"):
    cache = EmbeddingCache(root)
    array = np.full((n, 16), value, dtype=np.float32)
    cache.put(key, array, [f"B{i}" for i in range(n)], encoder=key.name, config={}, fingerprint=fingerprint)
    cache.close()
    return array


def _blob(root, key=KEY):
    cache = EmbeddingCache(root)
    return cache.slice_dir(key.slice) / cache.meta(key)["blob"]


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
    # the array is a plain .npy file: readable without mihd
    assert np.array_equal(np.load(_blob(tmp_path)), array)
    assert not list(tmp_path.rglob("*.sqlite")) and not list(tmp_path.rglob("*.db"))  # no SQLite on the workspace


def test_changed_slice_is_stale_not_a_hit(tmp_path):
    _put(tmp_path)
    found = EmbeddingCache(tmp_path).lookup(KEY, "fp-of-a-changed-slice")
    assert found.status == "stale" and found.embedding is None


@pytest.mark.parametrize("damage", ["truncate", "delete_blob", "garble_meta", "flip_bits", "nan_bytes", "spots"])
def test_corrupt_entries_are_reported_at_the_hit_never_returned(tmp_path, damage):
    _put(tmp_path)
    cache = EmbeddingCache(tmp_path)
    blob = _blob(tmp_path)
    if damage == "garble_meta":
        cache.meta_path(KEY).write_text("{not json")
    elif damage == "truncate":
        os.truncate(blob, 1000)
    elif damage == "delete_blob":
        blob.unlink()
    elif damage == "spots":
        next((tmp_path / "embeddings" / "spots").iterdir()).write_text('["X"]')
    else:  # overwritten in place, same size: only the checksum can tell
        with open(blob, "r+b") as fh:
            fh.seek(500)
            fh.write(b"\x7f" if damage == "flip_bits" else np.full(64, np.nan, dtype=np.float32).tobytes())
    found = cache.lookup(KEY, "fp1")
    assert found.status == "corrupt" and found.embedding is None and str(KEY) in found.reason
    checked, problems, _ = cache.verify()
    assert checked == 1 and len(problems) == 1


def test_verify_reports_corrupt_entries_and_exits_1(tmp_path):
    _put(tmp_path)
    with open(_blob(tmp_path), "r+b") as fh:
        fh.seek(400)
        fh.write(b"\x7f")
    proc = run_mihd("cache", "verify", root=tmp_path)
    assert proc.returncode == 1 and "CORRUPT" in proc.stdout and "checksum" in proc.stdout and "1 corrupt" in proc.stdout


def test_bad_cache_names_are_refused(tmp_path):
    for bad in ("a/b", "..", "x..y", "", "-lead", "sp ace", "é", "a~b"):
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
    checked, problems, _ = cache.verify()
    assert checked == 3 and problems == []
    for name in ("enc0", "enc1", "enc2"):
        array = cache.lookup(CacheKey("s1", "vision", name, "standard"), "fp1").embedding.array
        assert len(np.unique(array)) == 1  # one writer's array, never a mix


REPLACE_AND_READ = """
import sys, numpy as np
from mihd.cache import CacheKey, EmbeddingCache
root, role, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
import time
cache = EmbeddingCache(root)
keys = [CacheKey("s1", "vision", f"k{i}", "standard") for i in range(6)]
spots = [f"B{j}" for j in range(500)]
end, n, bad = time.time() + seconds, 0, []
while time.time() < end:
    for i, key in enumerate(keys):
        if role == "writer":
            cache.put(key, np.full((500, 64), float(n), dtype=np.float32), spots, fingerprint="fp")
        else:
            found = cache.lookup(key, "fp")
            if found.status != "hit" or len(np.unique(found.embedding.array)) != 1:
                bad.append(f"{key}: {found.status} {found.reason}")
        n += 1
print(n, len(bad), bad[:3], flush=True)
"""


def test_a_replace_never_makes_a_reader_fail(tmp_path):
    for i in range(6):
        _put(tmp_path, key=CacheKey("s1", "vision", f"k{i}", "standard"), n=500, fingerprint="fp")
    procs = [subprocess.Popen([sys.executable, "-c", REPLACE_AND_READ, str(tmp_path), role, "4"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for role in ("writer", "writer", "reader", "reader")]
    outputs = [p.communicate(timeout=60) for p in procs]
    for (out, err), role in zip(outputs, ("writer", "writer", "reader", "reader")):
        assert "Traceback" not in err, err
        done, failures = out.split()[:2]
        assert int(done) > 6 and failures == "0", (role, out)
    assert EmbeddingCache(tmp_path).verify()[:2] == (6, [])


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


def test_sigkill_during_writes_leaves_no_partial_entry_and_gc_finds_every_partial_file(tmp_path):
    rng = np.random.default_rng(0)
    key = CacheKey("s1", "vision", "big", "standard")
    for attempt in range(20):
        proc = subprocess.Popen([sys.executable, "-c", KILL_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip()  # at least one full write happened
        time.sleep(float(rng.uniform(0.0, 0.3)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        cache = EmbeddingCache(tmp_path)
        found = cache.lookup(key, "fp")
        assert found.status == "hit" and len(np.unique(found.embedding.array)) == 1  # a whole array of one write
        cache.close()
    cache = EmbeddingCache(tmp_path)
    referenced = cache.meta(key)["blob"]
    leftovers = {p for p in (tmp_path / "embeddings" / "entries" / "s1").iterdir()
                 if p.name != referenced and not p.name.endswith("big~standard.json")}
    assert leftovers, "20 kills mid-write left no file at all"
    found = {str(tmp_path / "embeddings" / rel) for rel, _ in cache.orphans(grace=0)}
    assert {str(p) for p in leftovers} <= found, "gc misses files no entry refers to"
    assert cache.orphans(grace=3600) == []  # all of them are recent: a write in flight is spared
    count, freed, _ = cache.collect_orphans(grace=0)
    assert count == len(found) and freed > 0 and cache.orphans(grace=0) == []
    assert cache.verify()[:2] == (1, []) and cache.lookup(key, "fp").status == "hit"


def test_ls_reads_metadata_only_and_sees_new_changed_and_removed_entries(tmp_path):
    _put(tmp_path)
    _blob(tmp_path).unlink()  # arrays gone: listing must not notice
    proc = run_mihd("cache", "ls", "--json", root=tmp_path)
    assert proc.returncode == 0 and '"uni2"' in proc.stdout and '"shape"' in proc.stdout
    before = inventory_stamp(tmp_path)
    _put(tmp_path, key=CacheKey("s2", "gene", "pca", "-"), n=10)   # another process adds, replaces, removes
    _put(tmp_path, value=2.0, n=20)
    assert inventory_stamp(tmp_path) != before
    rows = {(m["slice"], m["name"]): m for m in read_entries(tmp_path)}
    assert set(rows) == {("s1", "uni2"), ("s2", "pca")} and rows[("s1", "uni2")]["shape"] == [20, 16]
    EmbeddingCache(tmp_path).remove(CacheKey("s2", "gene", "pca", "-"))
    assert [m["name"] for m in read_entries(tmp_path)] == ["uni2"]
    import shutil

    shutil.rmtree(host_index_dir(tmp_path))  # the index is host-local and rebuilt from the files
    assert [m["shape"] for m in read_entries(tmp_path)] == [[20, 16]]


def test_cache_rm_removes_only_the_matching_entries(tmp_path):
    _put(tmp_path)
    _put(tmp_path, key=CacheKey("s1", "gene", "pca", "-"))
    proc = run_mihd("cache", "rm", "s1", "--modality", "vision", root=tmp_path)
    assert proc.returncode == 0 and "removed 1 entry" in proc.stdout
    remaining = EmbeddingCache(tmp_path).entries()
    assert [(m["modality"], m["name"]) for m in remaining] == [("gene", "pca")]
    assert not list((tmp_path / "embeddings" / "entries" / "s1").glob("vision*"))  # its array went too
    assert_one_line_error(run_mihd("cache", "rm", "nosuch", root=tmp_path), "'nosuch'", "no cache entry matches")
    assert_one_line_error(run_mihd("cache", "rm", "s1", "--name", "uni", root=tmp_path), "--name uni")


def test_cli_rejects_bad_cache_names(tmp_path):
    assert_one_line_error(run_mihd("extract", "demo", "--gene", "pca", "--cache-name", "../evil", root=tmp_path),
                          "--cache-name '../evil'")
    assert_one_line_error(run_mihd("extract", "demo", "--gene", "pca", "--cache-name", "", root=tmp_path),
                          "--cache-name ''")


def test_gc_removes_files_no_entry_refers_to_and_spares_writes_in_flight(tmp_path):
    array = _put(tmp_path)
    folder = tmp_path / "embeddings" / "entries" / "s1"
    hour_ago = time.time() - 3600
    old_blob = folder / "vision~uni2~standard~18c0000000-aa.npy"       # a killed writer's renamed blob
    old_partial = folder / ".vision~uni2~standard~18c0000001-bb.npy.x1.tmp"  # killed before its rename
    old_meta_tmp = folder / ".vision~uni2~standard.json.x2.tmp"
    in_flight = folder / ".vision~uni~standard~18c0000002-cc.npy.x3.tmp"   # being written now
    for path, size in ((old_blob, 400_000), (old_partial, 1_000), (old_meta_tmp, 2_000), (in_flight, 400_000)):
        path.write_bytes(b"x" * size)
    for path in (old_blob, old_partial, old_meta_tmp):
        os.utime(path, (hour_ago, hour_ago))
    verify = run_mihd("cache", "verify", root=tmp_path)
    assert verify.returncode == 0 and "3 files (0.4 MB) belong to no entry" in verify.stdout, verify.stdout
    dry = run_mihd("cache", "gc", "--dry-run", root=tmp_path)
    assert "would remove 3 files, 0.4 MB" in dry.stdout
    gc = run_mihd("cache", "gc", root=tmp_path)
    assert gc.returncode == 0 and "removed 3 files, 0.4 MB" in gc.stdout, gc.stdout + gc.stderr
    cache = EmbeddingCache(tmp_path)
    assert in_flight.exists() and cache.orphans() == []
    np.testing.assert_array_equal(cache.lookup(KEY, "fp1").embedding.array, array)
    assert_one_line_error(run_mihd("cache", "gc", "--older-than", "soon", root=tmp_path), "--older-than 'soon'")


def test_a_replaced_array_stays_readable_until_gc_grace_has_passed(tmp_path):
    _put(tmp_path, value=1.0)
    old = _blob(tmp_path)
    os.utime(old, (time.time() - 3600,) * 2)  # written long ago
    _put(tmp_path, value=2.0)
    cache = EmbeddingCache(tmp_path)
    assert old.exists() and cache.orphans() == []  # the switch refreshed it: a reader may still hold the old .json
    assert [rel for rel, _ in cache.orphans(grace=0)] == [str(old.relative_to(tmp_path / "embeddings"))]


def test_ls_marks_random_init_and_bf16_entries(tmp_path):
    cache = EmbeddingCache(tmp_path)
    for name, config in (("uni2", {"precision": "bf16"}), ("uni", {"random_init": True}), ("hipt", {})):
        cache.put(CacheKey("s1", "vision", name, "standard"), np.zeros((3, 4)), ["a", "b", "c"], config=config,
                  random_init=config.get("random_init", False))
    cache.close()
    lines = run_mihd("cache", "ls", root=tmp_path).stdout.splitlines()
    assert any("uni2 (bf16)" in line for line in lines) and any("uni (random init)" in line for line in lines)
    assert any(" hipt " in f"{line} " and "(" not in line for line in lines)


def test_old_single_store_workspaces_are_migrated_without_losing_an_entry(tmp_path):
    import zlib

    import diskcache

    store = diskcache.Cache(str(tmp_path / "embeddings"))
    arrays = {}
    for name, n in (("uni2", 3639), ("pca", 5)):  # one blob in a file, one inline in SQLite
        modality, variant = ("vision", "standard") if name == "uni2" else ("gene", "-")
        arrays[name] = np.random.default_rng(n).normal(size=(n, 8)).astype(np.float32)
        spots = json.dumps([f"B{i}" for i in range(n)])
        store.set(f"spots|h{n}", spots)
        store.set(f"data|s1|{modality}|{name}|{variant}|t{n}", arrays[name].tobytes())
        store.set(f"meta|s1|{modality}|{name}|{variant}", json.dumps({
            "slice": "s1", "modality": modality, "name": name, "variant": variant, "shape": [n, 8], "dtype": "float32",
            "nbytes": arrays[name].nbytes, "crc32": zlib.crc32(arrays[name].tobytes()), "data_key": f"data|s1|{modality}|{name}|{variant}|t{n}",
            "spots_hash": f"h{n}", "created": 1000.0, "version": "0.0.9", "transforms": [], "encoder": name,
            "fingerprint": "fp", "config": {"batch_size": 4}, "compute_seconds": 12.0}))
    store.set("meta|s1|vision|broken|standard", "{not json")
    store.close()
    proc = run_mihd("cache", "ls", root=tmp_path)
    assert proc.returncode == 0 and "uni2" in proc.stdout and "pca" in proc.stdout, proc.stdout + proc.stderr
    assert "moved 2 entries" in proc.stderr and "broken" in proc.stderr
    assert not (tmp_path / "embeddings" / "cache.db").exists()
    cache = EmbeddingCache(tmp_path)
    for name, variant in (("uni2", "standard"), ("pca", "-")):
        found = cache.lookup(CacheKey("s1", "vision" if name == "uni2" else "gene", name, variant), "fp")
        assert found.status == "hit" and np.array_equal(found.embedding.array, arrays[name])
        assert found.embedding.meta["created"] == 1000.0 and found.embedding.meta["config"] == {"batch_size": 4}
    assert cache.verify()[:2] == (2, []) and cache.orphans(grace=0) == []


def test_a_listing_right_after_each_change_sees_it(tmp_path):
    cache = EmbeddingCache(tmp_path)
    for i in range(12):
        cache.put(CacheKey("s1", "gene", f"g{i}", "-"), np.zeros((3, 2)), ["a", "b", "c"], fingerprint="fp")
        assert len(read_entries(tmp_path)) == i + 1
        if i % 4 == 0:
            time.sleep(1.2)  # the folder settles: the next listings take the no-stat path until a change
            assert len(read_entries(tmp_path)) == i + 1 and len(read_entries(tmp_path)) == i + 1
    cache.remove(CacheKey("s1", "gene", "g0", "-"))
    assert len(read_entries(tmp_path)) == 11
