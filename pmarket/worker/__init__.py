"""The worker: projects engine events into the database, idempotently and in order.

``Projector`` writes deliveries (the events of a contiguous run of engine commands) and
the consumer position in one transaction; ``Reorderer`` holds deliveries that arrive
ahead of a missing one; ``Projector.skip`` steps over commands that never arrived and
records it. A delivery that cannot be stored whole is stored event by event and what
fails alone is parked (``salvage``); ``parked`` lists, replays and clears the parked
events and counts them for ``/health``. ``Worker`` (``loop``) runs all of it against the
bus: read, project, ack, park. See ``projector`` for the delivery policy and ``salvage``
for the parking policy.
"""

from .batch import CANDLE_INTERVALS
from .loop import WORKER_GROUP, Worker, WorkerStats
from .projector import DEFAULT_CONSUMER, ProjectionResult, Projector
from .reorder import Reorderer
from .writer import ConcurrentProjection

__all__ = [
    "CANDLE_INTERVALS",
    "DEFAULT_CONSUMER",
    "WORKER_GROUP",
    "ConcurrentProjection",
    "ProjectionResult",
    "Projector",
    "Reorderer",
    "Worker",
    "WorkerStats",
]
