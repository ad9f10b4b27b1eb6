"""The client against the real embedded server: every answer parses into its type."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal

import pytest

from pmarket.client import (
    ApiError,
    AsyncClient,
    BookMessage,
    Client,
    FillMessage,
    OrderSpec,
    TradeMessage,
)
from tests.client.conftest import ADMIN

_n = itertools.count()


def user(server) -> Client:
    api = Client(server.url)
    i = next(_n)
    api.signup(f"u{i}@example.com", f"User {i}", "a-long-password")
    api.onramp("100")
    return api


def test_trading_round_trip_parses_every_object(server):
    admin = Client(server.url)
    admin.admin_signin(*ADMIN)
    event = admin.create_event("Rain tomorrow?", ["Rain"], category="weather")
    mid = event.outcomes[0].market_id
    ann, bob = user(server), user(server)
    placed = ann.place_order(mid, "yes", "buy", 10, "0.40")
    assert placed.order.status == "open" and placed.order.price == Decimal("0.40")
    assert ann.orderbook(mid, view="no").best_ask == Decimal("0.60")
    taken = bob.place_order(mid, "no", "buy", 4, Decimal("0.60"))
    assert taken.order.status == "filled" and taken.trades[0].kind == "mint"
    assert ann.positions().items[0].yes_quantity == 4
    assert ann.portfolio().total_value == Decimal(100)
    assert ann.market_trades(mid).items[0].price == Decimal("0.40")
    assert ann.candles(mid).items[0].volume == 4
    assert ann.events(q="rain").total >= 1
    assert ann.market(mid).open_interest == 4
    modified = ann.modify_order(placed.order.id, quantity=8)
    assert modified.order.quantity == 8
    assert ann.cancel_order(placed.order.id).status == "cancelled"
    assert admin.audit().ok


def test_a_resolution_parses_into_its_winner_settled_positions_and_payouts(server):
    admin = Client(server.url)
    admin.admin_signin(*ADMIN)
    event = admin.create_event("Who wins?", ["Ann", "Bob"])
    assert event.resolution is None and event.winner() is None
    ann_mid, bob_mid = (o.market_id for o in event.outcomes)
    ann = user(server)
    ann.split_event(event.id, 5)
    resolved = admin.resolve_event(event.id, bob_mid).event
    assert resolved.resolution is not None and not resolved.resolution.void
    assert resolved.resolution.winning_outcome_id == bob_mid
    assert resolved.winner() is not None and resolved.winner().name == "Bob"
    assert [o.result for o in ann.event(event.id).outcomes] == ["lost", "won"]
    assert ann.market(ann_mid).result == "no" and ann.market(bob_mid).result == "yes"
    settled = {p.market_id: p for p in ann.positions(event_id=event.id).items}
    assert all(p.settled for p in settled.values())
    assert settled[bob_mid].mark_price == Decimal(1)
    payouts = ann.payouts(event_id=event.id)
    assert payouts.total == 2
    assert {(p.outcome_name, p.yes_quantity, p.amount) for p in payouts.items} == {
        ("Ann", 5, Decimal(0)), ("Bob", 5, Decimal(5))}
    assert payouts.items[0].paid_at == resolved.resolution.resolved_at


def test_server_errors_arrive_as_typed_api_errors(server):
    ann = user(server)
    with pytest.raises(ApiError) as err:
        ann.offramp("1000")
    assert err.value.status == 409
    with pytest.raises(ApiError) as err:
        ann.order(999_999)
    assert err.value.status == 404
    with pytest.raises(ApiError) as err:
        ann.audit()
    assert err.value.status in (401, 403)


def test_batch_keeps_errors_in_place(server):
    admin = Client(server.url)
    admin.admin_signin(*ADMIN)
    mid = admin.create_event("Batch?", []).outcomes[0].market_id
    ann = user(server)
    results = ann.place_batch([OrderSpec(mid, "yes", "buy", 1, "0.10"),
                               OrderSpec(mid, "yes", "sell", 1, "0.90")])
    assert not isinstance(results[0], ApiError)
    assert isinstance(results[1], ApiError)


async def test_stream_keeps_a_local_book_and_sees_fills(server):
    admin = Client(server.url)
    admin.admin_signin(*ADMIN)
    mid = admin.create_event("Streamed?", []).outcomes[0].market_id
    ann, bob = user(server), user(server)
    ann.place_order(mid, "yes", "buy", 10, "0.40")
    api = AsyncClient(server.url, token=bob.token)
    seen: list[object] = []
    async with api.stream() as stream:
        await stream.subscribe(f"book:{mid}", f"trades:{mid}", "user")
        await asyncio.to_thread(bob.place_order, mid, "no", "buy", 4, "0.60")
        async with asyncio.timeout(10):
            while not (any(isinstance(m, FillMessage) for m in seen)
                       and any(isinstance(m, TradeMessage) for m in seen)
                       and stream.books[mid].bids.get(Decimal("0.40")) == 6):
                seen.append(await stream.recv())
    assert isinstance(seen[0], BookMessage)
    await api.close()


def test_api_keys_sessions_and_disabling_through_the_client(server, monkeypatch):
    admin = Client(server.url)
    admin.admin_signin(*ADMIN)
    mid = admin.create_event("Keys?", ["Yes"]).outcomes[0].market_id
    ann = user(server)
    made = ann.create_api_key("bot")
    assert made.key and made.key.startswith("pmk_") and made.scopes == ["read", "trade"]
    monkeypatch.setenv("PMARKET_API_KEY", made.key)
    monkeypatch.setenv("PMARKET_URL", server.url)
    with Client.from_env() as bot:
        placed = bot.place_order(mid, "yes", "buy", 1, "0.10")
        assert bot.me().id == ann.user.id
        listed = ann.api_keys()
        assert [k.id for k in listed] == [made.id] and not hasattr(listed.items[0], "key")
        ann.delete_api_key(made.id)
        with pytest.raises(ApiError) as err:
            bot.balance()
        assert err.value.status == 401
    monkeypatch.delenv("PMARKET_API_KEY")
    with pytest.raises(ValueError, match="PMARKET_API_KEY"):
        Client.from_env()
    disabled = admin.disable_user(ann.user.id)
    assert disabled.id == ann.user.id
    with pytest.raises(ApiError) as err:
        ann.order(placed.order.id)
    assert err.value.status == 401
    admin.enable_user(ann.user.id)
    ann.signin(ann.user.email, "a-long-password")
    assert ann.order(placed.order.id).status == "cancelled"  # disabling cancelled it
    ann.signout_all()
    with pytest.raises(ApiError) as err:
        ann.balance()
    assert err.value.status == 401
