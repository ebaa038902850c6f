"""Faults of the embedding cache: damaged files of every kind read as a miss that heals (never a traceback,
never a hit with other data), locks of dead holders are taken over at once, a full disk while making the
demo slice is one line and leaves nothing, and the dashboard's first start resumes a build cut short."""

from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, assert_one_line_error, run_mihd

from mihd import cache_files
from mihd.cache import CacheKey, EmbeddingCache
from mihd.cli.cache_cmd import inventory_rows
from mihd.inventory import in_flight, inventory

KEY = CacheKey("s1", "gene", "pca", "-")
SPOTS = [f"B{i}" for i in range(50)]
ARRAY = np.arange(200, dtype=np.float32).reshape(50, 4)


def _flips(raw: bytes):
    """Every single-bit flip of `raw`: (bit index, flipped bytes)."""
    for bit in range(len(raw) * 8):
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 1 << (bit % 8)
        yield bit, bytes(flipped)


def _replace(path, raw: bytes) -> None:
    """Put `raw` in place as a rename, so the listing index sees a changed file (as it would a rewrite)."""
    tmp = path.with_name(f".{path.name}.fuzz")
    tmp.write_bytes(raw)
    os.replace(tmp, path)


@pytest.fixture
def no_index(monkeypatch):
    """Listings read every file (the mode of a host whose index cannot be opened): thousands of listings
    without an index write each."""
    monkeypatch.setenv("MIHD_INDEX_DIR", os.devnull)
    # a damaged file is read again 3 times before it is believed (cache_files.read_file): the same reads, no
    # pauses between them (70 ms each, thousands of flips: minutes of sleeping)
    monkeypatch.setattr(cache_files, "RETRY_PAUSE", 0.0)


def _stored(tmp_path) -> tuple[EmbeddingCache, dict]:
    cache = EmbeddingCache(tmp_path)
    return cache, cache.put(KEY, ARRAY, SPOTS, fingerprint="fp", encoder="pca", compute_seconds=1.5)


def _outcome(cache: EmbeddingCache) -> str:
    """What a reader makes of the entry now: its lookup status, checked never to be a hit with other data,
    and the listing and inventory rows made without an exception."""
    cache._spots.clear()  # as a fresh process would: no spot list remembered from an earlier read
    found = cache.lookup(KEY, "fp")
    if found.status == "hit":
        assert np.array_equal(found.embedding.array, ARRAY) and list(found.embedding.obs_names) == SPOTS
    else:
        assert found.reason, found
    entries = cache.entries()
    inventory(entries)
    inventory_rows(entries, 0.0)
    return found.status


def test_every_single_bit_flip_of_an_npy_header_is_a_miss_that_heals(tmp_path, no_index):
    cache, meta = _stored(tmp_path)
    blob = cache.slice_dir("s1") / meta["blob"]
    raw = blob.read_bytes()
    header_len = len(raw) - ARRAY.nbytes
    outcomes = {}
    for bit, flipped in _flips(raw[:header_len]):
        blob.write_bytes(flipped + raw[header_len:])
        status = _outcome(cache)
        outcomes[status] = outcomes.get(status, 0) + 1
        if status != "hit":
            checked, corrupt, _ = cache.verify()
            assert checked == 1 and len(corrupt) == 1, (bit, corrupt)
        blob.write_bytes(raw)
    # a flip numpy reads as the same header (e.g. a space that stays a space to its parser) is a true hit
    assert set(outcomes) <= {"corrupt", "hit"} and outcomes.get("corrupt", 0) > 0.9 * header_len * 8, outcomes
    # healing: a corrupt entry is recomputed over (a put replaces it) and then hits
    blob.write_bytes(bytes([raw[0] ^ 1]) + raw[1:])
    assert _outcome(cache) == "corrupt"
    cache.put(KEY, ARRAY, SPOTS, fingerprint="fp")
    assert _outcome(cache) == "hit" and cache.verify()[:2] == (1, [])


