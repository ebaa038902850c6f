"""The house's shape (docs/ARCHITECTURE.md "Layers"): no import circle among the project's modules, run
control (mihd/runs) never reaching up into the CLI or the pipeline, no module past 450 lines. Imports inside
functions count: a late import is still an arrow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
PACKAGES = ("mihd", "mihd_tui")
MAX_LINES = 450
ABOVE_RUN_CONTROL = ("mihd.cli", "mihd.execute", "mihd.pipeline")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (PROJECT / package).rglob("*.py"):
            parts = list(path.relative_to(PROJECT).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules `name` imports (a `from pkg import name` counts as pkg.name when that is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets += [base] + [f"{base}.{a.name}" for a in node.names]
    out = set()
    for target in targets:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)
    return out


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
                on.discard(group[-1])
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def test_no_import_circle(graph):
    assert circles(graph) == []


def test_run_control_takes_what_it_runs_from_above(graph):
    reaching_up = {(m, t) for m, ts in graph.items() if m.startswith("mihd.runs") for t in ts
                   if t.startswith(ABOVE_RUN_CONTROL)}
    assert reaching_up == set()


def test_no_module_past_450_lines():
    long = {str(p.relative_to(PROJECT)): n for p in modules().values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_circle_finder_finds_a_circle(tmp_path):
    """The guards above are only as good as their finder: a planted circle and a late relative import are seen."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    late = tmp_path / "x.py"
    late.write_text("def later():\n    from .y import thing\n")
    assert imports_of("mihd.x", late, {"mihd.x": late, "mihd.y": tmp_path / "y.py"}) == {"mihd.y"}
