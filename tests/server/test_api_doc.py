"""docs/API.md and the server agree, and the repository stands alone.

Every endpoint in docs/API.md's tables is in ``/openapi.json`` with that method, and
every operation of ``/openapi.json`` is in docs/API.md; endpoints of a section marked
*not served yet* must not be served (the mark goes with the first one that is). Nothing
in the repository mentions documents outside it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from pmarket.server import Settings, create_app

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| (GET|POST|PUT|PATCH|DELETE|WS) \| (/[^ |]*) \|", re.M)
NOT_SERVED = "not served yet"


def _normal(path: str) -> str:
    return re.sub(r"\{\w+\}", "{}", path)


def documented() -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(method, path) of docs/API.md's tables: those served, and those not served yet."""
    served, planned = set(), set()
    for section in re.split(r"^## ", (ROOT / "docs" / "API.md").read_text(), flags=re.M):
        heading = section.splitlines()[0] if section else ""
        rows = {(method, _normal(path)) for method, path in ROW.findall(section)}
        (planned if NOT_SERVED in heading else served).update(rows)
    return served, planned


def openapi_operations() -> set[tuple[str, str]]:
    app = create_app(Settings(database_url="sqlite:///unused.db", jwt_secret="x" * 40))
    return {(method.upper(), _normal(path)) for path, operations in app.openapi()["paths"]
            .items() for method in operations}


def test_api_md_and_openapi_list_the_same_endpoints():
    served, planned = documented()
    operations = openapi_operations()
    assert ("WS", "/ws") in served  # the WebSocket: docs/WEBSOCKET.md
    http = {row for row in served if row[0] != "WS"}
    assert not http - operations, f"in docs/API.md, not served: {sorted(http - operations)}"
    assert not operations - http, (
        f"served, missing from docs/API.md: {sorted(operations - http)}")
    assert not planned & operations, (
        f"served, yet docs/API.md says {NOT_SERVED!r}: {sorted(planned & operations)}")


def test_the_websocket_protocol_is_documented_in_the_repository():
    text = (ROOT / "docs" / "WEBSOCKET.md").read_text()
    for word in ("subscribe", "unsubscribe", "book:{market_id}", "trades:{market_id}",
                 "snapshot", "delta", "sequence", "unauthenticated", "rate_limited"):
        assert word in text, word


def test_nothing_in_the_repository_refers_outside_it():
    try:
        files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    folder = "sha" "red"  # in two parts: this file names no outside folder either
    outside = re.compile(rf"\.\./{folder}|/work/{folder}|{folder}/docs")
    offenders = []
    for name in files:
        path = ROOT / name
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        offenders += [f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1)
                      if outside.search(line)]
    assert not offenders, f"links outside the repository: {offenders}"
