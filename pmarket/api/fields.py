"""The rules of what a request may carry: field types and the base of request bodies.

Money and prices are accepted as decimal strings or JSON numbers and become exact integer
units here (``Amount``, ``Price``, ``FeeRate``); a value that is not exact to the unit is
a 422, never rounded. Every field and every query parameter applies the input limits of
``pmarket.engine.limits`` (the engine applies the same rules to its commands): text has
no control characters or lone surrogates and a maximum length, timestamps need a zone and
fall between 1970 and 9999 UTC, numbers are size-checked before any arithmetic. A breach
is 422 ``invalid_field`` naming the field and the rule. Whether a price lies on its
market's tick grid is the engine's check (its ``invalid_price`` rejection is a 422 too).
Request bodies (``In``) refuse unknown fields, so no client can set a field it should not.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pmarket.engine import limits, timers, units

MAX_QUANTITY = units.MAX_QUANTITY
MAX_BATCH = 20
MAX_OUTCOMES = limits.MAX_OUTCOMES
MIN_TIMEOUT_S = timers.MIN_TIMEOUT_MS // 1000
MAX_TIMEOUT_S = timers.MAX_TIMEOUT_MS // 1000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _fail(message: str) -> PydanticCustomError:
    """A validation error whose message is ``message`` alone (no "Value error, ")."""
    return PydanticCustomError("invalid_field", message)


def to_units(value: Any) -> int:
    """A decimal string or number as exact integer units (422 when it is not exact)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise _fail("must be a decimal string or a number")
    try:
        return units.to_units(value, "value")  # checks the size before any arithmetic
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _positive_amount(value: int) -> int:
    if value <= 0:
        raise _fail("must be greater than 0")
    if value > units.MAX_AMOUNT:
        raise _fail(f"must be at most {units.format_money(units.MAX_AMOUNT)}")
    return value


def _price_range(value: int) -> int:
    if not 0 < value < units.SCALE:
        raise _fail("must be strictly between 0 and 1")
    return value


_DECIMAL_SCHEMA = WithJsonSchema({
    "anyOf": [{"type": "string", "pattern": r"^\d+(\.\d+)?$",
               "maxLength": limits.MAX_DECIMAL_CHARS}, {"type": "number"}],
    "description": "a decimal string (at most 40 characters, no exponent) or a number, "
                   "exact (never rounded)",
})
Amount = Annotated[int, BeforeValidator(to_units), AfterValidator(_positive_amount),
                   _DECIMAL_SCHEMA]
"""Money in a request, as integer units."""
Price = Annotated[int, BeforeValidator(to_units), AfterValidator(_price_range),
                  _DECIMAL_SCHEMA]
"""A price in a request, as integer units (grid checked by the engine)."""


def _fee_rate_range(value: int) -> int:
    if not 0 <= value <= units.MAX_FEE_RATE:
        raise _fail(f"must be from 0 to {units.format_units(units.MAX_FEE_RATE, 2)}")
    return value


FeeRate = Annotated[int, BeforeValidator(to_units), AfterValidator(_fee_rate_range),
                    _DECIMAL_SCHEMA]
"""A taker fee rate: a decimal from 0 to 0.25, exact to 4 places (units)."""
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY, strict=True)]
Id = Annotated[int, Field(ge=1, le=limits.MAX_ID, strict=True)]
"""An id in a request body: a JSON integer (not a boolean, a string or a decimal)."""
Flag = Annotated[bool, Field(strict=True)]
"""A boolean in a request body: JSON ``true`` or ``false`` only (not 1, "yes", "true")."""

_MAX_DIGITS = 30


def plain_digits(value: Any) -> Any:
    """A path or query integer as written in a URL: ASCII digits only — no sign, space,
    decimal point, underscore or another script's digits ("+1", " 1", "1_0" and
    U+0661 are refused, where ``int()`` would read them). Non-strings (a default, a
    value from Python) and the empty string are left to the integer type."""
    if not isinstance(value, str) or value == "":
        return value
    if not (value.isascii() and value.isdigit()):
        raise _fail("must be a whole number written in ASCII digits 0-9 (no sign, "
                    "space or decimal point)")
    if len(value) > _MAX_DIGITS:
        raise _fail(f"must be at most {_MAX_DIGITS} digits long")
    return int(value)


PlainDigits = BeforeValidator(plain_digits)
"""``plain_digits`` as a validator, for path and query parameters (``server.params``)."""


def _text_rule(max_chars: int) -> AfterValidator:
    """The input limits' text rule (``limits.text_problem``) as a validator."""
    def check(value: str) -> str:
        problem = limits.text_problem(value, max_chars)
        if problem is not None:
            raise _fail(problem)
        return value

    return AfterValidator(check)


