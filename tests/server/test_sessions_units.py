"""``Sessions``' cache rules, without a server: newer state always wins, junk is cheap."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmarket.server.errors import ApiError
from pmarket.server.security import Principal, create_token
from pmarket.server.sessions import KeyState, Sessions, UserState, is_write

SECRET = "s" * 20 + "unit-test-secret-0123456789"


def sessions(embedded: bool = True, **options) -> Sessions:
    bus = SimpleNamespace(keys=SimpleNamespace(prefix="unit"))
    return Sessions(None, bus, jwt_secret=SECRET, key_secret=b"k" * 32,  # type: ignore[arg-type]
                    embedded=embedded, **options)


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 5), st.booleans()),
                min_size=1, max_size=30))
def test_the_cache_keeps_the_state_of_the_highest_auth_seq_in_any_order(states):
    """Loads and polls race: whatever order their results arrive in, the user's cached
    state is the one written last in the database (highest ``auth_seq``)."""
    s = sessions()
    for seq, epoch, disabled in states:
        s._store_user(7, UserState(epoch, disabled, seq, time.monotonic()))
    top = max(seq for seq, _, _ in states)
    newest = [(e, d) for seq, e, d in states if seq == top][-1]
    cached = s.users[7]
    assert cached.seq == top and (cached.epoch, cached.disabled) == newest


def test_a_revoked_key_stays_revoked_when_an_older_load_arrives():
    s = sessions()
    s._store_key("d", KeyState(3, 7, True, True, 9, time.monotonic()))
    s._store_key("d", KeyState(3, 7, True, False, 4, time.monotonic()))  # read earlier
    assert s.keys["d"].revoked and 3 in s.revoked_keys
    assert not s.valid(Principal(7, "user", 0, 3, True))


def test_tokens_are_checked_against_the_users_epoch_and_flag():
    s = sessions()
    token = create_token(7, "user", SECRET, 60, epoch=2)
    assert s.check(token, "GET") is None  # unknown user: must be loaded
    s._store_user(7, UserState(2, False, 1, time.monotonic()))
    assert s.check(token, "POST") == Principal(7, "user", 2)
    s._store_user(7, UserState(3, False, 2, time.monotonic()))
    with pytest.raises(ApiError) as err:
        s.check(token, "GET")
    assert err.value.status == 401


def test_a_stale_deployment_server_refuses_user_credentials_but_not_admins():
    s = sessions(embedded=False, max_stale_s=0.0)
    s.last_sync = time.monotonic() - 1
    s._store_user(7, UserState(0, False, 1, time.monotonic()))
    with pytest.raises(ApiError) as err:
        s.check(create_token(7, "user", SECRET, 60), "GET")
    assert (err.value.status, err.value.code) == (503, "auth_unavailable")
    admin = s.check(create_token(1, "admin", SECRET, 60), "POST")
    assert admin is not None and admin.role == "admin"
    embedded = sessions(max_stale_s=0.0)  # the only server of its database: no refusal
    embedded.last_sync = time.monotonic() - 1
    embedded._store_user(7, UserState(0, False, 1, time.monotonic()))
    assert embedded.check(create_token(7, "user", SECRET, 60), "GET") is not None


def test_writes_are_every_method_but_get_head_and_options():
    assert [m for m in ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
            if is_write(m)] == ["POST", "PUT", "PATCH", "DELETE"]
