"""Shared by the fan-out tests (local and Slurm): the demo grids, and evidence read from the part dirs."""

import json
import os
import time
from pathlib import Path

import psutil

FUSIONS = "gene_only,gene_smooth,vision_only,concat,mean,attention,staig_fusion"
# the 14-cell demo grid: 7 fusions x {pca, scgpt}; scgpt's extraction fails (no scgpt package or
# checkpoint), so its 7 cells fail saying why while the 7 pca cells are done
GRID_14 = ("grid", "demo", "--gene", "pca,scgpt", "--vision", "texture", "--fusion", FUSIONS, "--cluster", "gmm")
# the 14-cell demo grid the benchmark times: every cell computes
BENCH_14 = ("grid", "demo", "--gene", "pca", "--vision", "texture", "--fusion", FUSIONS, "--cluster", "gmm,kmeans")


def read(path: Path):
    return json.loads(Path(path).read_text())


def interval(part: Path) -> tuple[float, float]:
    """(when its supervisor started, when it ended) from the part's own proc.json and exit.json."""
    return read(part / "proc.json")["started"], read(part / "exit.json")["ended"]


def max_overlap(intervals) -> int:
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda p: (p[0], p[1]))
    most = now = 0
    for _, step in points:
        now += step
        most = max(most, now)
    return most


def assert_cells_waited_for_their_extractions(grid: Path) -> None:
    fan = read(grid / "fanout.json")
    assert fan["extract"], "expected extractions"
    for i, cell in enumerate(fan["cells"]):
        began = read(grid / "cells" / str(i) / "proc.json")["started"]
        for key in cell["needs"]:
            ended = read(grid / "extract" / key / "exit.json")["ended"]
            assert began >= ended, (i, key, began, ended)


def processes_left(grid: Path, timeout: float = 10.0) -> list[str]:
    """processes_of(grid) once it is empty, or as it is after `timeout` seconds: a supervisor lives on for a
    moment after writing exit.json (its end's hooks, its exit), which a loaded machine stretches."""
    deadline = time.monotonic() + timeout
    while (found := processes_of(grid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def processes_of(grid: Path) -> list[str]:
    """Live processes of the grid or any of its parts: in a supervisor's session, or carrying a run's marker."""
    idents = [read(p) for p in Path(grid).rglob("proc.json")]
    sessions = {i["pid"] for i in idents}
    needles = {f"MIHD_RUN_MARKER={i['marker']}".encode() for i in idents if i.get("marker")}
    found = []
    for p in psutil.process_iter():
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
            with open(f"/proc/{p.pid}/environ", "rb") as fh:
                env = set(fh.read().split(b"\0"))
            if env & needles or os.getsid(p.pid) in sessions:
                found.append(f"{p.pid} {p.name()}")
        except (OSError, psutil.NoSuchProcess):
            pass
    return found


def cache_statuses(grid: Path) -> list[str]:
    """Every cache event of every cell: hit/miss/... (a miss in a cell = an embedding computed twice)."""
    out = []
    for events in Path(grid).glob("cells/*/events.jsonl"):
        out += [e["status"] for e in map(json.loads, events.read_text().splitlines()) if e["kind"] == "cache"]
    return out


def allowed_share(n: int) -> str:
    """The threads each of n workers gets here (the cores this process may use, divided), as the runner's
    log says it: `1 thread`, `2 threads`."""
    from mihd.compute import allowed_cores

    share = max(1, allowed_cores()[0] // n)
    return f"{share} thread{'s' if share != 1 else ''}"
