"""A real embedded server (server + engine + worker, SQLite) for the live client tests."""

from __future__ import annotations

import pytest

from pmarket.tui.embedded import EmbeddedServer

ADMIN = ("admin@example.com", "operator-key-for-tests")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = tmp_path_factory.mktemp("exchange") / "pmarket.db"
    srv = EmbeddedServer(path, admin_email=ADMIN[0], admin_password=ADMIN[1],
                         bcrypt_rounds=4).start()
    yield srv
    srv.stop()
