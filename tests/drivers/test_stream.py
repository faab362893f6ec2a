"""The asyncio connection under AsyncSMTP (smtpx._async._stream.Stream), on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from smtpx._async import _stream
from smtpx._async._stream import Stream, open_stream

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def connected(handler: Handler) -> AsyncIterator[Stream]:
    server, port = await serve(handler)
    stream = await open_stream("127.0.0.1", port)
    try:
        yield stream
    finally:
        stream.abort()
        server.close()
        await server.wait_closed()


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 10))  # type: ignore[arg-type]


def test_read_returns_everything_received_then_empty_at_end_of_file() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 one\r\n")
        writer.write(b"250 two\r\n")
        await writer.drain()
        writer.close()

    async def main() -> None:
        async for stream in connected(handler):
            data = b""
            while True:
                chunk = await stream.read()
                if not chunk:
                    break
                data += chunk
            assert data == b"220 one\r\n250 two\r\n"
            assert await stream.read() == b""  # end of file stays end of file

    run(main())


def test_write_reaches_the_server_without_drain() -> None:
    seen: asyncio.Queue[bytes] = asyncio.Queue()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await seen.put(await reader.readline())
        writer.close()

    async def main() -> None:
        async for stream in connected(handler):
            stream.write(b"EHLO x\r\n")
            assert not stream.must_drain  # an idle transport takes a small write at once
            assert await seen.get() == b"EHLO x\r\n"

    run(main())


def test_unread_bytes_pause_reading_and_read_resumes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_stream, "_HIGH_WATER", 1000)
    flood = b"x" * 100_000

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(flood)
        await writer.drain()
        writer.close()

    async def main() -> None:
        async for stream in connected(handler):
            while not stream._reading_paused:
                await asyncio.sleep(0.01)
            assert stream.transport is not None and not stream.transport.is_reading()
            held = stream._unread
            await asyncio.sleep(0.05)
            assert stream._unread == held  # nothing more is taken while paused
            data = await stream.read()
            assert stream.transport.is_reading()
            while len(data) < len(flood):
                data += await stream.read()
            assert data == flood

    run(main())


def test_discard_drops_unread_bytes() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"250 planted\r\n")
        await writer.drain()
        await reader.read()  # wait for the client to close
        writer.close()

    async def main() -> None:
        async for stream in connected(handler):
            while not stream._received:
                await asyncio.sleep(0.01)
            stream.discard()
            stream.write(b"x")
            stream.close()
            assert await stream.read() == b""

    run(main())


def test_a_reset_connection_raises_on_read_and_on_drain() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()

    async def main() -> None:
        async for stream in connected(handler):
            try:
                assert await stream.read() == b""  # a clean end of file, or the reset
            except ConnectionError:
                pass
            stream.close()
            await stream.wait_closed()
            with pytest.raises(ConnectionResetError):
                await stream.drain()

    run(main())
