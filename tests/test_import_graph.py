"""Portside's modules depend only downward: no import circle, the plugin contract low.

The graph is read from the source (``ast``), counting every import a reader or a type
checker sees: at module level, inside functions (the lazy imports that keep the warm
path light are still dependencies) and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "portside"

# Circles tolerated for now (none): a new one fails, and so would joining one.
KNOWN_CIRCLES: tuple[frozenset[str], ...] = ()


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imported(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The Portside modules ``name`` imports anywhere in its source."""
    known = set(known)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            out.add(base)
            # ``from portside import versions`` imports the module portside.versions.
            out.update(f"{base}.{alias.name}" for alias in node.names)
    # ``import portside.a.b`` also runs portside/__init__ and portside/a/__init__, but
    # those are package markers, not dependencies worth a circle.
    return {m for m in out if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def _circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(graph[m])
    return seen


def test_the_graph_is_read() -> None:
    graph = _graph()
    # A sanity check that imports are seen at all (module level, lazy, TYPE_CHECKING).
    assert "portside.hookspecs" in graph["portside.plugins"]
    assert "portside.plugins" in graph["portside.versions"]  # lazy, in _load_schemes
    assert "portside.contract" in graph["portside.hookspecs"]  # under TYPE_CHECKING
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_import_circle() -> None:
    circles = [c for c in _circles(_graph()) if not any(c <= known for known in KNOWN_CIRCLES)]
    assert circles == [], f"import circles: {[sorted(c) for c in circles]}"


def test_the_plugin_contract_stands_below_what_implements_and_calls_it() -> None:
    graph = _graph()
    below = _reachable(graph, "portside.hookspecs")
    assert "portside.plugins" not in below
    assert "portside.hookspecs" not in below
    implementers = (
        "portside.policy",
        "portside.versions",
        "portside.registry.credentials",
        "portside.vulnerabilities",
    )
    for implementer in implementers:
        assert implementer not in below, f"hookspecs depends on {implementer}"


def test_the_cache_does_not_rank_tags() -> None:
    graph = _graph()
    assert "portside.versions" not in _reachable(graph, "portside.cache")
