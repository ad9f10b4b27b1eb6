"""The engine core does no I/O: its modules import nothing that could."""

import ast
from pathlib import Path

import pmarket.engine

ENGINE_DIR = Path(pmarket.engine.__file__).parent
ALLOWED = {
    "__future__", "collections", "dataclasses", "decimal", "enum", "heapq", "hashlib",
    "orjson", "typing", "collections.abc",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module)
    return found


def test_engine_core_imports_only_pure_modules():
    core = list(ENGINE_DIR.glob("*.py"))  # all of it: the I/O around it is pmarket.runtime
    assert len(core) >= 8
    for path in core:
        impure = imported_modules(path) - ALLOWED
        assert not impure, f"{path.name} imports {sorted(impure)}"


def test_the_check_catches_an_io_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import socket\nfrom time import time\n")
    assert imported_modules(bad) - ALLOWED == {"socket", "time"}
