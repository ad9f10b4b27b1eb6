"""Expected failures of any ``pmarket`` command, said in one or two lines.

A user who points a command at a database that does not exist, types a malformed URL,
starts it while Redis is down or presses Ctrl+C made no programming error: they get a
line that says what is wrong and a line that says what to do, on stderr, and a non-zero
exit status, never a traceback. ``describe`` recognises those failures wherever in a
command they surface; anything it does not recognise is a bug and keeps its traceback.
``pmarket --debug COMMAND`` shows the traceback of every failure.

Exit statuses: 1 a service could not be reached or an operation failed, 2 the call or
its configuration is wrong (``EXIT_BAD_CONFIGURATION``), 130 interrupted (Ctrl+C).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EXIT_FAILED = 1
EXIT_BAD_CONFIGURATION = 2
EXIT_DATABASE_IN_USE = 3  # another process writes the database (server.dblock)
EXIT_INTERRUPTED = 130

DATABASE_URL_EXAMPLES = ("postgresql+psycopg://USER@HOST:5432/DB or sqlite:///path/pmarket.db; "
                         "set --database-url or PMARKET_DATABASE_URL")
REDIS_URL_EXAMPLE = "redis://HOST:6379/0; set --redis-url or PMARKET_REDIS_URL"


@dataclass(frozen=True)
class Failure:
    """What went wrong (``message``), what to do (``hint``, may be empty), the exit code."""

    message: str
    hint: str = ""
    code: int = EXIT_FAILED

    def lines(self) -> list[str]:
        return [f"error: {self.message}"] + ([self.hint] if self.hint else [])


def describe(exc: BaseException) -> Failure | None:
    """The expected failure ``exc`` (or one of its causes) is, or None for a bug."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for recognise in _RECOGNISERS:
            failure = recognise(current)
            if failure is not None:
                return failure
        current = current.__cause__ or current.__context__
    return None


def first_line(text: str) -> str:
    """The driver's message without SQLAlchemy's wrapping and background link."""
    text = re.sub(r"^\([\w.]+\) ", "", text.strip())
    text = text.split("\n(Background on this error")[0]
    text = re.sub(r"\s+", " ", text)
    return text[:300]


def _interrupted(exc: BaseException) -> Failure | None:
    if isinstance(exc, KeyboardInterrupt):
        return Failure("interrupted", code=EXIT_INTERRUPTED)
    return None


def _database(exc: BaseException) -> Failure | None:
    try:
        from sqlalchemy import exc as sa_exc
    except ImportError:  # pragma: no cover - a dependency
        return None
    if isinstance(exc, sa_exc.ArgumentError) and "URL" in str(exc):
        return Failure(f"malformed database URL: {first_line(str(exc))}",
                       f"expected {DATABASE_URL_EXAMPLES}", EXIT_BAD_CONFIGURATION)
    if isinstance(exc, sa_exc.NoSuchModuleError):
        return Failure(f"unsupported database URL: {first_line(str(exc))}",
                       f"expected {DATABASE_URL_EXAMPLES}", EXIT_BAD_CONFIGURATION)
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        detail = first_line(str(exc.orig) if exc.orig is not None else str(exc))
        missing = re.search(r'database "([^"]+)" does not exist', detail)
        if missing:
            return Failure(f"the PostgreSQL database {missing.group(1)!r} does not exist",
                           f"create it (createdb {missing.group(1)}) or point --database-url"
                           " / PMARKET_DATABASE_URL at an existing one")
        if "unable to open database file" in detail:
            return Failure(f"cannot open the SQLite database file: {detail}",
                           "check that its directory exists and is writable")
        return Failure(f"cannot use the database: {detail}",
                       "is the database server running and the URL right "
                       "(--database-url / PMARKET_DATABASE_URL)?")
    return None


def _redis(exc: BaseException) -> Failure | None:
    if isinstance(exc, ValueError) and "Redis URL must specify" in str(exc):
        return Failure(f"malformed Redis URL: {exc}", f"expected {REDIS_URL_EXAMPLE}",
                       EXIT_BAD_CONFIGURATION)
    try:
        import redis.exceptions
    except ImportError:  # pragma: no cover - a dependency
        return None
    from pmarket.bus.values import BusUnavailable

    if isinstance(exc, redis.exceptions.ConnectionError | BusUnavailable):
        return Failure(f"Redis is unreachable: {first_line(str(exc))}",
                       "start Redis, or fix --redis-url / PMARKET_REDIS_URL")
    return None


def _files(exc: BaseException) -> Failure | None:
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError |
                  NotADirectoryError) and exc.filename is not None:
        return Failure(f"{exc.filename}: {exc.strerror}")
    return None


_RECOGNISERS = (_interrupted, _database, _redis, _files)
