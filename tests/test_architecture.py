"""The layout docs/architecture.md describes, held against the code.

Every import between the project's modules is read from the source (module level and
inside functions alike), so a circle cannot hide behind a function-local import.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("crm", "tagging", "campaigns", "config")

# Layers, lowest first: a module may import its own layer and the ones below, never above.
LAYERS = [
    ("crm",),
    ("tagging",),  # the vocabulary core (tagging.* minus the nested apps below)
    ("tagging.audiences",),
    ("tagging.imports", "tagging.rules", "tagging.insight", "tagging.offers"),
    ("tagging.demo",),
    ("campaigns",),
    ("campaigns.entrypoints", "campaigns.chatwoot", "campaigns.journeys"),  # built on campaigns
    ("config",),
]


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module an import names (``from a.b import c`` may mean module a.b.c)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path, *, in_functions: bool) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    nested = {id(n) for f in functions for n in ast.walk(f) if n is not f}
    targets = set()
    for node in ast.walk(tree):
        if not in_functions and id(node) in nested:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            resolved = _resolve(name)
            if resolved and resolved != module and not module.startswith(resolved + "."):
                targets.add(resolved)
    return targets


@cache
def _graph(*, in_functions: bool) -> dict[str, frozenset[str]]:
    # AppConfig.ready() is where an app wires itself to the apps below it (Django's way).
    return {m: frozenset(_imports(m, p, in_functions=in_functions and not m.endswith(".apps")))
            for m, p in MODULES.items()}


def _layer(module: str) -> int:
    best = (-1, 0)
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best[0]:
                best = (len(prefix), index)
    return best[1]


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_there_are_modules_to_check():
    assert {"crm.services", "tagging.services", "tagging.audiences.language",
            "campaigns.sending"} <= set(MODULES)


def test_no_import_circles_not_even_through_function_local_imports():
    # A package's __init__ importing its own submodules is not a circle of the code.
    graph = {module: {t for t in targets if not t.startswith(module + ".")}
             for module, targets in _graph(in_functions=True).items()}
    assert _cycle(graph) is None


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_layers(module):
    upward = sorted(t for t in _graph(in_functions=True)[module] if _layer(t) > _layer(module))
    assert upward == [], f"{module} imports from a layer above it"
