"""Timeouts by phase in the asyncio driver (the blocking one: test_sync_timeouts.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

import smtpx

from .scripted import Peer, scripted_server
from .test_sync_timeouts import _quiet, _slow_final_reply


def test_connect_phase_includes_the_greeting() -> None:
    async def main(port: int) -> None:
        smtp = smtpx.AsyncSMTP("127.0.0.1", port, timeout=smtpx.Timeouts(connect=0.3))
        await smtp.connect()

    with scripted_server(_quiet) as (port, _):
        started = time.monotonic()
        with pytest.raises(smtpx.SMTPTimeoutError):
            asyncio.run(main(port))
        assert time.monotonic() - started < 2


@pytest.mark.parametrize(("data_timeout", "delay", "ok"), [(5, 0.8, True), (0.3, 1.0, False)])
def test_final_reply_has_its_own_timeout(data_timeout: float, delay: float, ok: bool) -> None:
    timeouts = smtpx.Timeouts(connect=5, command=0.3, data=data_timeout)

    async def main(port: int) -> tuple[float, Exception | None, bool]:
        smtp = smtpx.AsyncSMTP("127.0.0.1", port, local_hostname="c.test", timeout=timeouts)
        await smtp.connect()
        await smtp.ehlo()
        started = time.monotonic()
        error = None
        try:
            assert await smtp.sendmail("a@example.test", ["b@example.test"], "hi") == {}
        except smtpx.SMTPTimeoutError as exc:
            error = exc
        elapsed = time.monotonic() - started
        closed = smtp.sock is None
        await smtp.close()
        return elapsed, error, closed

    with scripted_server(_slow_final_reply(delay)) as (port, _):
        elapsed, error, closed = asyncio.run(main(port))
    if ok:
        assert (error, closed) == (None, False)
        assert elapsed >= delay
    else:
        assert isinstance(error, smtpx.SMTPTimeoutError)
        assert closed  # after a data-phase timeout, as the blocking client (sync test)
        assert elapsed < delay - 0.1


def test_command_timeout_closes() -> None:
    def handler(peer: Peer) -> None:
        peer.greet_and_ehlo(b"SIZE 1000")
        peer.expect(b"noop")
        peer.readline()

    async def main(port: int) -> None:
        smtp = smtpx.AsyncSMTP(
            "127.0.0.1", port, local_hostname="c.test", timeout=smtpx.Timeouts(command=0.3)
        )
        await smtp.connect()
        await smtp.ehlo()
        with pytest.raises(smtpx.SMTPTimeoutError) as caught:
            await smtp.noop()
        assert isinstance(caught.value, TimeoutError)
        assert smtp.sock is None
        with pytest.raises(smtpx.SMTPServerDisconnected):
            await smtp.noop()

    with scripted_server(handler) as (port, _):
        asyncio.run(main(port))
