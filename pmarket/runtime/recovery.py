"""The engine service's durable log and snapshots: what a restart rebuilds state from.

The event stream is the engine's write-ahead log (``eventlog`` owns its format): every
delivery carries the stamped commands that produced it. Replaying those commands, in
stream order, onto the snapshot the log continues from rebuilds the engine exactly (the
engine is deterministic).

A snapshot file is ``Engine.snapshot()`` plus a ``"service"`` key naming the last event
stream entry it covers; ``Engine.restore`` ignores the extra key, so the same file feeds
``pmarket db reconcile --snapshot``. It is written atomically (temporary file, fsync,
rename, fsync of the directory): a crash leaves the old snapshot or the new one, never
a torn file.

Invariant: ``replay`` applies each sequence number at most once and in order, and
refuses (``RecoveryError``) a log with a hole, since state built over a hole would be
silently wrong.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import orjson

from pmarket.engine.engine import Engine

from .eventlog import LoggedBatch

SERVICE_KEY = "service"
"""Key of the service's own metadata inside a snapshot file."""

START_ID = "0-0"
"""Stream position before the first entry."""


class RecoveryError(RuntimeError):
    """The snapshot and the log cannot be combined into a trustworthy state."""


def replay(engine: Engine, batch: LoggedBatch) -> list[str]:
    """Re-apply a logged batch's commands not yet in ``engine``; their message ids.

    A batch at or below ``engine.last_seq`` (a delivery written twice because an
    append's outcome was unknown and it was retried) is skipped.

    Raises:
        RecoveryError: the batch starts after a missing seq.
    """
    applied: list[str] = []
    for message_id, cmd in batch.commands:
        if cmd.seq <= engine.last_seq:
            continue
        if cmd.seq != engine.last_seq + 1:
            raise RecoveryError(f"the log jumps from seq {engine.last_seq} to {cmd.seq} "
                                f"at event stream entry {batch.entry_id}")
        engine.apply(cmd)
        applied.append(message_id)
    return applied


@dataclass(slots=True)
class Snapshot:
    """A loaded snapshot: the engine and the event stream entry it covers."""

    engine: Engine
    last_event_id: str


def snapshot_path(directory: str | os.PathLike[str], shard: str) -> Path:
    """Where the snapshot of ``shard`` lives in ``directory``."""
    return Path(directory) / f"engine-{shard}.snapshot.json"


def write_snapshot(path: Path, state: dict, *, last_event_id: str, shard: str,
                   written_ms: int) -> None:
    """Write ``state`` (``Engine.snapshot()``) atomically with the service metadata.

    Runs in a thread: ``state`` must be a fresh dict nobody mutates meanwhile.
    """
    state[SERVICE_KEY] = {"last_event_id": last_event_id, "shard": shard,
                          "written_ms": written_ms}
    data = orjson.dumps(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename itself is durable only once the directory entry is.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_snapshot(path: Path) -> Snapshot | None:
    """The snapshot at ``path``, or None if there is none yet.

    Raises:
        RecoveryError: the file exists but is not a snapshot of this service.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        state = orjson.loads(data)
        meta = state.pop(SERVICE_KEY)
        return Snapshot(Engine.restore(state), meta["last_event_id"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise RecoveryError(f"{path} is not an engine service snapshot: {exc}") from None
