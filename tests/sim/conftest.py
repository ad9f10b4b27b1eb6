"""Fixtures of the simulator tests: one embedded server for every HTTP-target test.

The server starts once per session, on first use (in-process tests never start it);
scenario runs isolate themselves on it by signing up users unique to each run.
"""

from __future__ import annotations

import pytest

from .server import ServerThread


@pytest.fixture(scope="session")
def http_url(tmp_path_factory) -> str:
    """The base URL of a running embedded server with the harness's admin account."""
    server = ServerThread(tmp_path_factory.mktemp("sim-server")).start()
    try:
        yield server.url
    finally:
        server.stop()