def text(max_chars: int, min_chars: int = 0, **schema: Any) -> Any:
    """A text field: at most ``max_chars`` characters, no control characters and no lone
    surrogates (``limits``). Extra keywords go to the OpenAPI schema only."""
    return Annotated[str, Field(min_length=min_chars, max_length=max_chars,
                                json_schema_extra=schema or None), _text_rule(max_chars)]


def _email(value: str) -> str:
    # Sign-up and sign-in store and look up the address stripped and lower-cased, which
    # can lengthen it ("İ" lower-cases to two characters): the stored form must fit too.
    if len(value.strip().lower()) > limits.MAX_EMAIL:
        raise _fail(f"must be at most {limits.MAX_EMAIL} characters long once lower-cased")
    return value


def _password_bytes(value: str) -> str:
    if len(value.encode("utf-8")) > 72:
        raise _fail("password must be at most 72 bytes (bcrypt's limit)")
    return value


def _utc_time(value: datetime) -> datetime:
    """A timestamp with a zone, between 1970 and 9999 UTC once its offset is applied."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise _fail("give a time zone (e.g. 2030-01-01T00:00:00Z)")
    problem = limits.time_ms_problem((value - _EPOCH) // _MS)  # never overflows
    if problem is not None:
        raise _fail(problem)
    return value


_ISO_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]{1,9})?)?"
    r"([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)")
_TIME_RULE = "must be an ISO 8601 date-time string with a time zone (e.g. 2030-01-01T00:00:00Z)"


def _iso_text(value: Any) -> Any:
    """Only an ISO 8601 string with a zone (or, from Python, an aware ``datetime``):
    pydantic alone would read a number — 1, "99999999999", 1.5e14 — as Unix seconds or
    milliseconds (the unit flipping at 2e10)."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise _fail(f"{_TIME_RULE}, not a JSON {_json_type(value)}")
    if _ISO_DATETIME.fullmatch(value) is None:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9:.,]+", value):
            raise _fail("give a time zone (e.g. 2030-01-01T00:00:00Z)")
        raise _fail(_TIME_RULE)
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


UtcTime = Annotated[datetime, BeforeValidator(_iso_text), AfterValidator(_utc_time)]
"""A timestamp in a request or a query: an ISO 8601 string with a zone, 1970-01-01 ..
9999-12-31 UTC (no Unix numbers)."""
Email = Annotated[text(limits.MAX_EMAIL, 3), Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
                  AfterValidator(_email)]
SignInEmail = Annotated[text(limits.MAX_EMAIL), AfterValidator(_email)]
Name = text(limits.MAX_USER_NAME, 1)
Password = Annotated[text(limits.MAX_PASSWORD), AfterValidator(_password_bytes)]
"""A new password; its strength is checked by ``passwords.password_problem`` at sign-up
(422 ``weak_password``), which needs the e-mail too."""
SignInPassword = text(limits.MAX_PASSWORD)
SearchText = text(limits.MAX_SEARCH)
"""Free text of a query string (``GET /events?q=``)."""


def _client_order_id(value: str) -> str:
    problem = limits.client_order_id_problem(value)
    if problem is not None:
        raise _fail(problem)
    return value


ClientOrderId = Annotated[str, Field(min_length=1, max_length=limits.MAX_CLIENT_ORDER_ID,
                                     json_schema_extra={"pattern": "^[ -~]+$"}),
                          AfterValidator(_client_order_id)]
"""At most 64 printable ASCII characters (U+0020-U+007E); ``_client_order_id`` covers
the text rule."""


def _slug(value: str) -> str:
    problem = limits.slug_problem(value)
    if problem is not None:
        raise _fail(problem)
    return value


class In(BaseModel):
    """Base of request bodies: unknown fields are an error.

    Field *names* are client text too, and an unknown one is quoted in the error: a name
    holding a control character or a lone surrogate is refused before that happens.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _printable_field_names(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if not (type(key) is str and key.isprintable() and len(key) <= 100) and \
                        limits.text_problem(key, 100) is not None:
                    raise _fail("field names must be printable text of at most 100 "
                                "characters")
        return data


# --- admin texts ------------------------------------------------------------

Title = text(limits.MAX_TITLE, 1)
Text = text(limits.MAX_DESCRIPTION)
Category = text(limits.MAX_CATEGORY)
Slug = Annotated[text(limits.MAX_SLUG, pattern="^[a-z0-9-]*$"), AfterValidator(_slug)]
OutcomeName = text(limits.MAX_OUTCOME_NAME, 1)
TickSize = Annotated[int, BeforeValidator(to_units), _DECIMAL_SCHEMA]
"""A market's tick size in a request, as integer units (which ticks exist: the engine)."""
