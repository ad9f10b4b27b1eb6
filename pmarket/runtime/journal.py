"""Durability of the embedded exchange: the in-process bus's event stream, on disk.

The engine service's log is its event stream (``pmarket.runtime.recovery``): a snapshot
plus the deliveries after it rebuild the engine. Redis keeps that stream in a
deployment; the embedded ``MemoryBus`` would lose it with the process. ``JournaledBus``
is a ``MemoryBus`` that appends every entry written to the event stream to a journal
file (one ``<id>\\t<payload>`` line each) before anyone can observe the write — MemoryBus
writes never yield, so the line reaches the OS before the reply listener can hand the
engine's reply to a client — and rewrites the journal without the entries trimmed after
a snapshot. ``open_journaled_bus`` reloads the journal into a fresh bus at start, in
order; the engine service then recovers from its snapshot and these entries exactly as
it would from Redis, and the worker skips the deliveries it already projected (by seq).
Only one process may own a journal (reloading rewrites it): the embedded start takes the
database's lock (``dblock``) before it opens the journal.

Invariant: every event-stream entry a client could have seen the effect of is in the
journal (up to the OS: a process kill loses nothing; a power loss may lose the last
unflushed page unless ``fsync=True``), in stream order, until a snapshot covers it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pmarket.bus import Ack, Append, BusUnavailable, Delete, Fence, MemoryBus, StreamId
from pmarket.bus.values import parse_id


class JournaledBus(MemoryBus):
    """A ``MemoryBus`` whose event stream of one shard survives the process.

    Args:
        journal: the journal file.
        fsync: fsync after each write to the event stream (power-loss safety).
        **options: ``MemoryBus`` options (``prefix``, ``shard``...).
    """

    def __init__(self, journal: Path, *, fsync: bool = False, **options: Any):
        super().__init__(**options)
        self.journal_path = journal
        self.fsync = fsync
        self.events_key = self.events_stream()
        self._file = None

    def open_journal(self) -> None:
        self.journal_path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.journal_path, "ab")  # noqa: SIM115 - held open for appends

    async def write(self, appends: Sequence[Append] = (), acks: Sequence[Ack] = (),
                    deletes: Sequence[Delete] = (), fence: Fence | None = None,
                    ) -> list[list[StreamId]]:
        written = await super().write(appends, acks, deletes, fence)
        lines = [f"{sid}\t".encode() + entry_payload(entry) + b"\n"
                 for append, ids in zip(appends, written, strict=True)
                 if append.stream == self.events_key
                 for entry, sid in zip(append.entries, ids, strict=True)]
        if lines and self._file is not None:
            try:
                self._file.write(b"".join(lines))
                self._file.flush()
                if self.fsync:
                    os.fsync(self._file.fileno())
            except OSError as exc:  # cannot promise durability: stop taking writes
                raise BusUnavailable(f"journal write failed: {exc}") from exc
        return written

    async def _trim_below(self, stream: str, min_id: StreamId, approximate: bool) -> int:
        removed = await super()._trim_below(stream, min_id, approximate)
        if removed and stream == self.events_key:
            self._compact(parse_id(min_id))
        return removed

    def _compact(self, min_id: tuple[int, int]) -> None:
        """Rewrite the journal without the entries below ``min_id`` (atomic rename)."""
        kept = [(sid, payload) for sid, payload in read_journal(self.journal_path)
                if parse_id(sid) >= min_id]
        tmp = self.journal_path.with_suffix(self.journal_path.suffix + ".tmp")
        with open(tmp, "wb") as out:
            out.write(b"".join(f"{sid}\t".encode() + p + b"\n" for sid, p in kept))
            out.flush()
            os.fsync(out.fileno())
        if self._file is not None:
            self._file.close()
        os.replace(tmp, self.journal_path)
        self.open_journal()

    async def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        await super()._close()


def entry_payload(entry: Any) -> bytes:
    """The payload bytes of an outgoing entry (bytes, or (bytes, headers))."""
    return entry if isinstance(entry, bytes) else entry[0]


def read_journal(path: Path) -> list[tuple[str, bytes]]:
    """The journal's ``(id, payload)`` entries; a torn last line (a kill mid-write) is
    dropped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    entries = []
    for line in data.split(b"\n"):
        sid, tab, payload = line.partition(b"\t")
        if not tab or not payload:
            continue
        try:
            parse_id(sid.decode())
        except ValueError:
            continue
        entries.append((sid.decode(), payload))
    if entries and not data.endswith(b"\n"):
        entries.pop()  # the last line was cut short
    return entries


async def open_journaled_bus(journal: Path, **options: Any) -> JournaledBus:
    """A ``JournaledBus`` holding the journal's entries again (new ids, same order).

    The journal is rewritten with the new ids so later compaction compares like with
    like.
    """
    bus = JournaledBus(journal, **options)
    entries = read_journal(journal)
    if entries:
        await MemoryBus.write(bus, [Append(bus.events_key, [p for _, p in entries])])
    written = await bus.read(bus.events_key, "0-0", count=len(entries) + 1) if entries else []
    tmp = journal.with_suffix(journal.suffix + ".tmp")
    journal.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as out:
        out.write(b"".join(f"{m.id}\t".encode() + m.payload + b"\n" for m in written))
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, journal)
    bus.open_journal()
    return bus
