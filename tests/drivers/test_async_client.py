"""The asyncio driver against the sink server and a scripted asyncio server."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from smtpx import (
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from smtpx._async import AsyncLMTP, AsyncSMTP, AsyncSMTP_SSL
from smtpx.testing import SinkServer

TIMEOUT = 5
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _client(port: int, timeout: float = TIMEOUT) -> AsyncSMTP:
    return AsyncSMTP("127.0.0.1", port, local_hostname="client.test", timeout=timeout)


@contextlib.asynccontextmanager
async def scripted(handler: Handler) -> AsyncIterator[int]:
    """Serve one connection with *handler*; yield its port."""
    errors: list[BaseException] = []
    done = asyncio.Event()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except Exception as exc:
            errors.append(exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            done.set()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(TIMEOUT):
                await done.wait()
        server.close()
        await server.wait_closed()
    if errors:
        raise errors[0]


async def greet_and_ehlo(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: list[bytes]
) -> None:
    writer.write(b"220 test.example ESMTP\r\n")
    seen.append(await reader.readline())
    assert seen[-1].lower().startswith(b"ehlo ")
    writer.write(b"250-test.example\r\n250 PIPELINING\r\n")
    await writer.drain()


async def read_rest(reader: asyncio.StreamReader, seen: list[bytes]) -> None:
    """Record lines until the client closes; answer QUIT."""
    while line := await reader.readline():
        seen.append(line)


# ------------------------------------------------------------------ sink server


def test_starttls_login_and_send() -> None:
    with SinkServer(starttls=True, auth={"alice": "s3cret"}) as server:

        async def main() -> dict[str, tuple[int, bytes]]:
            async with AsyncSMTP(server.host, server.port, "client.test") as smtp:
                assert not smtp._tls_active
                await smtp.starttls(context=server.client_context())
                assert smtp._tls_active
                await smtp.login("alice", "s3cret")
                return await smtp.sendmail(
                    "alice@example.org", ["bob@example.org"], "Subject: hi\n\nhello\n"
                )

        assert asyncio.run(main()) == {}
        message = server.wait_for_messages(1)[0]
    assert message.content == b"Subject: hi\r\n\r\nhello\r\n"
    assert message.tls and message.auth_login == "alice"
    assert message.rcpt_tos == ("bob@example.org",)


def test_implicit_tls() -> None:
    with SinkServer(implicit_tls=True) as server:

        async def main() -> None:
            context = server.client_context()
            async with AsyncSMTP_SSL(server.host, server.port, context=context) as smtp:
                assert smtp._tls_active
                await smtp.sendmail("a@example.org", "b@example.org", b"hi\r\n")

        asyncio.run(main())
        assert server.wait_for_messages(1)[0].tls


def test_starttls_verifies_the_certificate_by_default() -> None:
    with SinkServer(starttls=True) as server:

        async def main() -> None:
            smtp = AsyncSMTP(server.host, server.port, "client.test", timeout=TIMEOUT)
            assert (await smtp.connect())[0] == 220
            with pytest.raises(ssl.SSLCertVerificationError):
                await smtp.starttls()  # the test CA is not in the system's trust store
            assert smtp.sock is None
            with pytest.raises(SMTPServerDisconnected):
                await smtp.noop()

        asyncio.run(main())


def test_lmtp_refusal_after_data() -> None:
    with SinkServer(lmtp=True, refuse_after_data={"full@example.org"}) as server:

        async def main() -> dict[str, tuple[int, bytes]]:
            async with AsyncLMTP(server.host, server.port, "client.test") as smtp:
                return await smtp.sendmail(
                    "a@example.org", ["ok@example.org", "full@example.org"], b"hi\r\n"
                )

        refused = asyncio.run(main())
    assert list(refused) == ["full@example.org"]
    assert refused["full@example.org"][0] == 550


def test_lmtp_all_refused_after_data_raises() -> None:
    with SinkServer(lmtp=True, refuse_after_data={"full@example.org"}) as server:

        async def main() -> None:
            async with AsyncLMTP(server.host, server.port, "client.test") as smtp:
                await smtp.sendmail("a@example.org", ["full@example.org"], b"hi\r\n")

        with pytest.raises(SMTPRecipientsRefused):
            asyncio.run(main())


def test_bytes_body_is_normalized_and_dot_stuffed() -> None:
    with SinkServer() as server:

        async def main() -> None:
            async with _client(server.port) as smtp:
                body = b"Subject: x\n\n.leading dot\n..two\nbare\rcr\r\nend"
                await smtp.sendmail("a@example.org", ["b@example.org"], body)

        asyncio.run(main())
        content = server.wait_for_messages(1)[0].content
    assert content == b"Subject: x\r\n\r\n.leading dot\r\n..two\r\nbare\r\ncr\r\nend\r\n"


def test_concurrent_tasks_share_one_client() -> None:
    with SinkServer() as server:

        async def main() -> list[dict[str, tuple[int, bytes]]]:
            async with _client(server.port) as smtp:

                async def send(n: int) -> dict[str, tuple[int, bytes]]:
                    body = f"Subject: {n}\r\n\r\n" + f"line {n}\r\n" * 2000
                    return await smtp.sendmail(f"s{n}@example.org", [f"r{n}@example.org"], body)

                return await asyncio.gather(*(send(n) for n in range(4)))

        assert asyncio.run(main()) == [{}] * 4
        messages = server.wait_for_messages(4)
    for message in messages:
        n = message.mail_from[1]
        assert message.rcpt_tos == (f"r{n}@example.org",)
        assert message.content == f"Subject: {n}\r\n\r\n".encode() + f"line {n}\r\n".encode() * 2000


# ------------------------------------------------------------- scripted server


def test_line_break_in_address_sends_nothing() -> None:
    async def main() -> None:
        seen: list[bytes] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await greet_and_ehlo(reader, writer, seen)
            line = await reader.readline()
            seen.append(line)
            assert line.lower().startswith(b"quit"), line
            writer.write(b"221 bye\r\n")
            await read_rest(reader, seen)

        async with scripted(handler) as port, _client(port) as smtp:
            with pytest.raises(ValueError):
                await smtp.sendmail("a@example.org\r\nRCPT TO:<x@evil>", ["b@x.org"], "hi")
            with pytest.raises(ValueError):
                await smtp.mail("a@example.org\nRCPT TO:<x@evil>")
        assert len(seen) == 2  # EHLO and QUIT only

    asyncio.run(main())


def test_malformed_reply_is_a_protocol_error_and_closes() -> None:
    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"220 test.example ESMTP\r\n")
            await reader.readline()
            writer.write(b"hello there\r\n")
            await read_rest(reader, [])

        async with scripted(handler) as port:
            smtp = _client(port)
            await smtp.connect()
            with pytest.raises(SMTPProtocolError):
                await smtp.ehlo()
            assert smtp.sock is None
            with pytest.raises(SMTPServerDisconnected):
                await smtp.noop()

    asyncio.run(main())


def test_eof_mid_reply_is_a_disconnect() -> None:
    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"220 test.example ESMTP\r\n")
            await reader.readline()
            writer.write(b"250-test.example\r\n250 PIPE")

        async with scripted(handler) as port:
            smtp = _client(port)
            await smtp.connect()
            with pytest.raises(SMTPServerDisconnected):
                await smtp.ehlo()
            assert smtp.sock is None

    asyncio.run(main())


def test_dripping_server_times_out_the_whole_reply() -> None:
    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"220 test.example ESMTP\r\n")
            await reader.readline()
            with contextlib.suppress(OSError):
                for byte in b"250-" + b"x" * 100:  # one byte at a time, never ending
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.05)

        async with scripted(handler) as port:
            smtp = _client(port, timeout=0.5)
            await smtp.connect()
            started = time.monotonic()
            with pytest.raises(SMTPTimeoutError) as info:
                await smtp.ehlo()
            assert time.monotonic() - started < 1.5
            assert isinstance(info.value, TimeoutError)
            assert smtp.sock is None

    asyncio.run(main())


def test_cancellation_mid_reply_closes_the_client() -> None:
    async def main() -> None:
        release = asyncio.Event()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await greet_and_ehlo(reader, writer, [])
            await reader.readline()  # NOOP: answered only in part, never finished
            writer.write(b"250-still ")
            await writer.drain()
            await read_rest(reader, [])
            release.set()

        async with scripted(handler) as port:
            smtp = _client(port)
            await smtp.connect()
            await smtp.ehlo()
            task = asyncio.create_task(smtp.noop())
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert smtp.sock is None
            with pytest.raises(SMTPServerDisconnected):
                await smtp.noop()
            async with asyncio.timeout(TIMEOUT):
                await release.wait()  # the server saw the connection end

    asyncio.run(main())


def test_cancellation_mid_data_closes_the_client() -> None:
    async def main() -> None:
        cancelled = asyncio.Event()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await greet_and_ehlo(reader, writer, [])
            for reply in (b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"):
                await reader.readline()
                writer.write(reply)
            await cancelled.wait()  # reads none of the content: the client's writes block

        async with scripted(handler) as port:
            smtp = _client(port)
            await smtp.connect()
            body = b"a line of the message\r\n" * 1_000_000  # more than the buffers hold
            task = asyncio.create_task(smtp.sendmail("a@x.org", ["b@x.org"], body))
            await asyncio.sleep(0.3)
            assert smtp.sock is not None and smtp.sock.transport.get_write_buffer_size() > 0
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            cancelled.set()
            assert smtp.sock is None
            with pytest.raises(SMTPServerDisconnected):
                await smtp.rset()

    asyncio.run(main())


def test_constructor_does_no_io() -> None:
    smtp = AsyncSMTP("192.0.2.1", 25)  # TEST-NET: connecting would hang or fail
    assert smtp.sock is None
    assert repr(smtp) == "<AsyncSMTP not connected>"
