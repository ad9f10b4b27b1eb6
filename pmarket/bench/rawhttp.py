"""A minimal HTTP/1.1 client for load generators: one keep-alive connection, just enough
of the protocol (Content-Length bodies), far cheaper in CPU than httpx — on a 2-core
machine the generator must cost much less than the server it measures."""

from __future__ import annotations

import asyncio
import contextlib


class RawHttp:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol."""

    def __init__(self, host: str, port: int, token: str | None,
                 local_address: str | None = None):
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {token}\r\n".encode() if token else b""
        self.local_address = local_address
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        """Open the connection (from ``local_address`` when given: any 127.x.y.z address
        is this machine, so one host can play clients at many addresses)."""
        local = (self.local_address, 0) if self.local_address else None
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port,
                                                                 local_addr=local)

    async def request(self, method: str, path: str, body: bytes | None = None
                      ) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n".encode() + self.auth
        if body is not None:
            head += (b"Content-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n")
        self.writer.write(head + b"\r\n" + (body or b""))
        headers = await self.reader.readuntil(b"\r\n\r\n")
        status = int(headers[9:12])
        length = 0
        for line in headers.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        data = await self.reader.readexactly(length) if length else b""
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
