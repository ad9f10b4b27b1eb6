"""The matching engine: pure, deterministic, no I/O.

``Engine().apply(command) -> list[event]``; commands in ``commands``, events in
``events``, integer money and prices in ``units``. ``runner`` is the only module here
that touches the outside world (asyncio).
"""

from . import events
from .commands import (
    CancelAll,
    CancelOrder,
    Command,
    Convert,
    CreateEvent,
    DeleteEvent,
    Deposit,
    EventStatus,
    Expire,
    Merge,
    MergeEvent,
    ModifyOrder,
    OrderType,
    Outcome,
    PlaceBatch,
    PlaceOrder,
    ResolveEvent,
    SelfTrade,
    Side,
    Split,
    SplitEvent,
    TimeInForce,
    UpdateEvent,
    Withdraw,
)
from .engine import Engine
from .events import Reason, as_dict
from .queries import AuditReport, BookView, MarketView
from .units import SCALE

__all__ = [
    "SCALE",
    "AuditReport",
    "BookView",
    "CancelAll",
    "CancelOrder",
    "Command",
    "Convert",
    "CreateEvent",
    "DeleteEvent",
    "Deposit",
    "Engine",
    "EventStatus",
    "Expire",
    "MarketView",
    "Merge",
    "MergeEvent",
    "ModifyOrder",
    "OrderType",
    "Outcome",
    "PlaceBatch",
    "PlaceOrder",
    "Reason",
    "ResolveEvent",
    "SelfTrade",
    "Side",
    "Split",
    "SplitEvent",
    "TimeInForce",
    "UpdateEvent",
    "Withdraw",
    "as_dict",
    "events",
]
