"""The input limits (``pmarket.engine.limits``) and the engine commands that apply them.

Each case issue 11 names has a test here, at the level it belongs to: the rule itself,
the number parser every client goes through (``units.to_units``), and the engine
command that must refuse it when it arrives without the HTTP layer. A refused command
is a ``rejected`` event with reason ``invalid_field`` that changes nothing and, like
every event, can be encoded for the bus (it never echoes the poison).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from pmarket.bus.codec import encode_events
from pmarket.cli import load_commands
from pmarket.db.types import from_ms, to_ms
from pmarket.engine import (
    CreateEvent,
    Deposit,
    Engine,
    Outcome,
    PlaceBatch,
    PlaceOrder,
    Side,
    TimeInForce,
    UpdateEvent,
    limits,
)
from pmarket.engine.events import Reason, of_kind
from pmarket.engine.units import decimal_text_problem, parse_amount, parse_price, to_units
from pmarket.tui.format import parse_decimal, parse_quantity

YEAR_10000_MS = to_ms(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)) + 14 * 3_600_000
""""9999-12-31T23:59:59-14:00": year 10000 once the offset is applied."""


# --- the rules ------------------------------------------------------------------------


@pytest.mark.parametrize("char", ["\x00", "\x01", "\t", "\n", "\x1f", "\x7f", "\x80", "\x85",
                                  "\x9f", "\ud800", "\udbff", "\udc00", "\udfff"])
def test_control_characters_and_lone_surrogates_are_refused(char):
    problem = limits.text_problem(f"ab{char}cd", 100)
    assert problem is not None and f"U+{ord(char):04X} at position 2" in problem


@pytest.mark.parametrize("text", ["", "plain", "Ωμέγα", "\U0001f468\u200d\U0001f469",
                                  "\u00a0nbsp", "\u200e", "\U0010fffd", "tab\u3000wide"])
def test_every_other_character_is_accepted(text):
    assert limits.text_problem(text, 100) is None
    text.encode("utf-8")  # and it can be stored as UTF-8


def test_length_is_counted_in_characters_and_checked_first():
    assert limits.text_problem("é" * 200, 200) is None
    assert "at most 200 characters" in limits.text_problem("é" * 201, 200)
    assert limits.text_problem(None, 10) == "must be a string"
    with pytest.raises(ValueError, match=r"^title must not contain control"):
        limits.check_text("a\x00", "title", 10)


def test_client_order_ids_are_1_to_64_printable_ascii_characters():
    assert limits.client_order_id_problem(" ~" * 32) is None
    for bad, words in (("", "empty"), ("x" * 65, "at most 64"), ("a\x00", "U+0000"),
                       ("é", "U+00E9"), ("a\ud800", "U+D800"), ("\x7f", "U+007F"),
                       (5, "string")):
        assert words in limits.client_order_id_problem(bad), bad


def test_timestamps_span_1970_to_9999_utc():
    last = to_ms(datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC))
    assert last == limits.MAX_TIME_MS and limits.MIN_TIME_MS == 0
    for ok in (0, 1, last):
        assert limits.time_ms_problem(ok) is None
    for bad in (-1, last + 1, YEAR_10000_MS, 2**63, -(2**63)):
        assert "1970-01-01" in limits.time_ms_problem(bad)
    assert limits.time_ms_problem(True) is not None and limits.time_ms_problem(1.0) is not None


def test_from_ms_names_an_out_of_range_time_instead_of_crashing_in_datetime():
    assert from_ms(limits.MAX_TIME_MS) == datetime(9999, 12, 31, 23, 59, 59, 999_000,
                                                   tzinfo=UTC)
    for bad in (YEAR_10000_MS, -1, 10**30):
        with pytest.raises(ValueError, match=f"timestamp {bad} ms is outside"):
            from_ms(bad)


def test_slugs_and_ids():
    assert limits.slug_problem("") is None and limits.slug_problem("a-0z") is None
    assert "lowercase" in limits.slug_problem("A")
    assert "lowercase" in limits.slug_problem("é")
    assert limits.id_problem(limits.MAX_ID) is None
    assert limits.id_problem(0) and limits.id_problem(limits.MAX_ID + 1)


# --- numbers: sized before any arithmetic ---------------------------------------------


@pytest.mark.parametrize(("value", "words"), [
    ("1e999999", "exponent"), ("1e400000", "exponent"), ("1E5", "exponent"),
    ("1" * 41, "41 characters"), ("0." + "0" * 38 + "1", "41 characters"),
    ("NaN", "finite"), ("-Infinity", "finite"), ("sNaN", "finite"), ("1_000", "decimal"),
    ("\u0661\u0662", "decimal"), ("²", "decimal"), (".", "decimal"), ("", "decimal"),
    (float("inf"), "finite"), (float("nan"), "finite"), (1e300, "out of range"),
    (10**40, "more than 40 digits"), (-(10**40), "more than 40 digits"),
    (Decimal("1E+100"), "out of range"), (Decimal("Infinity"), "finite"),
    ([1], "decimal number"),
])
def test_numbers_are_refused_by_their_size_or_form(value, words):
    with pytest.raises(ValueError, match=words):
        to_units(value, "amount")


def test_a_hostile_number_costs_microseconds_not_seconds():
    # "1e400000" once kept a server busy for 16.7 s in Decimal arithmetic.
    started = time.perf_counter()
    for value in ("1e400000", "1e999999", "9" * 40, 10**39):
        with pytest.raises(ValueError):
            parse_amount(value)
    assert time.perf_counter() - started < 1.0
    assert decimal_text_problem("1e400000") is not None  # refused by its text alone


def test_the_largest_accepted_numbers_convert_exactly():
    assert to_units("9" * 35 + ".9999") == int("9" * 39)  # 40 characters: no rounding
    assert to_units(" 12.5 ") == 125_000 and to_units("+.5") == 5_000
    assert to_units(10**39) == 10**43
    assert parse_price(0.57) == 5_700 and to_units(Decimal("0.0001")) == 1


def test_the_terminal_parses_numbers_through_the_same_rule():
    assert parse_decimal("0.57") == Decimal("0.57")
    for text in ("1e999999", "1" * 41, "NaN", "\u0661"):
        assert parse_decimal(text) is None
    assert parse_quantity("12") == 12
    assert parse_quantity("²") is None and parse_quantity("9" * 5000) is None


def test_admin_create_refuses_text_no_database_can_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'admins.db'}"
    for args, words in ((["--email", "a\x00@x.io", "--name", "A"], "email must not contain"),
                        (["--email", "a@x.io", "--name", "A\x01"], "name must not contain")):
        result = CliRunner().invoke(load_commands(), [
            "admin", "create", *args, "--password", "password 123", "--database-url", url])
        assert result.exit_code == 2 and words in result.output, result.output


# --- the engine's commands --------------------------------------------------------------


def fresh() -> tuple[Engine, int]:
    eng = Engine()
    eng.apply(CreateEvent(title="Rain?", ts_ms=1_000))
    eng.apply(Deposit(user_id=1, amount=10**10))
    return eng, 1


def rejected_for(eng: Engine, cmd) -> dict:
    before = eng.digest()
    events = eng.apply(cmd)
    encode_events(events)  # every event, a rejection included, can go on the bus
    (rejection,) = of_kind(events, "rejected")
    assert eng.digest() == before, "a rejected command changed the state"
    return rejection


def order(**fields) -> PlaceOrder:
    return PlaceOrder(**{"user_id": 1, "market_id": 1, "outcome": Outcome.YES,
                         "side": Side.BUY, "price": 5_000, "quantity": 1, **fields})


@pytest.mark.parametrize("coid", ["a\x00b", "a\ud800", "é", "x" * 65, ""])
def test_place_order_refuses_a_client_order_id_no_backend_can_store(coid):
    eng, _ = fresh()
    r = rejected_for(eng, order(client_order_id=coid))
    assert r["reason"] == Reason.INVALID_FIELD and "client_order_id" in r["message"]
    assert r["client_order_id"] is None  # the poison is not echoed


def test_a_gtd_expiry_past_9999_is_refused_and_9999_itself_accepted():
    eng, _ = fresh()
    r = rejected_for(eng, order(tif=TimeInForce.GTD, expires_at_ms=YEAR_10000_MS))
    assert r["reason"] == Reason.INVALID_FIELD and "9999-12-31" in r["message"]
    events = eng.apply(order(tif=TimeInForce.GTD, expires_at_ms=limits.MAX_TIME_MS,
                             client_order_id=" ~" * 32))
    (placed,) = of_kind(events, "order")
    assert placed["status"] == "open" and placed["expires_at_ms"] == limits.MAX_TIME_MS


def test_a_batch_refuses_its_poisoned_items_alone():
    eng, _ = fresh()
    events = eng.apply(PlaceBatch(user_id=1, orders=(
        order(client_order_id="ok"), order(client_order_id="a\x00"),
        order(tif=TimeInForce.GTD, expires_at_ms=YEAR_10000_MS))))
    encode_events(events)
    assert [r["reason"] for r in of_kind(events, "rejected")] == [Reason.INVALID_FIELD] * 2
    assert [o["client_order_id"] for o in of_kind(events, "order")] == ["ok"]


@pytest.mark.parametrize(("fields", "name"), [
    ({"title": "Nul\x00title"}, "title"), ({"title": "a" * 501}, "title"),
    ({"description": "a\ud800"}, "description"), ({"category": "c" * 101}, "category"),
    ({"slug": "Bad Slug"}, "slug"), ({"slug": "a" * 201}, "slug"),
    ({"outcomes": ("A", "B\x01")}, "outcomes[1]"), ({"outcomes": ("a" * 201,)}, "outcomes[0]"),
    ({"close_time_ms": YEAR_10000_MS}, "close_time_ms"), ({"close_time_ms": -1}, "close_time_ms"),
])
def test_create_event_refuses_what_no_backend_can_store(fields, name):
    eng, _ = fresh()
    r = rejected_for(eng, CreateEvent(**{"title": "ok", **fields}))
    assert r["reason"] == Reason.INVALID_FIELD and r["message"].startswith(name)


@pytest.mark.parametrize(("fields", "name"), [
    ({"title": "a\x00"}, "title"), ({"description": "\x7f"}, "description"),
    ({"category": "\x85"}, "category"), ({"close_time_ms": YEAR_10000_MS}, "close_time_ms"),
])
def test_update_event_refuses_what_no_backend_can_store(fields, name):
    eng, _ = fresh()
    r = rejected_for(eng, UpdateEvent(event_id=1, **fields))
    assert r["reason"] == Reason.INVALID_FIELD and r["message"].startswith(name)


def test_the_largest_event_the_limits_allow_is_created():
    eng, _ = fresh()
    events = eng.apply(CreateEvent(
        title="\U0001f600" * 500, description="é" * 10_000, category="c" * 100,
        slug="a-" * 100, outcomes=tuple(f"{k:0200d}" for k in range(100)),
        close_time_ms=limits.MAX_TIME_MS))
    (event,) = of_kind(events, "event")
    assert len(event["markets"]) == 100 and event["close_time_ms"] == limits.MAX_TIME_MS


def test_a_deposit_cannot_open_an_account_whose_id_no_bigint_holds():
    eng, _ = fresh()
    for user in (2**63, 0, -5):
        r = rejected_for(eng, Deposit(user_id=user, amount=1))
        assert r["reason"] == Reason.INVALID_FIELD and r["user_id"] is None
