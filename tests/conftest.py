"""Settings every test session shares.

Tests sign up hundreds of users from 127.0.0.1 within seconds, which the per-address
limits of sign-up/sign-in, public market data and WebSockets
(``PMARKET_AUTH_RATE_LIMIT_*``, ``PMARKET_PUBLIC_RATE_LIMIT_*``, ``PMARKET_WS_*``) are
there to refuse. The suite runs with them raised (servers started through
``Settings.load``; tests/server/harness.py sets the same values explicitly); the tests of
those limits set their own values.
"""

from __future__ import annotations

import os

for _name in ("PMARKET_AUTH_RATE_LIMIT_PER_S", "PMARKET_AUTH_RATE_LIMIT_BURST",
              "PMARKET_PUBLIC_RATE_LIMIT_PER_S", "PMARKET_PUBLIC_RATE_LIMIT_BURST",
              "PMARKET_WS_SUBSCRIBE_PER_S", "PMARKET_WS_SUBSCRIBE_BURST",
              "PMARKET_WS_MAX_CONNECTIONS_PER_IP", "PMARKET_WS_MESSAGES_PER_S",
              "PMARKET_WS_MESSAGES_BURST"):
    os.environ.setdefault(_name, "100000")
