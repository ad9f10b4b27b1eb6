"""Helpers of the crash tests: ``pmarket engine`` / ``pmarket worker`` as real processes,
a fresh PostgreSQL schema, and a client that remembers which commands were answered."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
import sqlalchemy as sa

from pmarket.bus import Bus, RequestTimeout, decode_events, encode_command
from pmarket.engine.commands import Command

PMARKET = str(Path(sys.executable).parent / "pmarket")


class Process:
    """A ``pmarket`` subcommand that can be started, killed -9 and restarted."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.kills = 0

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([PMARKET, *self.args], stdout=log, stderr=log,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        self.starts += 1

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM (the clean stop) and wait; the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextmanager
def fresh_schema(base_url: str) -> Iterator[str]:
    """A URL whose connections use a new, empty PostgreSQL schema (dropped afterwards)."""
    schema = f"pmt_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base_url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        url = sa.make_url(base_url).update_query_dict(
            {"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def delete_keys(redis_url: str, prefix: str) -> None:
    """Remove every Redis key of a test's prefix."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@dataclass
class Ledger:
    """What the client knows: commands sent, and the replies it got."""

    replied: dict[str, list[tuple]] = field(default_factory=dict)  # key -> events
    unanswered: set[str] = field(default_factory=set)
    retries: int = 0


class Client:
    """Sends commands with ``Bus.request``; retries the idempotent ones on timeout.

    Orders carry a ``client_order_id``, so a retry can never create a second order;
    cancels are idempotent by nature. Deposits and splits are not retried: without a
    reply their fate is unknown to the client (0 or 1 application, never 2).
    """

    def __init__(self, bus: Bus, timeout: float = 2.0, attempts: int = 15) -> None:
        self.bus = bus
        self.timeout = timeout
        self.attempts = attempts
        self.ledger = Ledger()

    async def send(self, key: str, cmd: Command, *, retry: bool,
                   timeout: float | None = None) -> list[tuple] | None:
        payload = encode_command(cmd)
        for attempt in range(self.attempts if retry else 1):
            if attempt:
                self.ledger.retries += 1
            try:
                events = decode_events(await self.bus.request(
                    payload, timeout=timeout or self.timeout))
            except RequestTimeout:
                continue
            self.ledger.replied[key] = events
            self.ledger.unanswered.discard(key)
            return events
        self.ledger.unanswered.add(key)
        return None


async def wait_until(predicate, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``predicate()`` (sync or async) until true; fail with ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
