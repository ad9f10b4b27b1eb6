"""The database: SQLAlchemy models, connections and migrations.

PostgreSQL (psycopg 3) in deployment, SQLite embedded. The worker (``pmarket.worker``)
projects engine events into these tables; the server writes users and admins and reads
everything else. Money is always integer units in ``BIGINT`` columns.
"""

from .migrate import current_revision, head_revision, upgrade
from .models import (
    PROJECTED_TABLES,
    Admin,
    ApiKey,
    AuthSequence,
    Balance,
    Base,
    Candle,
    ConsumerPosition,
    Event,
    LedgerEntry,
    Market,
    Order,
    Outcome,
    Payout,
    Position,
    SkippedDelivery,
    Trade,
    User,
)
from .search import title_search
from .session import default_database_url, make_engine, normalize_url, session_factory
from .types import UTCDateTime, bounded, from_ms, to_ms

__all__ = [
    "PROJECTED_TABLES",
    "Admin",
    "ApiKey",
    "AuthSequence",
    "Balance",
    "Base",
    "Candle",
    "ConsumerPosition",
    "Event",
    "LedgerEntry",
    "Market",
    "Order",
    "Outcome",
    "Payout",
    "Position",
    "SkippedDelivery",
    "Trade",
    "UTCDateTime",
    "User",
    "bounded",
    "current_revision",
    "default_database_url",
    "from_ms",
    "head_revision",
    "make_engine",
    "normalize_url",
    "session_factory",
    "title_search",
    "to_ms",
    "upgrade",
]
