"""tests/services.py: a missing service skips its tests, or fails them when required."""

from __future__ import annotations

import pytest

from tests import services


@pytest.fixture(autouse=True)
def _fresh_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "_probed", {})


def test_unreachable_redis_skips_with_a_message_naming_redis(monkeypatch):
    monkeypatch.setenv("PMARKET_REDIS_URL", "redis://127.0.0.1:1")
    monkeypatch.delenv("PMARKET_REQUIRE_SERVICES", raising=False)

    with pytest.raises(pytest.skip.Exception, match=r"Redis is not reachable at redis://127\.0"):
        services.redis_url_or_skip()


def test_unreachable_redis_fails_when_services_are_required(monkeypatch):
    monkeypatch.setenv("PMARKET_REDIS_URL", "redis://127.0.0.1:1")
    monkeypatch.setenv("PMARKET_REQUIRE_SERVICES", "1")

    with pytest.raises(pytest.fail.Exception, match="PMARKET_REQUIRE_SERVICES=1"):
        services.redis_url_or_skip()


def test_unreachable_postgres_skips_with_a_message_naming_postgres(monkeypatch):
    monkeypatch.setenv("PMARKET_TEST_POSTGRES_URL", "postgresql+psycopg://u@127.0.0.1:1/x")
    monkeypatch.delenv("PMARKET_REQUIRE_SERVICES", raising=False)

    with pytest.raises(pytest.skip.Exception, match="PostgreSQL is not reachable"):
        services.postgres_url_or_skip()


def test_reachable_redis_returns_its_url(redis_url: str):
    assert services.redis_url_or_skip() == redis_url
