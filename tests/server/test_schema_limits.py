"""The request schemas accept exactly what the input limits allow (no server needed).

Property tests against an oracle that does not use ``pmarket.engine.limits``: a
timestamp with any UTC offset is accepted exactly when its instant lies in
1970-01-01 .. 9999-12-31T23:59:59.999 UTC, and a text field exactly when it has no
control character (Unicode category Cc) or lone surrogate (Cs) and fits its length.
Together with the engine applying the same module, this is what makes "the API accepts
it" imply "every backend can store it".
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from pmarket import api
from pmarket.api import fields

FIRST = datetime(1970, 1, 1, tzinfo=UTC)
LAST = datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)
TIME = TypeAdapter(fields.UtcTime)
OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


def accepts(adapter: TypeAdapter, value) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


def in_range(moment: datetime) -> bool:
    # Compare without converting: the instant may not exist as a UTC datetime.
    return moment >= FIRST and moment - LAST < timedelta(milliseconds=1)


@settings(max_examples=300, derandomize=True, database=None)
@given(local=st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.datetimes(min_value=datetime(9999, 12, 31), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.datetimes(min_value=datetime(1969, 12, 31), max_value=datetime(1970, 1, 1, 23))),
       offset=OFFSETS)
def test_a_time_is_accepted_exactly_when_its_utc_instant_is_in_1970_to_9999(local, offset):
    moment = local.replace(tzinfo=offset)
    assert accepts(TIME, moment.isoformat()) == in_range(moment), moment.isoformat()
    assert not accepts(TIME, local.isoformat())  # no zone: refused


TEXT_TYPES = {
    "title": (fields.Title, 500), "description": (fields.Text, 10_000),
    "category": (fields.Category, 100), "outcome": (fields.OutcomeName, 200),
    "name": (fields.Name, 200), "search": (fields.SearchText, 200),
}
ANY_TEXT = st.one_of(st.text(st.characters(exclude_categories=()), max_size=8),
                     st.builds(lambda c, n: c * n, st.characters(exclude_categories=("Cs",)),
                               st.sampled_from((199, 200, 201, 500, 501))))


@settings(max_examples=300, derandomize=True, database=None)
@given(field=st.sampled_from(sorted(TEXT_TYPES)), text=ANY_TEXT)
def test_a_text_is_accepted_exactly_when_it_is_storable_and_fits(field, text):
    annotation, limit = TEXT_TYPES[field]
    minimum = 1 if field in ("title", "outcome", "name") else 0
    storable = not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text)
    assert accepts(TypeAdapter(annotation), text) == (
        storable and minimum <= len(text) <= limit), (field, text)


@settings(max_examples=200, derandomize=True, database=None)
@given(text=st.text(st.characters(exclude_categories=()), max_size=70))
def test_a_client_order_id_is_accepted_exactly_when_it_is_1_to_64_printable_ascii(text):
    ok = 1 <= len(text) <= 64 and all(" " <= ch <= "~" for ch in text)
    assert accepts(TypeAdapter(api.OrderCreate), {
        "market_id": 1, "outcome": "yes", "side": "buy", "price": "0.5", "quantity": 1,
        "client_order_id": text}) == ok
