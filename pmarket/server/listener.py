"""The server's listening socket, bound before anything else starts.

``pmarket serve`` binds its port before migrations, the journal and recovery, then
hands the socket to uvicorn: a port that is taken is refused in a moment with one line
(``PortUnavailable``), not after a recovery that then fails to bind.

Invariant: the socket returned is bound and listening, and close-on-exec (a spawned
child never holds the port).
"""

from __future__ import annotations

import errno
import socket

BACKLOG = 2048


class PortUnavailable(OSError):
    """The address cannot be listened on (in use, not allowed, no such interface)."""


def bind_listener(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (port 0: any free port).

    SO_REUSEADDR lets a restart bind at once after a crash left connections in
    TIME_WAIT; Linux still refuses a second *listening* socket on the port, which is why
    the socket listens right away.

    Raises:
        PortUnavailable: with a one-line message naming the port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            reason = "is already in use (is another pmarket serve running?)"
        elif exc.errno == errno.EACCES:
            reason = "needs privileges this user does not have"
        else:
            reason = f"cannot be listened on: {exc.strerror or exc}"
        raise PortUnavailable(exc.errno, f"port {port} on {host} {reason}") from None
    return sock
