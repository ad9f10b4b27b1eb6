"""The client address: the TCP peer unless a configured proxy forwarded the request.

An attacker on loopback sent 60 wrong sign-ins with a random ``X-Forwarded-For`` each
and was never rate-limited, and opened 60 WebSocket connections past the per-address
cap: uvicorn believed ``X-Forwarded-For`` from 127.0.0.1 by default. Now every per-address
limit (sign-in, public reads on both the FastAPI and the fast read path, WebSocket
connections) is keyed by the peer whatever the headers say, on every entry point that
runs the app (the test harness, ``pmarket serve``, ``pmarket tui --embedded``); an
operator opts in to a proxy's header with ``PMARKET_TRUSTED_PROXIES``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
import websockets

from pmarket.server import Settings
from pmarket.server.clientaddr import client_address, parse_trusted_proxies

from .harness import SECRET, free_port, start_server, wait_healthy

PMARKET = str(Path(sys.executable).parent / "pmarket")
LIMITED = dict(auth_rate_limit_per_s=0.01, auth_rate_limit_burst=3,
               public_rate_limit_per_s=0.01, public_rate_limit_burst=3,
               ws_max_connections_per_address=3)


def spoofed(i: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"10.{i}.{i % 250}.9"}


# --- the rule ----------------------------------------------------------------------


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_headers():
    assert client_address("127.0.0.1", [b"10.0.0.1"], ()) == "127.0.0.1"
    assert client_address("203.0.113.9", [b"10.0.0.1, 10.0.0.2"], ()) == "203.0.113.9"


def test_behind_trusted_proxies_the_client_is_the_rightmost_untrusted_hop():
    trusted = parse_trusted_proxies("127.0.0.1, 10.0.0.0/8")
    # A client's own X-Forwarded-For text sits left of what the proxies appended.
    assert client_address("127.0.0.1", [b"6.6.6.6, 203.0.113.7"], trusted) == "203.0.113.7"
    assert client_address("127.0.0.1", [b"6.6.6.6, 203.0.113.7, 10.1.2.3"],
                          trusted) == "203.0.113.7"
    assert client_address("127.0.0.1", [b"6.6.6.6", b"203.0.113.7:5555"],
                          trusted) == "203.0.113.7"
    assert client_address("127.0.0.1", [b"[2001:db8::1]:80"], trusted) == "2001:db8::1"
    # A peer that is not a trusted proxy is the client, whatever it sends.
    assert client_address("203.0.113.9", [b"1.2.3.4"], trusted) == "203.0.113.9"
    # Junk ends the walk at the proxy that forwarded it.
    assert client_address("127.0.0.1", [b"1.2.3.4, junk"], trusted) == "127.0.0.1"
    assert client_address("127.0.0.1", [], trusted) == "127.0.0.1"


def test_a_bad_trusted_proxies_setting_stops_the_server(monkeypatch):
    monkeypatch.setenv("PMARKET_TRUSTED_PROXIES", "10.0.0.1, proxy.example")
    with pytest.raises(ValueError, match=r"proxy\.example"):
        Settings.load(jwt_secret=SECRET)
    monkeypatch.setenv("PMARKET_TRUSTED_PROXIES", " 10.0.0.1 , 192.168.0.0/16,::1")
    assert Settings.load(jwt_secret=SECRET).trusted_proxies == (
        "10.0.0.1/32", "192.168.0.0/16", "::1/128")


# --- the limits, end to end ---------------------------------------------------------


async def signins(url: str, n: int, headers=spoofed) -> Counter:
    counts: Counter = Counter()
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for i in range(n):
            r = await http.post("/auth/signin", headers=headers(i), json={
                "email": f"nobody{i}@example.com", "password": "wrong wrong wrong"})
            counts[r.status_code] += 1
    return counts


@pytest.mark.asyncio
async def test_spoofed_forwarded_for_does_not_escape_the_per_address_limits(tmp_path):
    server = await start_server("embedded", tmp_path, **LIMITED)
    try:
        counts = await signins(server.url, 10)
        assert counts[429] >= 6 and counts[401] <= 3, counts
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            # /events is served by the fast read path, /events/{id}/orderbook by FastAPI.
            for path in ("/events", "/events/1/orderbook"):
                codes = Counter([(await http.get(path, headers=spoofed(i))).status_code
                                 for i in range(6)])
                assert codes[429] >= 3, (path, codes)
        opened, refused = [], 0
        for i in range(6):
            try:
                opened.append(await websockets.connect(
                    server.ws_url(), additional_headers=spoofed(i)))
            except websockets.InvalidStatus as exc:
                assert exc.response.status_code == 429
                refused += 1
        for ws in opened:
            await ws.close()
        assert len(opened) <= 3 and refused >= 3, (len(opened), refused)
    finally:
        await server.stop()


@pytest.mark.asyncio
async def test_a_trusted_proxy_s_forwarded_for_names_the_client(tmp_path):
    server = await start_server("embedded", tmp_path, trusted_proxies=("127.0.0.1",),
                                **LIMITED)
    try:
        # Each forwarded client has its own bucket ...
        assert (await signins(server.url, 8)) == Counter({401: 8})
        # ... and one client is limited, whatever it puts left of the proxy's hop.
        counts = await signins(server.url, 8, lambda i: {
            "X-Forwarded-For": f"6.6.{i}.6, 203.0.113.50"})
        assert counts[429] >= 4, counts
        opened = []
        for _ in range(3):
            opened.append(await websockets.connect(
                server.ws_url(), additional_headers={"X-Forwarded-For": "203.0.113.60"}))
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(server.ws_url(),
                                     additional_headers={"X-Forwarded-For": "203.0.113.60"})
        extra = await websockets.connect(  # another client of the proxy
            server.ws_url(), additional_headers={"X-Forwarded-For": "203.0.113.61"})
        for ws in (*opened, extra):
            await ws.close()
    finally:
        await server.stop()


def _limited_env(tmp_path) -> dict:
    env = {**os.environ, "PMARKET_JWT_SECRET": SECRET, "PMARKET_BCRYPT_ROUNDS": "4",
           "PMARKET_LOG_REQUESTS": "0", "PMARKET_AUTH_RATE_LIMIT_PER_S": "0.01",
           "PMARKET_AUTH_RATE_LIMIT_BURST": "3", "PMARKET_WORKER_PROCESS": "0",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for name in ("PMARKET_REDIS_URL", "PMARKET_DATABASE_URL", "PMARKET_SNAPSHOT_DIR",
                 "PMARKET_TRUSTED_PROXIES", "FORWARDED_ALLOW_IPS"):
        env.pop(name, None)
    return env


@pytest.mark.asyncio
async def test_pmarket_serve_ignores_forwarded_for_from_loopback(tmp_path):
    port = free_port()
    proc = subprocess.Popen([PMARKET, "serve", "--port", str(port)], cwd=tmp_path,
                            env=_limited_env(tmp_path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_healthy(port, proc)
        counts = await signins(f"http://127.0.0.1:{port}", 10)
        assert counts[429] >= 6, counts
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.asyncio
async def test_the_terminal_s_embedded_exchange_ignores_forwarded_for(tmp_path, monkeypatch):
    from pmarket.tui.embedded import EmbeddedServer

    for name, value in _limited_env(tmp_path).items():
        if name.startswith("PMARKET_"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("PMARKET_TRUSTED_PROXIES", raising=False)
    server = EmbeddedServer(tmp_path / "tui.db", bcrypt_rounds=4).start()
    try:
        counts = await signins(server.url, 10)
        assert counts[429] >= 6, counts
    finally:
        server.stop()


@pytest.mark.asyncio
async def test_the_access_log_names_the_address_the_limits_count(tmp_path, caplog):
    import json
    import logging

    server = await start_server("embedded", tmp_path, log_requests=True,
                                trusted_proxies=("10.9.0.0/16",))
    try:
        with caplog.at_level(logging.INFO, logger="pmarket.server.access"):
            async with httpx.AsyncClient(base_url=server.url) as http:
                await http.get("/events", headers={"X-Forwarded-For": "6.6.6.6"})
        lines = [json.loads(r.getMessage()) for r in caplog.records
                 if r.name == "pmarket.server.access"]
        assert lines and all(line["client"] == "127.0.0.1" for line in lines), lines
    finally:
        await server.stop()