def test_every_single_bit_flip_of_entry_metadata_is_never_a_wrong_hit_nor_a_traceback(tmp_path, no_index):
    cache, _ = _stored(tmp_path)
    path = cache.meta_path(KEY)
    raw = path.read_bytes()
    outcomes = {}
    for bit, flipped in _flips(raw):
        _replace(path, flipped)
        status = _outcome(cache)
        outcomes[status] = outcomes.get(status, 0) + 1
        checked, corrupt, unreadable = cache.verify()
        assert checked == 1 and not unreadable and (status == "corrupt") == bool(corrupt), (bit, status, corrupt)
    _replace(path, raw)
    assert set(outcomes) <= {"hit", "corrupt", "stale", "miss"}, outcomes
    assert outcomes["corrupt"] > outcomes.get("hit", 0), outcomes
    assert _outcome(cache) == "hit"


def test_every_single_bit_flip_of_a_spot_list_is_corrupt(tmp_path, no_index):
    cache, meta = _stored(tmp_path)
    path = cache.dir / "spots" / f"{meta['spots_hash']}.json"
    raw = path.read_bytes()
    statuses = set()
    for _, flipped in _flips(raw):
        path.write_bytes(flipped)
        statuses.add(_outcome(cache))
    assert statuses == {"corrupt"}


def test_damaged_lock_files_never_raise_and_a_damaged_lock_is_taken_over(tmp_path, no_index):
    cache = EmbeddingCache(tmp_path)
    claim = cache.claim(KEY, "r1")
    raw = claim.path.read_bytes()
    claim.release()
    lock = cache.lock_path(KEY)
    for _, flipped in _flips(raw):
        lock.write_bytes(flipped)
        holder = cache.holder(KEY)
        assert holder is not None and isinstance(holder.get("mtime"), int)
        [row] = in_flight(tmp_path)
        assert row.name == "pca"
    lock.write_bytes(b"\x00garbage{")  # no owner can be read: taken over once it stays so a few seconds
    found, claim = cache.acquire(KEY, "fp", poll=0.2)
    assert found is None and claim is not None
    claim.release()
    assert not lock.exists()


HOLD = """
import sys, time
from mihd import cache_files
from mihd.cache import CacheKey, EmbeddingCache
found, claim = EmbeddingCache(sys.argv[1]).acquire(CacheKey("demo", "gene", "pca", "-"), "fp", run="quitter")
print("computing", flush=True)
time.sleep(600)
"""


def test_a_lock_whose_holder_died_on_this_host_is_taken_over_at_once(demo_root):
    # as when the dashboard quits during its first start: the extract under way gets TERM while it holds the lock
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(demo_root)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    assert holder.stdout.readline().strip() == "computing"
    [live] = in_flight(demo_root)
    assert not live.dead and not live.stalled
    holder.send_signal(signal.SIGTERM)
    holder.wait()
    lock = EmbeddingCache(demo_root).lock_path(CacheKey("demo", "gene", "pca", "-"))
    assert lock.exists()
    [dead] = in_flight(demo_root)  # the cache tab says so now, not `2 %` live and `stalled` minutes later
    assert dead.dead and dead.stalled
    # a lock timeout of an hour: only taking over at once lets this finish
    proc = run_mihd("extract", "demo", "--gene", "pca", root=demo_root, env={"MIHD_CACHE_LOCK_TIMEOUT": "3600"},
                    timeout=300)
    assert proc.returncode == 0 and proc.stdout.startswith("miss"), proc.stdout + proc.stderr
    assert "waiting for" not in proc.stderr and not lock.exists()


def test_a_holder_on_another_host_is_waited_for_and_the_wait_says_how_long_and_why(demo_root):
    lock = EmbeddingCache(demo_root).lock_path(CacheKey("demo", "gene", "pca", "-"))
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": "node-elsewhere", "pid": 7, "create_time": 1.0, "boot_id": "x",
                                "run": "far", "token": "t"}))
    proc = run_mihd("extract", "demo", "--gene", "pca", root=demo_root, env={"MIHD_CACHE_LOCK_TIMEOUT": "2"})
    assert proc.returncode == 0 and proc.stdout.startswith("miss"), proc.stdout + proc.stderr
    [line] = [ln for ln in proc.stderr.splitlines() if "waiting for" in ln]
    assert "run far on node-elsewhere (pid 7)" in line and "host node-elsewhere" in line
    assert "heartbeat has stopped for 2 s" in line, line
    took = re.search(r"computed in ([\d.]+) s \(([\d.]+) s in all\)", proc.stdout)  # the encoder's time, not the wait
    assert took and float(took[1]) + 1 < float(took[2]) and float(took[2]) >= 2, proc.stdout


