"""One embedded pmarket server in a background thread, for the HTTP-target tests.

The server harness (``tests/server/harness.py``) runs uvicorn inside an asyncio loop;
the simulator's HTTP target is blocking, so the loop gets a thread of its own here and
the tests talk to the server over real sockets like any client would.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from tests.server.harness import ADMIN_EMAIL, ADMIN_PASSWORD, start_server

__all__ = ["ADMIN_EMAIL", "ADMIN_PASSWORD", "ServerThread"]


class ServerThread:
    """An embedded server (SQLite in ``directory``) serving from a daemon thread.

    Args:
        directory: where the server keeps its database and snapshots.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="pmarket-server",
                                        daemon=True)

    def start(self) -> ServerThread:
        """Start serving; return once the server accepts connections.

        Raises:
            RuntimeError: if the server did not start within 60 s.
        """
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("the embedded server did not start within 60 s")
        if self._error is not None:
            raise RuntimeError("the embedded server failed to start") from self._error
        return self

    def stop(self) -> None:
        """Stop the server and wait for its thread."""
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            server = await start_server("embedded", self.directory)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self.url = server.url
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await server.stop()
