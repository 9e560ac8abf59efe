"""The package's layout: no import cycles, every module importable."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import warriorcoder

PACKAGE = Path(warriorcoder.__file__).resolve().parent
# Generated code imports only itself and protobuf.
GENERATED = "warriorcoder.v1"


def module_files() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (generated code aside)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if not name.startswith(GENERATED):
            out[name] = path
    return out


def imported(tree: ast.AST, modules: dict[str, Path]) -> Iterator[str]:
    """The package's modules that a module imports, wherever the import stands (a lazy import
    inside a function closes a cycle as surely as one at the top)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import sub` imports the submodule when there is one.
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules
                     else node.module for alias in node.names]
        else:
            continue
        yield from (name for name in names if name in modules)


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: set(imported(ast.parse(path.read_text()), modules)) - {name}
            for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert graph.get("warriorcoder.cli"), "the graph is empty"
    assert cycles(graph) == []


def test_every_module_imports() -> None:
    """All modules load in one fresh interpreter (generated code included)."""
    names = sorted({*module_files(), GENERATED})
    done = subprocess.run([sys.executable, "-c", "; ".join(f"import {n}" for n in names)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
