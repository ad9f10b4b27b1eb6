"""The house plan, checked: no import cycles between modules, and every package imports
only the layers below it (docs/ARCHITECTURE.md, "Packages").

Every ``import`` counts — at module level, inside functions, and under
``TYPE_CHECKING`` (a cycle that only type annotations close is still a loop a reader
walks, and mypyc compiles those annotations). Importing a package counts as importing its
``__init__``; a submodule does not implicitly depend on its package's ``__init__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pmarket

ROOT = Path(pmarket.__file__).parent

LAYERS: dict[str, set[str]] = {
    # package: the pmarket packages it may import (besides itself)
    "engine": set(),
    "bus": {"engine"},
    "db": {"engine"},
    "runtime": {"engine", "bus"},
    "worker": {"runtime", "engine", "bus", "db"},
    "api": {"engine"},
    "server": {"api", "runtime", "worker", "engine", "bus", "db"},
    "client": {"api", "engine"},
    "sim": {"client", "api", "runtime", "engine"},
    "tui": {"client", "api", "engine", "server"},
    "bench": {"*"},
    "cli": {"*"},
}
"""``pmarket/__init__.py`` itself only activates the engine build (runtime.compiled)."""


def modules(root: Path = ROOT) -> dict[str, tuple[Path, bool]]:
    """Every module of the package: dotted name -> (path, is a package's __init__)."""
    found = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_pkg)
    return found


def imports(name: str, path: Path, is_pkg: bool, known: dict) -> set[str]:
    """The pmarket modules ``name`` imports (resolved to modules that exist)."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names if a.name.startswith("pmarket"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                pkg = ".".join(base + ([node.module] if node.module else []))
            else:
                pkg = node.module or ""
            if pkg.startswith("pmarket"):
                for alias in node.names:
                    sub = f"{pkg}.{alias.name}"
                    targets.add(sub if sub in known else pkg)
    resolved = set()
    for target in targets:
        while target not in known and "." in target:
            target = target.rsplit(".", 1)[0]
        if target in known and target != name:
            resolved.add(target)
    return resolved


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    known = modules(root)
    return {name: imports(name, path, is_pkg, known) for name, (path, is_pkg) in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_cycles():
    assert cycles(graph()) == []


def layer_violations(edges: dict[str, set[str]]) -> list[str]:
    """Imports that point up (or sideways) across the layers of ``LAYERS``."""
    wrong = []
    for module, targets in sorted(edges.items()):
        own = package(module)
        allowed = LAYERS.get(own, {"runtime"} if own == "" else set())
        if "*" in allowed:
            continue
        for target in sorted(targets):
            other = package(target)
            if other != own and other not in allowed:
                wrong.append(f"{module} imports {target}")
    return wrong


def test_every_package_imports_only_the_layers_below_it():
    assert layer_violations(graph()) == []


def test_every_package_has_its_place_in_the_plan():
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(LAYERS)


def test_the_checks_find_a_cycle_and_a_layer_violation(tmp_path):
    pkg = tmp_path / "pmarket"
    for sub in ("engine", "server"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "engine" / "a.py").write_text("from typing import TYPE_CHECKING\n"
                                         "if TYPE_CHECKING:\n    from .b import B\n")
    (pkg / "engine" / "b.py").write_text("def f():\n    from pmarket.engine import a\n"
                                         "from pmarket.server import app\n")
    (pkg / "engine" / "c.py").write_text("")
    (pkg / "server" / "app.py").write_text("from ..engine import c\n")
    edges = graph(pkg)
    assert cycles(edges) == [["pmarket.engine.a", "pmarket.engine.b"]]
    assert "pmarket.server.app" in edges["pmarket.engine.b"]
    assert edges["pmarket.server.app"] == {"pmarket.engine.c"}
    assert layer_violations(edges) == ["pmarket.engine.b imports pmarket.server.app"]
