"""The matching engine: pure, deterministic, no I/O.

``Engine().apply(command) -> list[event]``; commands in ``commands``, events in
``events``, integer money and prices in ``units``. Nothing here touches the outside
world; the runtime (``pmarket.runtime``) runs the engine.

The core may run compiled with mypyc: ``pmarket.runtime.compiled.activate()``, called
by the root package ``pmarket`` before anything can import a core module, picks the
compiled modules or their sources (``compiled.mode`` says which).
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
    DisarmHeartbeat,
    EventStatus,
    Expire,
    Heartbeat,
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
    "DisarmHeartbeat",
    "Engine",
    "EventStatus",
    "Expire",
    "Heartbeat",
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
