"""Server liveness on the bus, and the reaping of dead servers' consumer groups.

Each server reads the event stream in a group of its own (``server-<instance>``), which
``Streams.trim`` never cuts past. A server that stops cleanly deletes it; one that dies
(kill -9, a lost machine) would hold trimming back forever. So every server keeps a
*liveness mark* (``StreamKeys.alive``: a key with a time to live, renewed while it runs,
``keep_alive``), and servers delete the groups of instances whose mark expired and whose
consumers stayed idle (``reap_dead_groups``). A mark, not consumer idleness alone,
decides: Redis 7.0 does not count a blocking read that returned nothing as activity, so
an idle live server looks exactly like a dead one there.

``ServerLiveness`` is a part of ``base.Bus`` (which supplies ``instance`` and the
primitives it uses: leases, groups, consumers), so both transports share it.

Invariant: a group is deleted only when its server's mark has expired; a live server,
which renews its mark well within its time to live, never loses its group.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pmarket.bus.values import SERVER_GROUP_PREFIX, BusError, UnknownGroup

if TYPE_CHECKING:
    from pmarket.bus.values import ConsumerInfo, GroupInfo, StreamKeys

log = logging.getLogger(__name__)


class ServerLiveness:
    """Liveness marks and reaping (see the module docstring); a part of ``Bus``."""

    if TYPE_CHECKING:
        instance: str
        keys: StreamKeys

        async def lease_holder(self, key: str) -> str | None: ...
        async def hold_lease(self, key: str, token: str, ttl_ms: int) -> str | None: ...
        async def groups(self, stream: str) -> list[GroupInfo]: ...
        async def consumers(self, stream: str, group: str) -> list[ConsumerInfo]: ...
        async def delete_group(self, stream: str, group: str) -> bool: ...

    def server_group(self, instance: str | None = None) -> str:
        """The event stream group of server ``instance`` (default: this bus's instance)."""
        return f"{SERVER_GROUP_PREFIX}{instance or self.instance}"

    async def keep_alive(self, ttl_ms: int) -> bool:
        """Renew this instance's liveness mark (``StreamKeys.alive``) for ``ttl_ms``.

        A server renews it well within ``ttl_ms`` for as long as it runs; once it is gone
        (the process died, or stalled longer than ``ttl_ms``) other servers may reap the
        instance's group (``reap_dead_groups``).

        Returns:
            True if the mark was still there; False if it had expired (or this is the
            first call): the instance's group may have been reaped meanwhile.
        """
        key = self.keys.alive(self.instance)
        was = await self.lease_holder(key)
        holder = await self.hold_lease(key, self.instance, ttl_ms)
        if holder is not None:  # only this instance writes its mark
            raise BusError(f"liveness mark {key} is held by {holder!r}")
        return was == self.instance

    async def reap_dead_groups(
        self, stream: str, *, idle_ms: int, prefix: str = SERVER_GROUP_PREFIX
    ) -> list[str]:
        """Delete the groups of ``stream`` whose server is gone, so trimming can proceed.

        A group ``<prefix><instance>`` (not this bus's own) is deleted when both hold:
        the instance's liveness mark has expired (it has not run ``keep_alive`` for the
        mark's time to live), and none of the group's consumers read from it for at
        least ``idle_ms``. A live server keeps its mark, so its group is never taken; a
        server that stalled longer than that loses it and must create it again and
        resynchronise (``marketdata.Replica`` does). The check and the deletion are two
        steps: a server coming back between them is that same case.

        Returns:
            The names of the groups deleted.
        """
        reaped = []
        for info in await self.groups(stream):
            name = info.name
            if not name.startswith(prefix) or name == self.server_group():
                continue
            if await self.lease_holder(self.keys.alive(name[len(prefix):])) is not None:
                continue
            try:
                consumers = await self.consumers(stream, name)
            except UnknownGroup:
                continue
            if any(c.idle_ms < idle_ms for c in consumers):
                continue
            if await self.delete_group(stream, name):
                log.warning("bus: removed consumer group %s of %s: its server is gone (no "
                            "liveness mark, idle for %d ms or more); %d pending entries "
                            "released for trimming", name, stream, idle_ms, info.pending)
                reaped.append(name)
        return reaped