def test_damaged_headers_through_the_cli_are_recomputed_and_verify_checks_every_entry(cached_root):
    cache = EmbeddingCache(cached_root)
    metas = {m["name"]: m for m in cache.entries()}
    for name in ("pca", "texture"):  # a flip numpy's header parser fails on with tokenize.TokenError
        blob = cache.slice_dir("demo") / metas[name]["blob"]
        raw = bytearray(blob.read_bytes())
        raw[raw.index(b"'descr'")] ^= 0x04  # the quote opening 'descr' becomes '#': the rest is a comment
        blob.write_bytes(bytes(raw))
    verify = run_mihd("cache", "verify", root=cached_root)
    assert verify.returncode == 1 and "Traceback" not in verify.stderr, verify.stderr
    assert verify.stdout.count("CORRUPT") == 2 and "header is damaged" in verify.stdout, verify.stdout
    assert "2 entries checked, 2 corrupt" in verify.stdout
    for flag, name in (("--gene", "pca"), ("--vision", "texture")):
        proc = run_mihd("extract", "demo", flag, name, root=cached_root)
        assert proc.returncode == 0 and proc.stdout.startswith("corrupt"), proc.stdout + proc.stderr
        assert "header is damaged; recomputing" in proc.stderr
    assert run_mihd("cache", "verify", root=cached_root).returncode == 0


def test_a_full_disk_while_making_the_demo_slice_is_one_line_and_leaves_nothing(small_disk):
    for _ in range(2):  # every try: the same line, nothing left
        proc = run_mihd("extract", "demo", "--gene", "pca", root=small_disk)
        assert_one_line_error(proc, f"--root {small_disk}", "no space left to make the demo slice", "needed", "free")
    assert [p for p in small_disk.rglob("*") if p.is_file()] == [] and not (small_disk / "demo").exists()


def test_a_killed_demo_write_leaves_a_temporary_that_gc_finds(workspace):
    leftover = workspace / "demo" / ".demo.h5ad.0123abcd.tmp"
    leftover.parent.mkdir()
    leftover.write_bytes(b"\0" * 1000)
    os.utime(leftover, (0, 0))
    dry = run_mihd("cache", "gc", "--dry-run", root=workspace)
    assert dry.returncode == 0 and "would remove 1 files" in dry.stdout, dry.stdout + dry.stderr
    assert run_mihd("cache", "gc", root=workspace).returncode == 0 and not leftover.exists()


def test_first_start_steps_resume_an_interrupted_build_and_leave_a_used_workspace_alone(workspace, demo_h5ad):
    from conftest import with_demo

    from mihd.first_start import STEPS, steps_left

    assert steps_left(workspace) == list(STEPS)
    with_demo(workspace, demo_h5ad)  # the slice was made, then the dashboard quit
    assert [s.what for s in steps_left(workspace)] == [s.what for s in STEPS[1:]]
    cache = EmbeddingCache(workspace)
    cache.put(CacheKey("demo", "gene", "hvg", "-"), ARRAY, SPOTS, fingerprint="fp")
    assert [s.what for s in steps_left(workspace)] == [STEPS[2].what]
    cache.put(CacheKey("demo", "vision", "texture", "standard"), ARRAY, SPOTS, fingerprint="fp")
    assert steps_left(workspace) == []
    cache.remove(CacheKey("demo", "vision", "texture", "standard"))
    cache.put(CacheKey("demo", "gene", "mlp", "-"), ARRAY, SPOTS, fingerprint="fp")
    assert steps_left(workspace) == []  # the researcher's own work: no first start
