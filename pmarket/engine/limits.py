"""Input limits: the one place that says what pmarket accepts and therefore can store.

Everything a client controls passes these rules twice: at the HTTP edge
(``pmarket.api.fields``, a 422 ``invalid_field``) and again in the engine's command
handlers (a ``rejected`` event with reason ``invalid_field``), because commands also
arrive without the HTTP layer (Redis, the simulator, embedded callers). The rules are
chosen so that every value that passes can be stored by every database backend
(SQLite and PostgreSQL), encoded by the bus (orjson, strict UTF-8) and turned into a
``datetime``:

- **Text** (``text_problem``): no NUL or other control character (U+0000-U+001F,
  U+007F-U+009F; PostgreSQL refuses NUL outright) and no lone surrogate
  (U+D800-U+DFFF, which JSON's ``"\\ud800"`` escape produces but UTF-8 cannot encode,
  so neither the database drivers nor orjson can write it); at most a fixed number of
  characters per field (``MAX_*`` below), never more than its database column holds.
- **client_order_id** (``client_order_id_problem``): 1 to 64 printable ASCII characters
  (U+0020-U+007E).
- **Timestamps** (``time_ms_problem``): whole Unix milliseconds from 1970-01-01T00:00Z
  to 9999-12-31T23:59:59.999Z, judged after applying the client's UTC offset: Python's
  ``datetime`` (and so the worker) cannot represent year 10000.
- **Numbers**: decimal strings of at most ``MAX_DECIMAL_CHARS`` characters and without
  an exponent, integers of at most ``MAX_DIGITS`` digits (enforced by
  ``units.to_units``, which every parser of money and prices goes through, so a value
  like ``"1e999999"`` never reaches Decimal arithmetic).
- **Ids** a command may introduce (a depositing user): ``1 .. MAX_ID``, a BIGINT.

Invariant: this module is pure (no I/O, no clock; the engine's purity test covers it)
and every ``*_problem`` function returns ``None`` for an acceptable value or a short
phrase saying which rule the value breaks, never echoing the raw value (which may be
exactly the thing that cannot be printed or stored). Callers prefix the field's name.
It is compiled with the engine core (mypyc), since the order path calls it.
"""

from __future__ import annotations

from typing import Final

