"""The asyncio connection of ``AsyncSMTP``: one ``asyncio.Protocol`` for both directions.

It does what ``StreamReader`` and ``StreamWriter`` did for the client, and no more.
(The module also finds the connection's default local name for EHLO.)
An SMTP client reads whatever has arrived and hands it to the core's parser, and writes
whole command groups, so it needs neither a copy of the read buffer per ``read()`` nor a
``drain()`` coroutine per write while the transport is not paused.  That work is a large
part of an asyncio client's time per message (``bench/``, the 8-connection rows).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

from .._clientbase import default_local_hostname

__all__ = ["Stream", "local_hostname", "open_stream", "open_unix_stream"]

# Unread bytes after which reading pauses (flow control): a server that floods the
# connection cannot make the client buffer without bound while it is not reading.
_HIGH_WATER = 256 * 1024


class Stream(asyncio.Protocol):
    """Received bytes kept until ``read()``; writes straight to the transport."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._received: list[bytes] = []
        self._unread = 0
        self._reading_paused = False
        self._writing_paused = False
        self._eof = False
        self._error: BaseException | None = None
        self._read_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] = self._loop.create_future()

    # --------------------------------------------------------- protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._received.append(data)
        self._unread += len(data)
        if self._unread > _HIGH_WATER and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        # Keep our half open over TCP, as StreamReader did (the client may still close
        # with QUIT); over TLS the SSL layer closes on its own.
        return not self._over_tls

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._error = exc
        self._wake_reader()
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("Connection lost"))
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --------------------------------------------------------------- reading

    async def read(self) -> bytes:
        """All bytes received and not read yet, waiting for some; ``b""`` once the
        server has closed.  Raises the error that cut the connection, if one did."""
        while not self._received:
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            self._read_waiter = self._loop.create_future()
            try:
                await self._read_waiter
            finally:
                self._read_waiter = None
        received = self._received
        data = received[0] if len(received) == 1 else b"".join(received)
        self._received = []
        self._unread = 0
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    def discard(self) -> None:
        """Forget what was received and not read (RFC 3207 section 4.2, at STARTTLS)."""
        self._received = []
        self._unread = 0
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()

    # --------------------------------------------------------------- writing

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    @property
    def must_drain(self) -> bool:
        """True when a writer has to wait in ``drain()`` (the common case is False)."""
        return self._writing_paused or self.transport is None or self.transport.is_closing()

    async def drain(self) -> None:
        """Wait until the transport takes more data; raise if the connection is gone."""
        if self.transport is None or self.transport.is_closing():
            await asyncio.sleep(0)  # let connection_lost() run first, as StreamWriter does
        if self._closed.done():
            raise ConnectionResetError("Connection lost")
        if self._writing_paused:
            self._drain_waiter = self._loop.create_future()
            await self._drain_waiter

    # ---------------------------------------------------------- the connection

    @property
    def _over_tls(self) -> bool:
        return self.transport is not None and self.get_extra_info("sslcontext") is not None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if self.transport is None:
            return default
        return self.transport.get_extra_info(name, default)

    async def start_tls(self, context: ssl.SSLContext, *, server_hostname: str | None) -> None:
        """The TLS handshake on this connection; the transport is replaced by a TLS one."""
        assert self.transport is not None
        self.discard()
        self.transport = await self._loop.start_tls(
            self.transport, self, context, server_hostname=server_hostname
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)


async def open_stream(host: str, port: int, **kwargs: Any) -> Stream:
    """``loop.create_connection`` with a ``Stream`` (keyword arguments passed on)."""
    loop = asyncio.get_running_loop()
    _, stream = await loop.create_connection(Stream, host, port, **kwargs)
    return stream


async def open_unix_stream(path: str) -> Stream:
    loop = asyncio.get_running_loop()
    _, stream = await loop.create_unix_connection(Stream, path)
    return stream


_found_hostname: list[str] = []  # found once per process: a DNS lookup, in a thread


async def local_hostname() -> str:
    """The default EHLO name.  Looked up (``socket.getfqdn``, which may block on DNS) in
    the loop's executor, once per process rather than once per connection."""
    if not _found_hostname:
        loop = asyncio.get_running_loop()
        _found_hostname.append(await loop.run_in_executor(None, default_local_hostname, socket))
    return _found_hostname[0]
