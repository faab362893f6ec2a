"""Timeouts by phase in the blocking driver: connect (greeting included), each command's
reply, and the final reply after the content, which may be set longer."""

from __future__ import annotations

import time

import pytest

import smtpx

from .scripted import Peer, scripted_server


def _quiet(peer: Peer) -> None:
    peer.readline()  # say nothing until the client gives up and closes


def test_connect_phase_includes_the_greeting() -> None:
    with scripted_server(_quiet) as (port, _):
        started = time.monotonic()
        with pytest.raises(smtpx.SMTPTimeoutError):
            smtpx.SMTP("127.0.0.1", port, timeout=smtpx.Timeouts(connect=0.3, command=30))
        assert time.monotonic() - started < 2


def _slow_final_reply(delay: float):  # type: ignore[no-untyped-def]
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"SIZE 1000")
        peer.expect(b"mail")
        peer.send(b"250 ok\r\n")
        peer.expect(b"rcpt")
        peer.send(b"250 ok\r\n")
        peer.expect(b"data")
        peer.send(b"354 go\r\n")
        peer.read_content()
        time.sleep(delay)  # scanning the message
        peer.send(b"250 queued\r\n")
        peer.readline()

    return handler


def test_final_reply_may_take_longer_than_a_command() -> None:
    timeouts = smtpx.Timeouts(connect=5, command=0.3, data=5)
    with scripted_server(_slow_final_reply(0.8)) as (port, _):
        smtp = smtpx.SMTP("127.0.0.1", port, local_hostname="c.test", timeout=timeouts)
        assert smtp.ehlo()[0] == 250
        assert smtp.sock.gettimeout() == 0.3  # each write is bounded by the command timeout
        assert smtp.sendmail("a@example.test", ["b@example.test"], "hi") == {}
        smtp.close()


def test_final_reply_timeout() -> None:
    timeouts = smtpx.Timeouts(connect=5, command=5, data=0.3)
    with scripted_server(_slow_final_reply(1.0)) as (port, _):
        smtp = smtpx.SMTP("127.0.0.1", port, local_hostname="c.test", timeout=timeouts)
        smtp.ehlo()
        started = time.monotonic()
        with pytest.raises(smtpx.SMTPTimeoutError):
            smtp.sendmail("a@example.test", ["b@example.test"], "hi")
        assert time.monotonic() - started < 0.9
        assert smtp.sock is None


def test_command_timeout() -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"SIZE 1000")
        peer.expect(b"noop")
        peer.readline()

    with scripted_server(handler) as (port, _):
        smtp = smtpx.SMTP(
            "127.0.0.1", port, local_hostname="c.test", timeout=smtpx.Timeouts(command=0.3)
        )
        smtp.ehlo()
        with pytest.raises(smtpx.SMTPTimeoutError):
            smtp.noop()
        assert smtp.sock is None


@pytest.mark.parametrize("bad", [0, -1.0])
def test_timeouts_must_be_positive(bad: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        smtpx.Timeouts(command=bad)
