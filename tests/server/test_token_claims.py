"""Every claim of a token has one exact type and range (no server needed).

An attacker holding a validly signed token with ``sub`` = "9" * 30 got a 500 on every
route (a BIGINT overflow in the session check); ``sub`` U+0661 (an Arabic-Indic digit one)
passed ``str.isdigit`` as user 1; ``exp: "9999999999"`` and ``exp: 1e30`` were
accepted. Here arbitrary claim values signed with the right secret either name a user
by a plain ASCII-digit id within a positive BIGINT — with a known role, integer times
and nothing else — or are refused with ``InvalidToken``; never anything else. The same
check serves every route, the fast paths and the WebSocket (``test_auth_parity``).
"""

from __future__ import annotations

import re
import time

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmarket.server.security import (
    MAX_TIMESTAMP_S,
    InvalidToken,
    create_token,
    decode_token,
)

SECRET = "claims-test-secret-" + "Zx8Qw3Lm" * 5
NOW = int(time.time())

JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-2**70, 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
    st.sampled_from(["1", "01", "+1", " 1", "1 ", "\u0661", "\u00b2", "9" * 30,
                     "9223372036854775807", "9223372036854775808", "0", "-1", "1.0",
                     "1e3", "user", "admin",
                     "ADMIN", "9999999999", str(NOW + 3600)]))
JSON_VALUES = st.one_of(JSON_SCALARS, st.lists(JSON_SCALARS, max_size=2),
                        st.dictionaries(st.text(max_size=3), JSON_SCALARS, max_size=2))


def good_claims() -> dict:
    return {"sub": "42", "role": "user", "iat": NOW, "exp": NOW + 3600, "ep": 0}


def valid(claims: dict) -> bool:
    """The oracle, written apart from the server's code."""
    sub, role = claims.get("sub"), claims.get("role")
    if set(claims) - {"sub", "role", "exp", "iat", "ep"}:
        return False
    if not (isinstance(sub, str) and re.fullmatch(r"[1-9][0-9]*", sub, re.ASCII)
            and int(sub) < 2**63):
        return False
    if role not in ("user", "admin") or not isinstance(role, str):
        return False

    def time_ok(v):
        return type(v) is int and 0 <= v <= MAX_TIMESTAMP_S

    if "exp" not in claims or not time_ok(claims["exp"]) or claims["exp"] <= time.time():
        return False
    if "iat" in claims and not (time_ok(claims["iat"]) and claims["iat"] <= time.time() + 60):
        return False
    ep = claims.get("ep", 0)
    return type(ep) is int and 0 <= ep <= 2**62


@settings(max_examples=400, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.dictionaries(
    st.sampled_from(["sub", "role", "exp", "iat", "ep", "nbf", "aud", "jti", "x"]),
    st.one_of(JSON_VALUES, st.just(None).map(lambda _: "<drop>")), max_size=4))
def test_arbitrary_claims_authenticate_only_a_plain_digit_id(changes):
    claims = good_claims()
    for name, value in changes.items():
        if value == "<drop>":
            claims.pop(name, None)
        else:
            claims[name] = value
    try:
        token = jwt.encode(claims, SECRET, algorithm="HS256")
    except (TypeError, ValueError):
        return  # not encodable as a JWT: nobody can send it
    try:
        principal = decode_token(token, SECRET)
    except InvalidToken as exc:
        assert not valid(claims), (claims, str(exc))
        assert "Invalid" not in str(exc) and "codec" not in str(exc), str(exc)  # ours
        return
    assert valid(claims), claims
    assert str(principal.id) == claims["sub"] and 1 <= principal.id < 2**63
    assert principal.role == claims["role"]


NAMED = [("sub", "9" * 30), ("sub", "\u0661"), ("sub", " 7"), ("sub", 7),
         ("exp", "9999999999"), ("exp", 1e30), ("exp", 4_000_000_000.0), ("exp", True),
         ("iat", "1"), ("ep", True), ("ep", 1.0), ("role", "root"), ("role", ["user"]),
         ("nbf", 1_700_000_000)]


@pytest.mark.parametrize(("claim", "value"), NAMED,
                         ids=[f"{claim}={value!r}"[:40] for claim, value in NAMED])
def test_the_named_claims_are_refused_with_a_sentence_naming_them(claim, value):
    token = jwt.encode({**good_claims(), claim: value}, SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken, match=claim):
        decode_token(token, SECRET)


GARBAGE = {"x.y.z": "x.y.z", "undecodable header": "__4.e30.sig", "no dots": "garbage",
           "empty": "", "two parts": "a.b", "non-ASCII": "\u00fc.\u00fc.\u00fc",
           "5000 characters": "a" * 5000, "cut signature": None}


@pytest.mark.parametrize("name", list(GARBAGE))
def test_garbage_is_a_malformed_token_in_our_words(name):
    token = GARBAGE[name] or create_token(1, "user", SECRET, 60)[:-2]
    with pytest.raises(InvalidToken) as caught:
        decode_token(token, SECRET)
    message = str(caught.value)
    assert "malformed token" in message or "signature" in message, message
    assert "codec" not in message and "Invalid header" not in message


def test_a_token_create_token_makes_is_accepted():
    principal = decode_token(create_token(2**63 - 1, "admin", SECRET, 60, epoch=3), SECRET)
    assert (principal.id, principal.role, principal.epoch) == (2**63 - 1, "admin", 3)
