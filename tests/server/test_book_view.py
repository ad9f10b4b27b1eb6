"""The replica's book answers on their own: ``book_view`` at any depth and view, and the
encoded pages (``Replica.page``) kept until the books change, within their bounds."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from pmarket.engine.units import SCALE
from pmarket.server import marketdata
from pmarket.server.marketdata import MarketState, Seed
from tests.server.test_healing_units import _book, _replica

_LEVELS = st.dictionaries(st.integers(1, SCALE - 1), st.integers(1, 10**9), max_size=60)


@given(bids=_LEVELS, asks=_LEVELS, depth=st.none() | st.integers(1, 80),
       view=st.sampled_from(["yes", "no"]), last=st.none() | st.integers(1, SCALE - 1))
def test_book_view_at_a_depth_is_the_whole_book_cut(bids, asks, depth, view, last):
    """The best ``depth`` levels (picked without sorting the whole book) are the whole
    sorted book's first ``depth``, in either view."""
    m = MarketState(1, 1, "m", 1, "active", last, dict(bids), dict(asks))
    whole = marketdata.book_view(m, view)
    cut = marketdata.book_view(m, view, depth)
    if depth is not None:
        whole["bids"], whole["asks"] = whole["bids"][:depth], whole["asks"][:depth]
    assert cut == whole


def test_book_pages_are_dropped_by_each_delivery_and_a_seed_and_stay_bounded(monkeypatch):
    """``Replica.book_page``: the same bytes while the books stand still, a fresh page
    after any delivery or seed, and never more than the page and byte bounds kept."""
    replica = _replica()
    m = replica.markets[1]
    for i in range(200):
        m.bids[100 + i] = i + 1
    page = replica.book_page(m)
    assert page == orjson.dumps(marketdata.book_view(m))
    assert replica.book_page(m) is page  # built once
    assert replica.apply(_book(11, 11, 4000, 3))
    assert orjson.loads(replica.book_page(m))["bids"][0] == {"price": "0.40", "quantity": 3}
    replica._install(Seed({1: MarketState(1, 1, "m", 100, "active")}, {1: [1]}, 11, "6-0"))
    assert orjson.loads(replica.book_page(replica.markets[1]))["bids"] == []
    m = replica.markets[1]
    for i in range(200):
        m.bids[100 + i] = i + 1
    monkeypatch.setattr(marketdata, "BOOK_PAGE_BYTES", 20_000)
    monkeypatch.setattr(marketdata, "BOOK_PAGES", 50)
    for depth in range(1, 201):
        for view in ("yes", "no"):
            assert replica.book_page(m, view, depth) == orjson.dumps(
                marketdata.book_view(m, view, depth))
            assert replica._page_bytes == sum(map(len, replica._pages.values())) <= 20_000
            assert len(replica._pages) <= 50