MIN_TIME_MS: Final = 0
"""1970-01-01T00:00:00.000Z in Unix milliseconds: the earliest storable timestamp."""
MAX_TIME_MS: Final = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z in Unix milliseconds: the latest storable timestamp."""
TIME_RANGE: Final = "1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z"

MAX_TITLE: Final = 500
MAX_DESCRIPTION: Final = 10_000
MAX_CATEGORY: Final = 100  # events.category is VARCHAR(100)
MAX_SLUG: Final = 200  # events.slug is VARCHAR(200)
MAX_OUTCOME_NAME: Final = 200  # markets.name is VARCHAR(200)
MAX_OUTCOMES: Final = 100
MAX_CLIENT_ORDER_ID: Final = 64
MAX_EMAIL: Final = 320  # users.email / admins.email are VARCHAR(320)
MAX_USER_NAME: Final = 200  # users.name / admins.name are VARCHAR(200)
MAX_PASSWORD: Final = 1000
"""Characters of a password as sent (bcrypt itself reads at most 72 bytes of it)."""
MAX_SEARCH: Final = 200
"""Characters of a search query (``GET /events?q=``)."""

MAX_DECIMAL_CHARS: Final = 40
"""Longest decimal string accepted for money, prices and ticks (checked before parsing)."""
MAX_DIGITS: Final = 40
"""Most digits of a number given as an integer or a Decimal (checked before arithmetic)."""

MAX_ID: Final = 2**62
"""Largest id a client may name or introduce (fits a signed BIGINT with room to spare)."""

_C1_END: Final = 0x9F
_SURROGATES: Final = (0xD800, 0xDFFF)


def text_problem(value: object, max_chars: int) -> str | None:
    """Why ``value`` is not storable text of at most ``max_chars`` characters, or None.

    The common case costs two C-level calls (``len`` and ``str.isprintable``); only text
    with a character outside the printable set is scanned for what exactly it holds
    (``isprintable`` is also false for harmless characters such as U+00A0 or U+200D,
    which are accepted). Length is checked first, so the scan is bounded.
    """
    if not isinstance(value, str):
        return "must be a string"
    n = len(value)
    if n > max_chars:
        return f"must be at most {max_chars} characters long (got {n})"
    if value.isprintable():
        return None
    return _bad_character(value)


def _bad_character(value: str) -> str | None:
    """The first control character or lone surrogate in ``value``, described, or None."""
    low, high = _SURROGATES
    for i, ch in enumerate(value):
        code = ord(ch)
        if code < 0x20 or 0x7F <= code <= _C1_END:
            return (f"must not contain control characters (U+{code:04X} at position {i}); "
                    f"NUL and other control characters are refused")
        if low <= code <= high:
            return (f"must not contain a lone surrogate (U+{code:04X} at position {i}); "
                    f"it is not a Unicode character and cannot be stored as UTF-8")
    return None


def check_text(value: object, what: str, max_chars: int) -> str:
    """``value`` if it passes ``text_problem``.

    Raises:
        ValueError: "``what`` <the rule it breaks>".
    """
    problem = text_problem(value, max_chars)
    if problem is not None:
        raise ValueError(f"{what} {problem}")
    assert isinstance(value, str)
    return value


def client_order_id_problem(value: object) -> str | None:
    """Why ``value`` is not a client order id (1-64 printable ASCII characters), or None."""
    if isinstance(value, str):
        n = len(value)
        if 0 < n <= MAX_CLIENT_ORDER_ID and value.isascii() and value.isprintable():
            return None  # the only path a valid id takes: three C-level checks
        if n == 0:
            return "must not be empty"
        if n > MAX_CLIENT_ORDER_ID:
            return f"must be at most {MAX_CLIENT_ORDER_ID} characters long (got {n})"
        for i, ch in enumerate(value):
            code = ord(ch)
            if not 0x20 <= code <= 0x7E:
                return (f"must be printable ASCII (U+0020-U+007E); U+{code:04X} at "
                        f"position {i} is not")
    return "must be a string"


def time_ms_problem(value: object) -> str | None:
    """Why ``value`` is not a storable Unix-millisecond timestamp, or None."""
    if type(value) is not int:
        return "must be a whole number of Unix milliseconds"
    if MIN_TIME_MS <= value <= MAX_TIME_MS:
        return None
    return f"must fall between {TIME_RANGE}"


def id_problem(value: object) -> str | None:
    """Why ``value`` is not an id a client may introduce (1 .. ``MAX_ID``), or None."""
    if type(value) is not int:
        return "must be a whole number"
    if 0 < value <= MAX_ID:
        return None
    return f"must be from 1 to {MAX_ID}"


def slug_problem(value: object) -> str | None:
    """Why ``value`` is not a slug (at most 200 of a-z, 0-9 and "-"; may be empty), or None."""
    problem = text_problem(value, MAX_SLUG)
    if problem is not None:
        return problem
    assert isinstance(value, str)
    if value.isascii() and all(ch.isdigit() or ch.islower() or ch == "-" for ch in value):
        return None
    return "may only contain lowercase letters a-z, digits and hyphens"


def account_problem(email: object, name: object, password: object) -> str | None:
    """Why an account's email, name or password breaks the text rule, or None.

    For account paths outside the HTTP schemas (``pmarket admin create``): the email is
    judged as stored, stripped and lower-cased.
    """
    problem = text_problem(email, MAX_EMAIL)
    if problem is None and isinstance(email, str) and \
            len(email.strip().lower()) > MAX_EMAIL:
        problem = f"must be at most {MAX_EMAIL} characters long once lower-cased"
    if problem is not None:
        return f"email {problem}"
    problem = text_problem(name, MAX_USER_NAME)
    if problem is not None:
        return f"name {problem}"
    problem = text_problem(password, MAX_PASSWORD)
    if problem is not None:
        return f"password {problem}"
    return None
