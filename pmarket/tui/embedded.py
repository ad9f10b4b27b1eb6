"""A whole exchange inside the terminal's process, for ``pmarket tui --embedded``.

``EmbeddedServer`` runs the server's own app (``pmarket.server.create_app``: server,
engine and worker over the in-process bus and SQLite) under uvicorn in a background
thread, on a free loopback port. Like ``pmarket serve`` it first takes the database's
lock (``pmarket.server.dblock``: a second exchange on the same file is refused with
``DatabaseLocked`` before anything is touched) and binds its socket, which it hands to
uvicorn. Invariant: ``start`` returns only once the server answers, and ``stop`` returns
only once it has shut down (engine snapshot written, lock released).
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from pathlib import Path

import httpx


class EmbeddedServer:
    """The pmarket server in a thread of this process.

    Args:
        database: SQLite file of the exchange (created if missing).
        port: Port to listen on (default: a free one).
        admin_email: First-start admin's email (none if not given).
        admin_password: That admin's password.
        bcrypt_rounds: Work factor of password hashes (tests pass a low one).
    """

    def __init__(self, database: Path | str = "pmarket.db", port: int | None = None, *,
                 admin_email: str | None = None, admin_password: str | None = None,
                 bcrypt_rounds: int | None = None) -> None:
        self.database = Path(database)
        self.port = port or 0  # 0: the port the socket gets when ``start`` binds it
        self.admin_email = admin_email
        self.admin_password = admin_password
        self.bcrypt_rounds = bcrypt_rounds
        self._server = None
        self._lock = None
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> EmbeddedServer:
        """Start serving and wait until ``/health`` answers.

        Raises:
            DatabaseLocked: another exchange runs on this database (nothing started).
            PortUnavailable: the port cannot be listened on.
            RuntimeError: The server did not come up within ``timeout`` seconds.
        """
        from pmarket.server.dblock import acquire_database_lock
        from pmarket.server.listener import bind_listener

        url = f"sqlite:///{self.database.resolve()}"
        self._lock = acquire_database_lock(url)
        try:
            sock = bind_listener("127.0.0.1", self.port)
        except BaseException:
            self._release_lock()
            raise
        self.port = sock.getsockname()[1]
        try:
            server = self._launch(url, sock)
        except BaseException:
            sock.close()
            self._release_lock()
            raise
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None or not self._thread.is_alive():
                self.stop()
                raise RuntimeError(f"the embedded server stopped: {self.error!r}")
            if server.started:
                try:
                    if httpx.get(self.url + "/health", timeout=2).status_code < 500:
                        return self
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the embedded server did not answer within {timeout:.0f}s")

    def _launch(self, url: str, sock: socket.socket):
        """Run uvicorn on ``sock`` in a thread; the ``uvicorn.Server``."""
        import uvicorn

        from pmarket.server import Settings, create_app
        from pmarket.server.connections import server_options

        settings = Settings.load(
            database_url=url, redis_url=None,
            admin_email=self.admin_email, admin_password=self.admin_password,
            bcrypt_rounds=self.bcrypt_rounds, log_requests=False)
        settings = dataclasses.replace(settings, redis_url=None)  # embedded, whatever the env
        app = create_app(settings)
        app.state.runtime.lock = self._lock  # released by the runtime's stop (and ours)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                log_level="warning", access_log=False,
                                lifespan="on", **server_options(app))
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._server = server

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # reported by start(), not lost in the thread
                self.error = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name="pmarket-embedded", daemon=True)
        self._thread.start()
        return server

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the server down and wait for it."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
