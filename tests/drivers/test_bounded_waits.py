"""Every wait of both drivers ends within its timeout plus a small slack, teardown included
(issue 8, item 2): handshakes that stall, a silent server at QUIT or at close, and the
asyncio connect phase (a connection that is never accepted, a cancelled connect, a greeting
that is not 220, "host:port", a missing LMTP socket).

The stalls inside a session (DATA, BDAT, STARTTLS, QUIT) are rows of the scenario table
(``test_scenarios.py``); these need a server the table cannot describe.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import smtpx

from .scripted import Peer, scripted_server

TIMEOUT = 0.5
SLACK = 0.25  # issue 8: a call, teardown included, within its timeout plus this


@pytest.fixture(params=["sync", "asyncio"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.contextmanager
def bounded(limit: float = TIMEOUT + SLACK) -> Iterator[None]:
    started = time.monotonic()
    yield
    elapsed = time.monotonic() - started
    assert elapsed <= limit, f"took {elapsed:.2f} s, more than {limit} s"


def silent_until(done: threading.Event, *, greet: bool = False) -> Any:
    """A server that reads nothing and says nothing (but the greeting, with *greet*)
    until the client is *done*, then waits for it to go."""

    def handler(peer: Peer) -> None:
        if greet:
            peer.send(b"220 test.example ESMTP\r\n")
        assert done.wait(10), "the client did not give up"
        with contextlib.suppress(OSError):
            while peer.sock.recv(65536):
                pass

    return handler


@contextlib.contextmanager
def never_accepted() -> Iterator[int]:
    """A port where a new connection is never completed: the listener's queue is full
    (its backlog is 0 and one connection waits in it), so the kernel drops the SYNs."""
    listener = socket.socket()
    filler = socket.socket()
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler.connect(("127.0.0.1", port))
        yield port
    finally:
        filler.close()
        listener.close()


# ----------------------------------------------------------------- implicit TLS


def test_implicit_tls_handshake_that_stalls(driver: str, client_context: ssl.SSLContext) -> None:
    done = threading.Event()
    with scripted_server(silent_until(done)) as (port, _):
        try:
            if driver == "sync":
                with bounded(), pytest.raises(TimeoutError):
                    smtpx.SMTP_SSL("127.0.0.1", port, context=client_context, timeout=TIMEOUT)
            else:

                async def main() -> None:
                    smtp = smtpx.AsyncSMTP_SSL(
                        "127.0.0.1", port, context=client_context, timeout=TIMEOUT
                    )
                    with bounded(), pytest.raises(smtpx.SMTPTimeoutError):
                        await smtp.connect()
                    assert smtp.sock is None

                asyncio.run(main())
        finally:
            done.set()


# --------------------------------------------------- a silent server over TLS


def _tls_session_then_silent(
    server_context: ssl.SSLContext, done: threading.Event, *, expect: bytes | None
) -> Any:
    """STARTTLS, EHLO again, then (after reading the line *expect* starts with, if any)
    nothing: no reply, no TLS close_notify, no reading, until the client is *done*."""

    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"STARTTLS")
        peer.expect(b"starttls")
        peer.send(b"220 2.0.0 go ahead\r\n")
        peer.starttls(server_context)
        peer.expect(b"ehlo ")
        peer.send(b"250 test.example\r\n")
        if expect is not None:
            peer.expect(expect)
        assert done.wait(10), "the client did not give up"
        with contextlib.suppress(OSError):
            while peer.sock.recv(65536):
                pass

    return handler


@pytest.mark.parametrize("call", ["quit", "noop", "close"])
def test_silent_server_over_tls(
    driver: str, server_context: ssl.SSLContext, client_context: ssl.SSLContext, call: str
) -> None:
    """QUIT or a command that is never answered raises in time, and close() after it
    does not wait; close() itself never waits longer than the timeout for the server's
    TLS close_notify."""
    done = threading.Event()
    handler = _tls_session_then_silent(
        server_context, done, expect=None if call == "close" else call.encode()
    )
    with scripted_server(handler) as (port, _):
        try:
            if driver == "sync":
                smtp = smtpx.SMTP("127.0.0.1", port, local_hostname="c.test", timeout=TIMEOUT)
                smtp.starttls(context=client_context)
                smtp.ehlo()
                with bounded():
                    if call == "close":
                        smtp.close()
                    else:
                        with pytest.raises(smtpx.SMTPTimeoutError):
                            getattr(smtp, call)()
                        assert smtp.sock is None
                        smtp.close()  # after an error: nothing left to wait for
            else:

                async def main() -> None:
                    smtp = smtpx.AsyncSMTP(
                        "127.0.0.1", port, local_hostname="c.test", timeout=TIMEOUT
                    )
                    await smtp.connect()
                    await smtp.starttls(context=client_context)
                    await smtp.ehlo()
                    with bounded():
                        if call == "close":
                            await smtp.close()
                        else:
                            with pytest.raises(smtpx.SMTPTimeoutError):
                                await getattr(smtp, call)()
                            assert smtp.sock is None
                            await smtp.close()
                    assert smtp.sock is None

                asyncio.run(main())
        finally:
            done.set()


# ------------------------------------------------------------ the connect phase


def test_connect_timeout(driver: str) -> None:
    with never_accepted() as port:
        if driver == "sync":
            with bounded(), pytest.raises(TimeoutError):
                smtpx.SMTP("127.0.0.1", port, timeout=TIMEOUT)
            return

        async def main() -> None:
            smtp = smtpx.AsyncSMTP("127.0.0.1", port, timeout=TIMEOUT)
            with bounded(), pytest.raises(smtpx.SMTPTimeoutError):
                await smtp.connect()
            assert smtp.sock is None
            with pytest.raises(smtpx.SMTPServerDisconnected):
                await smtp.noop()

        asyncio.run(main())


@pytest.mark.parametrize("where", ["connecting", "awaiting the greeting"])
def test_asyncio_connect_cancelled(where: str) -> None:
    done = threading.Event()

    async def main(port: int) -> None:
        smtp = smtpx.AsyncSMTP("127.0.0.1", port, timeout=5)
        task = asyncio.create_task(smtp.connect())
        await asyncio.sleep(0.2)
        assert not task.done()
        task.cancel()
        with bounded(SLACK), pytest.raises(asyncio.CancelledError):
            await task
        assert smtp.sock is None
        with pytest.raises(smtpx.SMTPServerDisconnected):
            await smtp.noop()

    if where == "connecting":
        with never_accepted() as port:
            asyncio.run(main(port))
        return
    with scripted_server(silent_until(done)) as (port, peers):
        try:
            asyncio.run(main(port))
        finally:
            done.set()
    assert peers  # it was connected, and cancelled while the greeting was awaited


def test_greeting_that_is_not_220(driver: str) -> None:
    def handler(peer: Peer) -> None:
        peer.send(b"554 5.3.2 not now\r\n")
        assert peer.readline() == b""  # the client closes, without QUIT

    async def main(port: int) -> None:
        smtp = smtpx.AsyncSMTP("127.0.0.1", port, timeout=TIMEOUT)
        try:
            async with smtp:
                raise AssertionError("not reached")
        finally:
            assert smtp.sock is None

    with scripted_server(handler) as (port, _):  # noqa: SIM117 (its errors come after)
        with pytest.raises(smtpx.SMTPConnectError) as caught:
            if driver == "sync":
                smtpx.SMTP("127.0.0.1", port, timeout=TIMEOUT)
            else:
                asyncio.run(main(port))
    assert (caught.value.smtp_code, caught.value.smtp_error) == (554, b"5.3.2 not now")


def test_asyncio_connect_returns_a_greeting_that_is_not_220() -> None:
    """As smtplib's connect(): the greeting is returned, not raised (the constructor and
    ``async with`` raise)."""

    def handler(peer: Peer) -> None:
        peer.send(b"554 5.3.2 not now\r\n")
        peer.readline()

    async def main(port: int) -> None:
        smtp = smtpx.AsyncSMTP("127.0.0.1", port, timeout=TIMEOUT)
        assert await smtp.connect() == (554, b"5.3.2 not now")
        await smtp.close()

    with scripted_server(handler) as (port, _):
        asyncio.run(main(port))


def test_host_and_port_in_one_string(driver: str) -> None:
    def handler(peer: Peer) -> None:
        peer.send(b"220 test.example ESMTP\r\n")
        peer.expect(b"noop")
        peer.send(b"250 2.0.0 ok\r\n")
        peer.expect(b"quit")
        peer.send(b"221 2.0.0 bye\r\n")

    with scripted_server(handler) as (port, _):
        if driver == "sync":
            with smtpx.SMTP(f"127.0.0.1:{port}", timeout=TIMEOUT) as smtp:
                assert smtp.noop() == (250, b"2.0.0 ok")
        else:

            async def main() -> None:
                async with smtpx.AsyncSMTP(f"127.0.0.1:{port}", timeout=TIMEOUT) as smtp:
                    assert await smtp.noop() == (250, b"2.0.0 ok")

            asyncio.run(main())


def test_missing_lmtp_socket(driver: str, tmp_path: Path) -> None:
    path = str(tmp_path / "missing.sock")
    if driver == "sync":
        with bounded(SLACK), pytest.raises(FileNotFoundError):
            smtpx.LMTP(path, timeout=TIMEOUT)
        return

    async def main() -> None:
        lmtp = smtpx.AsyncLMTP(path, timeout=TIMEOUT)
        with bounded(SLACK), pytest.raises(FileNotFoundError):
            await lmtp.connect()
        assert lmtp.sock is None
        with pytest.raises(smtpx.SMTPServerDisconnected):
            await lmtp.noop()

    asyncio.run(main())
