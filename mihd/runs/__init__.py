"""Run control: launch detached runs, index them, watch them (progress, ETA, CPU/RAM/GPU), flag overruns,
kill them. Every decision the dashboard shows is made here.

Public API (imported lazily, so `python -m mihd.runs.supervise` stays light):
  mihd.runs.launch.launch(root, spec: RunSpec, *, raw_argv=None, cached=None) -> run id
  list_runs(root, all=False) -> [RunView];  RunWatcher(root).refresh() / .view(id) / .latest_scores()
  kill_run(root, run_id, signal="TERM", grace=10.0) -> outcome
  ingest(root, run_dir) -> registry row (call after a direct `mihd run --run-dir`);  begin_direct(...)
  Registry(root).reindex();  Gpu / default_gpu();  Monitor;  parse_duration
"""

from __future__ import annotations

import importlib

_API = {
    "begin_direct": "launch", "new_run_id": "launch",
    "list_runs": "status", "RunWatcher": "status", "RunView": "status",
    "kill_run": "kill", "ingest": "registry", "Registry": "registry",
    "Gpu": "gpu", "default_gpu": "gpu", "Monitor": "monitor",
    "parse_duration": "durations",
    "expected_duration": "eta", "is_overrun": "overrun",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(f"{__name__}.{_API[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
