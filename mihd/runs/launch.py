"""Launching a run: write its run dir and spec, hand it to a backend, index it, return its id at once.

The launched command is `python -m mihd <run|grid args> --run-dir RUN_DIR --root ROOT`, run by the
supervisor, so it writes events.jsonl and result.json into its own run dir and outlives the launcher.
"""

from __future__ import annotations

import getpass
import os
import secrets
import socket
import sys
import time
from pathlib import Path

from ..errors import MihdError
from ..jsonio import write_json_atomic
from ..rundir import SPEC
from ..workspace import resolve_root, runs_dir
from .backends import get_backend
from .cells import cells_from_args
from .durations import parse_duration
from .registry import HANDLE, Registry
from .supervise import PROC, proc_create_time


def new_run_id(now: float | None = None) -> str:
    """`20250101-093012-345-a1b2c3`: sorts by creation time (ms), unique by its random tail."""
    now = time.time() if now is None else now
    secs, ms = divmod(int(round(now * 1000)), 1000)
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(secs)) + f"-{ms:03d}-{secrets.token_hex(3)}"


def _make_run_dir(root: Path) -> tuple[str, Path]:
    base = runs_dir(root)
    base.mkdir(parents=True, exist_ok=True)
    while True:
        run_id = new_run_id()
        try:
            (base / run_id).mkdir()
            return run_id, base / run_id
        except FileExistsError:
            continue


def _check_mihd_args(argv: list[str]) -> None:
    if not argv or argv[0] not in ("run", "grid"):
        raise MihdError("mihd launch: expected `run ...` or `grid ...` after the launch options, "
                        "e.g. mihd launch --expect 5m -- run demo --gene pca --fusion concat")
    for tok in argv:
        if tok.split("=")[0] in ("--run-dir", "--root"):
            raise MihdError(f"mihd launch: {tok.split('=')[0]} is set by launch; give --root before the command")


def _mark_cached(root: Path, cells: list[dict]) -> None:
    """Whether each cell's embeddings are cached now (part of the signature the ETA history uses)."""
    if not (root / "embeddings").is_dir():
        for c in cells:
            c["cached"] = False if c.get("slice") and c.get("gene") else None
        return
    try:
        from ..cache import GENE_VARIANT, CacheKey, EmbeddingCache
        cache = EmbeddingCache(root)
    except Exception:
        return
    try:
        for c in cells:
            if not (c.get("slice") and c.get("gene")):
                continue
            keys = [CacheKey(c["slice"], "gene", c["gene"], GENE_VARIANT)]
            if c.get("vision"):
                keys.append(CacheKey(c["slice"], "vision", c["vision"], c.get("variant") or "standard"))
            c["cached"] = all(cache.meta(k) is not None for k in keys)
    except Exception:
        pass  # an unusual name: leave "cached" unknown rather than fail the launch
    finally:
        cache.close()


def launch(root, argv: list[str], backend: str = "local", expect=None, name: str | None = None,
           options: dict | None = None, *, raw: bool = False, cells: list[dict] | None = None) -> str:
    """Start `mihd <argv>` (run/grid arguments) as a detached run; return its id.

    `expect`: seconds or a duration string (`5m`). `raw=True` runs `argv` as the whole command line
    (tests, tools), with `{run_dir}` and `{root}` substituted; `cells` then says what it computes.
    """
    root = resolve_root(root)
    if raw:
        if not argv:
            raise MihdError("launch: empty command")
    else:
        _check_mihd_args(argv)
    if isinstance(expect, str):
        expect = parse_duration(expect)
    be = get_backend(backend)
    run_id, run_dir = _make_run_dir(root)
    if raw:
        command = [t.replace("{run_dir}", str(run_dir)).replace("{root}", str(root)) for t in argv]
    else:
        command = [sys.executable, "-m", "mihd", *argv, "--run-dir", str(run_dir), "--root", str(root)]
    if cells is None:
        cells = cells_from_args(argv) if not raw else []
        _mark_cached(root, cells)
    spec = {"id": run_id, "name": name, "argv": command, "mihd_args": None if raw else list(argv),
            "cells": cells, "backend": backend, "expect": float(expect) if expect else None,
            "options": options or {}, "created": round(time.time(), 3),
            "by": f"{getpass.getuser()}@{socket.gethostname()}"}
    write_json_atomic(run_dir / SPEC, spec)
    handle = be.submit(run_dir, command, options or {})
    write_json_atomic(run_dir / HANDLE, handle)
    reg = Registry(root)
    try:
        reg.ingest(run_dir)
    finally:
        reg.close()
    return run_id


def begin_direct(root, run_dir: Path, argv: list[str]) -> None:
    """For a direct `mihd run --run-dir D` (no launch): write spec.json and this process's identity,
    so watchers show it running and can tell lost from running. Call `registry.ingest` at the end."""
    root = resolve_root(root)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cells = cells_from_args(argv)
    _mark_cached(root, cells)
    write_json_atomic(run_dir / SPEC, {"id": run_dir.name, "name": None, "argv": list(argv),
                                       "mihd_args": list(argv), "cells": cells, "backend": "direct",
                                       "expect": None, "options": {}, "created": round(time.time(), 3),
                                       "direct": True, "by": f"{getpass.getuser()}@{socket.gethostname()}"})
    pid = os.getpid()
    ident = {"pid": pid, "create_time": proc_create_time(pid), "sid": os.getsid(0),
             "host": socket.gethostname(), "uid": os.getuid(), "started": round(time.time(), 3),
             "child_pid": pid, "child_create_time": proc_create_time(pid)}
    write_json_atomic(run_dir / PROC, ident)
