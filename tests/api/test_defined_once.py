"""Each API object is defined once, in ``pmarket.api``.

The server's answers, the client's results, the simulator's and the terminal's values
are the same classes. A pydantic model anywhere else in the package, or a class named
like one of the API's objects in a layer that speaks the API (server, client, simulator,
terminal, benchmarks, commands), would be a second definition that can drift from the
first: both fail here. The engine's state and the database's tables are not the API and
keep their own names (``engine.model.Position``, ``db.Order``).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from pydantic import BaseModel

import pmarket
from pmarket import api, client

PACKAGE = Path(pmarket.__file__).parent
API_LAYERS = ("server", "client", "sim", "tui", "bench", "cli")
PYDANTIC_NAMES = {"BaseModel", "RootModel", "TypeAdapter"}


def api_object_names() -> set[str]:
    """The names of the API's request and response objects."""
    return {name for name, obj in vars(api).items()
            if inspect.isclass(obj) and issubclass(obj, BaseModel)}


def modules(*layers: str) -> list[Path]:
    if not layers:
        return [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] != "api"]
    return [p for layer in layers for p in (PACKAGE / layer).rglob("*.py")]


def class_definitions(path: Path) -> list[ast.ClassDef]:
    return [node for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, ast.ClassDef)]


def base_names(node: ast.ClassDef) -> set[str]:
    names = set()
    for base in node.bases:
        target = base.value if isinstance(base, ast.Subscript) else base
        if isinstance(target, ast.Attribute):
            names.add(target.attr)
        elif isinstance(target, ast.Name):
            names.add(target.id)
    return names


def test_the_api_package_defines_the_objects_the_layers_use():
    names = api_object_names()
    assert {"Order", "Trade", "Balance", "Position", "Event", "Market", "Book", "OrderCreate",
            "EventCreate", "Audit", "Health"} <= names
    for name in ("Order", "Trade", "Balance", "Position", "Event", "Market", "Book",
                 "Audit", "Health", "Page", "Auth", "AdminAuth"):
        assert getattr(client, name) is getattr(api, name), f"client.{name} is not api.{name}"


def test_no_pydantic_model_is_defined_outside_the_api_package():
    found = []
    for path in modules():
        text = path.read_text()
        if "pydantic" not in text:
            continue
        for node in class_definitions(path):
            if base_names(node) & PYDANTIC_NAMES:
                found.append(f"{path.relative_to(PACKAGE.parent)}: class {node.name}")
    assert not found, "pydantic models belong in pmarket/api:\n" + "\n".join(found)


def test_no_layer_speaking_the_api_redefines_an_api_object():
    names = api_object_names()
    found = [f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: class {node.name}"
             for path in modules(*API_LAYERS) for node in class_definitions(path)
             if node.name in names]
    assert not found, ("API objects are defined once, in pmarket/api; import them from "
                       "there:\n" + "\n".join(found))


def test_the_checks_see_a_second_definition(tmp_path):
    """The scan itself: a dataclass or a model named like an API object is caught."""
    sample = tmp_path / "sample.py"
    sample.write_text("from dataclasses import dataclass\nfrom pydantic import BaseModel\n"
                      "@dataclass\nclass Order:\n    id: int\n"
                      "class Thing(BaseModel):\n    x: int\n")
    nodes = class_definitions(sample)
    assert [n.name for n in nodes if n.name in api_object_names()] == ["Order"]
    assert [n.name for n in nodes if base_names(n) & PYDANTIC_NAMES] == ["Thing"]
