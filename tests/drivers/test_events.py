"""Observers on both front ends, against the embedded server (``smtpx.testing``): the
transcript, the connection's facts (addresses, TLS), ``logging`` and ``set_debuglevel``."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import smtpx
from smtpx.testing import SinkServer

TIMEOUT = 5
USER, PASSWORD = "alice", "Sx!pa55w0rd"
BODY = "Subject: private\r\n\r\nthe private body\r\n"


@contextlib.contextmanager
def sink(**kwargs: Any) -> Iterator[SinkServer]:
    with SinkServer(**kwargs) as server:
        yield server


def run_session(
    front: str,
    server: SinkServer,
    observer: Callable[..., None],
    *,
    starttls: bool = False,
    implicit: bool = False,
    login: bool = False,
) -> None:
    """Connect, maybe STARTTLS and log in, send one message, quit: in either front end."""
    context = server.client_context() if (starttls or implicit) else None
    if front == "sync":
        cls: Any = smtpx.SMTP_SSL if implicit else smtpx.SMTP
        kwargs: dict[str, Any] = {"context": context} if implicit else {}
        smtp = cls(local_hostname="client.test", timeout=TIMEOUT, **kwargs)
        smtp.add_observer(observer)
        smtp.connect(server.host, server.port)
        if starttls:
            smtp.starttls(context=context)
        if login:
            smtp.login(USER, PASSWORD)
        smtp.sendmail("a@example.test", ["b@example.test"], BODY)
        smtp.quit()
        return

    async def main() -> None:
        cls: Any = smtpx.AsyncSMTP_SSL if implicit else smtpx.AsyncSMTP
        kwargs: dict[str, Any] = {"context": context} if implicit else {}
        smtp = cls(local_hostname="client.test", timeout=TIMEOUT, **kwargs)
        smtp.add_observer(observer)
        await smtp.connect(server.host, server.port)
        if starttls:
            await smtp.starttls(context=context)
        if login:
            await smtp.login(USER, PASSWORD)
        await smtp.sendmail("a@example.test", ["b@example.test"], BODY)
        await smtp.quit()

    asyncio.run(main())


FRONTS = pytest.mark.parametrize("front", ["sync", "async"])


def _secrets() -> list[str]:
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    return [PASSWORD, plain, base64.b64encode(PASSWORD.encode()).decode()]


@FRONTS
def test_transcript_of_a_session(front: str) -> None:
    transcript = smtpx.Transcript()
    with sink(starttls=True, auth={USER: PASSWORD}) as server:
        run_session(front, server, transcript, starttls=True, login=True)
    events = transcript.events
    kinds = [type(e).__name__ for e in events]
    assert kinds[:3] == ["Connecting", "Connected", "ReplyReceived"]
    assert kinds[-1] == "ConnectionClosed" and events[-1].reason == "QUIT"  # type: ignore[union-attr]

    connecting, connected = events[0], events[1]
    assert isinstance(connecting, smtpx.Connecting)
    assert (connecting.host, connecting.port, connecting.implicit_tls) == (
        server.host,
        server.port,
        False,
    )
    assert isinstance(connected, smtpx.Connected)
    assert connected.peer[:2] == (server.host, server.port)
    assert connected.local[0] == "127.0.0.1" and connected.tls is None

    (tls,) = [e for e in events if isinstance(e, smtpx.TLSStarted)]
    assert tls.tls is not None and tls.tls.version in ("TLSv1.2", "TLSv1.3")
    assert tls.tls.cipher and tls.tls.bits and tls.tls.bits >= 128
    assert tls.tls.peer_subject is not None and "O=trustme" in tls.tls.peer_subject

    lines = transcript.lines()
    assert ">> STARTTLS" in lines
    assert any(line.startswith(">> AUTH PLAIN ********") for line in lines)
    size = len(BODY) + len(".\r\n")
    assert f">> [content: {size} bytes via DATA, end of message]" in lines
    assert any(line.startswith("<< 250") for line in lines)
    text = "\n".join(lines + [repr(e) for e in events])
    assert "the private body" not in text
    for secret in _secrets():
        assert secret not in text

    # Elapsed times grow; a reply's latency is within its elapsed time.
    elapsed = [e.elapsed for e in events]
    assert elapsed == sorted(elapsed)
    assert all(0 <= r.latency <= r.elapsed for r in events if isinstance(r, smtpx.ReplyReceived))


@FRONTS
def test_implicit_tls_facts_come_with_the_connection(front: str) -> None:
    transcript = smtpx.Transcript()
    with sink(implicit_tls=True) as server:
        run_session(front, server, transcript, implicit=True)
    connecting, connected = transcript.events[:2]
    assert isinstance(connecting, smtpx.Connecting) and connecting.implicit_tls
    assert isinstance(connected, smtpx.Connected) and connected.tls is not None
    assert connected.tls.version in ("TLSv1.2", "TLSv1.3")
    assert transcript.lines()[1].startswith(f"-- connected to {server.host}:{server.port} from ")
    assert "; TLSv1." in transcript.lines()[1]


@FRONTS
def test_content_is_kept_only_when_asked(front: str) -> None:
    transcript = smtpx.Transcript(content=True)
    with sink() as server:
        run_session(front, server, transcript)
    (content,) = [e for e in transcript.events if isinstance(e, smtpx.ContentSent)]
    assert content.data == BODY.encode() + b".\r\n"  # as written: with the terminator
    assert ">> the private body" in transcript.lines()


@FRONTS
def test_logging_observer(front: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="smtpx")
    with sink(starttls=True, auth={USER: PASSWORD}) as server:
        run_session(front, server, smtpx.LogObserver(), starttls=True, login=True)
    records = [r for r in caplog.records if r.name == "smtpx"]
    messages = [r.getMessage() for r in records]
    assert all(r.levelno == logging.DEBUG for r in records)
    assert any(m.endswith(">> STARTTLS") for m in messages)
    assert any(">> AUTH PLAIN ********" in m for m in messages)
    replies = [m for m in messages if "<< " in m]
    assert replies and all(m.split()[0].endswith("s") for m in replies)  # "   0.012s"
    assert any(m.endswith(" ms)") for m in replies)  # a reply's latency
    assert all(hasattr(r, "smtpx_event") for r in records)
    text = "\n".join(messages)
    assert "the private body" not in text
    for secret in _secrets():
        assert secret not in text


@FRONTS
def test_logging_observer_bodies_when_asked(front: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="smtpx.wire")
    with sink() as server:
        run_session(front, server, smtpx.LogObserver("smtpx.wire", bodies=True))
    assert any(r.getMessage().endswith(">> the private body") for r in caplog.records)


@FRONTS
def test_remove_observer_and_a_failing_observer(
    front: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[object] = []

    def broken(event: object) -> None:
        seen.append(event)
        raise RuntimeError("observer bug")

    transcript = smtpx.Transcript()
    client: Any = smtpx.SMTP() if front == "sync" else smtpx.AsyncSMTP()
    client.add_observer(transcript)
    client.remove_observer(transcript)
    with pytest.raises(ValueError, match="not an observer"):
        client.remove_observer(transcript)
    caplog.set_level(logging.ERROR, logger="smtpx")
    with sink() as server:
        run_session(front, server, broken)  # the session goes on, the error is logged
    assert seen and transcript.events == []
    assert any("observer raised" in r.getMessage() for r in caplog.records)


def test_setting_debuglevel_as_an_attribute_prints() -> None:
    stderr = io.StringIO()
    with sink() as server, contextlib.redirect_stderr(stderr):
        smtp = smtpx.SMTP(local_hostname="client.test", timeout=TIMEOUT)
        smtp.debuglevel = 1  # smtplib's users do this as well as set_debuglevel()
        smtp.connect(server.host, server.port)
        smtp.debuglevel = 0
        smtp.noop()
        smtp.quit()
    assert stderr.getvalue().startswith("connect: to (")
    assert "noop" not in stderr.getvalue()
    assert smtpx.SMTP.debuglevel == 0  # smtplib's class attribute


@FRONTS
def test_raw_send_is_reported_once_and_putcmd_not_twice(front: str) -> None:
    transcript = smtpx.Transcript()

    async def asynchronous(server: SinkServer) -> None:
        smtp = smtpx.AsyncSMTP(local_hostname="client.test", timeout=TIMEOUT)
        smtp.add_observer(transcript)
        await smtp.connect(server.host, server.port)
        await smtp.send("NOOP\r\n")
        await smtp.getreply()
        await smtp.putcmd("noop")
        await smtp.getreply()
        await smtp.quit()

    with sink() as server:
        if front == "sync":
            smtp = smtpx.SMTP(local_hostname="client.test", timeout=TIMEOUT)
            smtp.add_observer(transcript)
            smtp.connect(server.host, server.port)
            smtp.send("NOOP\r\n")
            smtp.getreply()
            smtp.putcmd("noop")
            smtp.getreply()
            smtp.quit()
        else:
            asyncio.run(asynchronous(server))
    sent = [e for e in transcript.events if isinstance(e, (smtpx.CommandSent, smtpx.RawSent))]
    assert [type(e).__name__ for e in sent] == ["RawSent", "CommandSent", "CommandSent"]
    assert sent[0].data == "NOOP\r\n"  # type: ignore[union-attr]


@FRONTS
def test_a_failed_connection_is_reported(front: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    transcript = smtpx.Transcript()
    if front == "sync":
        smtp: Any = smtpx.SMTP(timeout=TIMEOUT)
        smtp.add_observer(transcript)
        with pytest.raises(OSError):
            smtp.connect("127.0.0.1", port)
    else:

        async def main() -> None:
            smtp = smtpx.AsyncSMTP(local_hostname="client.test", timeout=TIMEOUT)
            smtp.add_observer(transcript)
            await smtp.connect("127.0.0.1", port)

        with pytest.raises(OSError):
            asyncio.run(main())
    failed = transcript.events[-1]
    assert isinstance(failed, smtpx.ConnectionFailed)
    assert (failed.host, failed.port) == ("127.0.0.1", port)
    assert transcript.lines()[-1].startswith(f"-- connection to 127.0.0.1:{port} failed: ")


def test_ssl_module_is_not_needed_by_the_observers() -> None:
    # tls_info copes with objects that tell nothing (a test's stand-in socket).
    from smtpx._clientbase import tls_info

    assert tls_info(object()) is None
    assert isinstance(ssl.create_default_context(), ssl.SSLContext)
