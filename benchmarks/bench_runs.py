"""Run control figures: `mihd runs ls` with 1,000 runs in history and 20 live (goal <= 0.3 s), one
monitoring sample over 20 live process trees (goal <= 50 ms), and 20 kills of process trees (survivors).

python benchmarks/bench_runs.py [--history 1000] [--live 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from mihd.jsonio import write_json_atomic  # noqa: E402
from mihd.runs.kill import kill_run  # noqa: E402
from mihd.runs.launch import new_run_id  # noqa: E402
from mihd.runs.monitor import Monitor  # noqa: E402
from mihd.runs.registry import Registry  # noqa: E402
from mihd.runs.status import RunWatcher, list_runs  # noqa: E402
from mihd.runs.usage import EVERY, GroupUsage  # noqa: E402
from runs_helpers import CELL, launch_fake  # noqa: E402


def make_history(root: Path, n: int) -> None:
    """n finished run dirs, as launched runs leave them (spec, proc, events, result, exit)."""
    t0 = time.time() - 86400
    for i in range(n):
        t = t0 + i * 60
        rid = new_run_id(t)
        d = root / "runs" / rid
        d.mkdir(parents=True)
        cell = {**CELL.to_dict(), "cached": True, "fusion": ("concat", "mean", "attention")[i % 3]}
        write_json_atomic(d / "spec.json", {"id": rid, "cells": [cell], "backend": "local", "created": t,
                                            "argv": ["x"], "expect": None})
        write_json_atomic(d / "proc.json", {"pid": 1, "create_time": 0, "started": t + 1, "host": "h"})
        (d / "events.jsonl").write_text("".join(json.dumps({"t": t + 1 + s, "kind": "stage", "stage": "fuse",
                                                           "done": s, "total": 10}) + "\n" for s in range(11)))
        write_json_atomic(d / "result.json", {"status": "ok", "cells": [{"signature": cell, **cell,
                                                                         "ari": 0.5, "nmi": 0.4}]})
        write_json_atomic(d / "exit.json", {"code": 0, "signal": None, "ended": t + 40 + i % 7, "forwarded": []})


def timed(fn, repeat=5):
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--history", type=int, default=1000)
    ap.add_argument("--live", type=int, default=20)
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mihd-bench-runs-"))
    make_history(root, a.history)
    t = time.perf_counter()
    reg = Registry(root)
    reg.reindex()
    reg.close()
    print(f"reindex of {a.history} run dirs: {time.perf_counter() - t:.2f} s")
    drop = lambda: [Path(f"{reg.path}{s}").unlink(missing_ok=True) for s in ("", "-wal", "-shm")]  # noqa: E731
    s = timed(lambda: (drop(), list_runs(root)), repeat=3)
    print(f"first `runs ls` on a new host (index built from {a.history} run dirs): median "
          f"{statistics.median(s):.2f} s")
    live = [launch_fake(root, "--seconds", 600, "--children", 2) for _ in range(a.live)]
    time.sleep(2.0)  # let every tree start its children
    watcher = RunWatcher(root)
    views = {v.id: v for v in watcher.refresh(all=True)}
    assert sum(v.status == "running" for v in views.values()) == a.live, "live runs not all running"

    cli = lambda *x: subprocess.run([sys.executable, "-m", "mihd", "runs", "ls", *x, "--root", str(root)],  # noqa: E731
                                    capture_output=True, check=True, cwd=REPO)
    for label, fn in [("list_runs() in-process, one-shot", lambda: list_runs(root)),
                      ("list_runs(all=True) in-process", lambda: list_runs(root, all=True)),
                      ("RunWatcher.refresh() (dashboard poll)", lambda: watcher.refresh()),
                      ("`mihd runs ls` (process, incl. Python start)", cli),
                      ("`mihd runs ls --all` (process)", lambda: cli("--all"))]:
        s = timed(fn)
        print(f"{label}: median {statistics.median(s) * 1000:.0f} ms, max {max(s) * 1000:.0f} ms"
              f"  [{a.history} history + {a.live} live; goal <= 300 ms]")

    roots = {v.id: (v.pid, json.loads((Path(v.run_dir) / "proc.json").read_text())["create_time"])
             for v in views.values() if v.status == "running"}
    mon = Monitor()
    first = timed(lambda: mon.sample(roots), repeat=1)[0]
    warm = timed(lambda: mon.sample(roots), repeat=10)
    nprocs = sum(s.nprocs for s in mon.sample(roots).values())
    print(f"monitor sample over {len(roots)} trees ({nprocs} processes): first {first * 1000:.1f} ms, "
          f"then median {statistics.median(warm) * 1000:.1f} ms, max {max(warm) * 1000:.1f} ms  [goal <= 50 ms]")
    usage = GroupUsage(os.getpgid(0))
    per = timed(usage.sample, repeat=20)
    print(f"supervisor's usage sample (one /proc pass, {len(os.listdir('/proc'))} /proc entries): "
          f"median {statistics.median(per) * 1000:.2f} ms, every {EVERY:.0f} s")

    pids = set()
    for s in mon.sample(roots).values():
        pids |= set(s.pids)
    t = time.perf_counter()
    for rid in live:
        kill_run(root, rid, grace=0.5, watcher=watcher)
    import psutil
    survivors = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    print(f"{len(live)} kills (TERM, KILL after 0.5 s) of {len(pids)} processes: {len(survivors)} survivors, "
          f"{time.perf_counter() - t:.1f} s")
    watcher.close()
    return 0 if not survivors else 1


if __name__ == "__main__":
    sys.exit(main())
