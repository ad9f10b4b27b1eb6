"""Column types and value guards shared by every table.

Money, prices and quantities are ``BIGINT`` integer units (``pmarket.engine.units``);
times are timezone-aware UTC datetimes on both PostgreSQL and SQLite.

Invariant: a value that does not fit a signed 64-bit column is refused with
``ValueError`` by ``bounded`` before any statement is sent, a millisecond time outside
1970-01-01 .. 9999-12-31 UTC by ``from_ms`` (the input limits, ``pmarket.engine.limits``,
keep such values out of the engine in the first place), and every datetime read back
is aware and in UTC (SQLite stores them naive; ``UTCDateTime`` restores the zone).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.types import TypeDecorator

from pmarket.engine.limits import MAX_TIME_MS, MIN_TIME_MS, TIME_RANGE

BIGINT_MIN = -(2**63)
BIGINT_MAX = 2**63 - 1

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

BigId = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit key that autoincrements on SQLite too (only ``INTEGER PRIMARY KEY`` does)."""


class UTCDateTime(TypeDecorator):
    """A timestamp stored as UTC and always returned timezone-aware.

    Naive datetimes are refused on the way in: the projection never guesses a zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware UTC value")
        value = value.astimezone(UTC)
        # SQLite has no zone type; store the UTC wall time and restore the zone on read.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def from_ms(ms: int | None) -> datetime | None:
    """Unix milliseconds (the engine's clock) to an aware UTC datetime.

    Raises:
        ValueError: ``ms`` lies outside 1970-01-01 .. 9999-12-31 UTC (``limits``). The
            API and the engine refuse such times before they are accepted, so this is a
            last line of defence that names the value, not the first check.
    """
    if ms is None:
        return None
    if not MIN_TIME_MS <= ms <= MAX_TIME_MS:
        raise ValueError(f"timestamp {ms} ms is outside {TIME_RANGE}, the range every "
                         f"database backend can store; refusing to convert it")
    return EPOCH + timedelta(milliseconds=ms)


def to_ms(value: datetime | None) -> int | None:
    """An aware datetime to Unix milliseconds (inverse of ``from_ms`` to the ms)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


def bounded(value: int, what: str) -> int:
    """Return ``value`` if it fits a signed BIGINT column.

    Raises:
        ValueError: naming ``what`` and the value, when it would overflow the column.
    """
    if not BIGINT_MIN <= value <= BIGINT_MAX:
        raise ValueError(
            f"{what} = {value} does not fit a BIGINT column "
            f"({BIGINT_MIN} .. {BIGINT_MAX}); refusing to write it")
    return value
