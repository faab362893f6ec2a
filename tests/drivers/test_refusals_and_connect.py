"""Paths the coverage report showed untested: ``deliver()`` when the sender is refused or
DATA is not answered 354, and the asyncio connect phase (a greeting other than 220,
"host:port", a missing LMTP socket, cancellation before the greeting), on both drivers
where both have them."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import pytest

import smtpx

from .scripted import Peer, scripted_server
from .test_deliver import SENDER, A, B, closed, deliver, greet, mail_line, rcpt_line, segment

MESSAGE = b"Subject: hi\r\n\r\nhello\r\n"


@pytest.fixture(params=["sync", "asyncio"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ------------------------------------------------------------ deliver() refusals


@pytest.mark.parametrize("pipelining", [True, False])
def test_deliver_sender_refused(driver: str, pipelining: bool) -> None:
    def handler(peer: Peer) -> None:
        greet(peer, *[b"PIPELINING"] * pipelining, b"SIZE 1000")
        if pipelining:
            assert segment(peer) == mail_line("SIZE=22") + rcpt_line(A) + rcpt_line(B) + b"data\r\n"
            peer.readline(), peer.readline(), peer.readline(), peer.readline()
            peer.send(
                b"553 5.1.8 bad sender\r\n" + b"503 5.5.1 no sender\r\n" * 2 + b"503 5.5.1 no\r\n"
            )
        else:
            peer.expect(mail_line("SIZE=22"))
            peer.send(b"553 5.1.8 bad sender\r\n")
        peer.expect(b"rset\r\n")
        peer.send(b"250 reset\r\n")
        closed(peer)

    with pytest.raises(smtpx.SMTPSenderRefused) as caught:
        deliver(driver, handler, MESSAGE, SENDER, [A, B])
    assert (caught.value.smtp_code, caught.value.sender) == (553, SENDER)


@pytest.mark.parametrize("pipelining", [True, False])
def test_deliver_data_not_answered_354(driver: str, pipelining: bool) -> None:
    def handler(peer: Peer) -> None:
        greet(peer, *[b"PIPELINING"] * pipelining)
        if pipelining:
            assert segment(peer) == mail_line() + rcpt_line(A) + b"data\r\n"
            for _ in range(3):
                peer.readline()
            peer.send(b"250 ok\r\n250 ok\r\n451 4.3.0 try later\r\n")
        else:
            for line, reply in [
                (mail_line(), b"250 ok"),
                (rcpt_line(A), b"250 ok"),
                (b"data\r\n", b"451 4.3.0 try later"),
            ]:
                peer.expect(line)
                peer.send(reply + b"\r\n")
        peer.expect(b"rset\r\n")
        peer.send(b"250 reset\r\n")
        closed(peer)

    with pytest.raises(smtpx.SMTPDataError) as caught:
        deliver(driver, handler, MESSAGE, SENDER, [A])
    assert (caught.value.smtp_code, caught.value.smtp_error) == (451, b"4.3.0 try later")
    result = caught.value.result  # type: ignore[attr-defined]
    assert [r.address for r in result.recipients] == [A]


# ------------------------------------------------------------ the connect phase


def _greeting_server(greeting: bytes):  # type: ignore[no-untyped-def]
    def handler(peer: Peer) -> None:
        peer.send(greeting)
        if greeting.startswith(b"220"):
            peer.expect(b"noop")
            peer.send(b"250 ok\r\n")
            peer.expect(b"quit")  # leaving the with block
            peer.send(b"221 bye\r\n")
        closed(peer)

    return handler


def test_async_greeting_other_than_220() -> None:
    """As ``SMTP(host, port)``: ``async with`` raises SMTPConnectError with the greeting
    and leaves nothing open; ``connect()`` returns the greeting, as smtplib's does."""

    async def enter(port: int) -> None:
        client = smtpx.AsyncSMTP("127.0.0.1", port, local_hostname="client.test", timeout=5)
        with pytest.raises(smtpx.SMTPConnectError) as caught:
            async with client:
                pass
        assert (caught.value.smtp_code, caught.value.smtp_error) == (554, b"5.3.2 go away")
        assert client.sock is None

    with scripted_server(_greeting_server(b"554 5.3.2 go away\r\n")) as (port, _):
        asyncio.run(enter(port))
    with (
        scripted_server(_greeting_server(b"554 5.3.2 go away\r\n")) as (port, _),
        pytest.raises(smtpx.SMTPConnectError),
    ):
        smtpx.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=5)

    async def connect(port: int) -> tuple[int, bytes]:
        client = smtpx.AsyncSMTP(local_hostname="client.test", timeout=5)
        try:
            return await client.connect("127.0.0.1", port)
        finally:
            await client.close()

    with scripted_server(_greeting_server(b"554 5.3.2 go away\r\n")) as (port, _):
        assert asyncio.run(connect(port)) == (554, b"5.3.2 go away")


def test_host_port_string(driver: str) -> None:
    """smtplib takes "host:port" in connect() and the constructor."""

    async def run(port: int) -> tuple[int, bytes]:
        async with smtpx.AsyncSMTP(f"127.0.0.1:{port}", local_hostname="c.test", timeout=5) as c:
            return await c.noop()

    with scripted_server(_greeting_server(b"220 hi\r\n")) as (port, _):
        if driver == "sync":
            with smtpx.SMTP(f"127.0.0.1:{port}", local_hostname="c.test", timeout=5) as client:
                assert client.noop() == (250, b"ok")
        else:
            assert asyncio.run(run(port)) == (250, b"ok")


def test_missing_lmtp_socket(driver: str, tmp_path: Path) -> None:
    """A unix socket that does not exist: the OSError itself, as smtplib's LMTP raises it,
    and the client left closed."""
    path = str(tmp_path / "no-such.sock")
    if driver == "sync":
        client = smtpx.LMTP(local_hostname="c.test", timeout=5)
        with pytest.raises(FileNotFoundError):
            client.connect(path)
        assert client.sock is None
        return

    async def run() -> None:
        client = smtpx.AsyncLMTP(path, local_hostname="c.test", timeout=5)
        with pytest.raises(FileNotFoundError):
            await client.connect()
        assert client.sock is None

    asyncio.run(run())


def test_async_connect_cancelled_before_the_greeting() -> None:
    """A task cancelled while it waits for the greeting: CancelledError, the connection
    closed (the server sees the end of file), and the client can connect again."""
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    eof = threading.Event()

    def serve() -> None:
        conn, _ = silent.accept()
        conn.settimeout(10)
        with conn:
            if conn.recv(1) == b"":
                eof.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    async def run() -> smtpx.AsyncSMTP:
        client = smtpx.AsyncSMTP("127.0.0.1", port, local_hostname="c.test", timeout=30)
        task = asyncio.create_task(client.connect())
        await asyncio.sleep(0.2)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client.sock is None
        return client

    try:
        asyncio.run(asyncio.wait_for(run(), 10))
        thread.join(10)
        assert eof.is_set(), "the client did not close the connection"
    finally:
        silent.close()
