"""``deliver_many()`` when things go wrong, on both drivers: a connection lost or closed
(421) midway, QUIT with the last message, Haraka's ``503`` to commands pipelined after the
end of DATA, LMTP, and a cancelled task (the server and runner: ``batch_harness.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import smtpx
from smtpx._engine import BEHIND_LIMIT

from .batch_harness import (
    CHUNKING,
    CLIENT,
    DROP,
    PIPELINING,
    A,
    B,
    C,
    Server,
    bdat,
    content,
    delivered,
    eager,
    envelope,
    item,
    mail,
    mails,
    queue_ids,
    run,
    sent_once,
)
from .scripted import scripted_server
from .test_deliver import rcpt_line


@pytest.fixture(params=["sync", "asyncio"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ------------------------------------------------------------------ 5. failures mid-batch


@pytest.mark.parametrize("offer", [PIPELINING, CHUNKING], ids=["data", "bdat"])
def test_421_at_a_mail_midway(driver: str, offer: tuple[bytes, ...]) -> None:
    server = Server(offer, replies={("mail", 2): b"421 4.3.2 shutting down"})
    done = run(driver, server, [item(i) for i in range(5)], window=2)
    assert queue_ids(done.entries)[:2] == ["Q0", "Q1"]
    for entry in done.entries[2:]:
        assert isinstance(entry, smtpx.SMTPNotAttempted), entry
    assert done.entries[2].result.reply.code == 421  # type: ignore[union-attr]
    assert delivered(server) == [0, 1]
    assert mails(server) == [0, 1, 2]  # nothing after the 421 was taken
    assert sent_once(server)


@pytest.mark.parametrize("offer", [PIPELINING, CHUNKING], ids=["data", "bdat"])
def test_connection_lost_before_a_final_reply(driver: str, offer: tuple[bytes, ...]) -> None:
    """Message 1's content was sent and its reply never came: outcome unknown.  With
    CHUNKING the window's other messages were sent too (their content as well)."""
    server = Server(offer, replies={("final", 1): DROP})
    done = run(driver, server, [item(i) for i in range(6)], window=3)
    kinds = [type(e).__name__ for e in done.entries]
    if offer == CHUNKING:  # 0, 1, 2 written at once; 3 after 0's reply
        assert done.writes[:2] == [eager(0) + eager(1) + eager(2), eager(3)]
        assert kinds == ["SendResult"] + ["SMTPOutcomeUnknown"] * 3 + ["SMTPNotAttempted"] * 2
    else:  # message 2's envelope went with 1's content: not attempted
        assert done.writes == [envelope(0), content(0) + envelope(1), content(1) + envelope(2)]
        assert kinds == ["SendResult", "SMTPOutcomeUnknown"] + ["SMTPNotAttempted"] * 4
    assert isinstance(done.entries[1].result, smtpx.SendResult)  # type: ignore[union-attr]
    assert delivered(server) == [0]
    assert sent_once(server)


@pytest.mark.parametrize("offer", [PIPELINING, CHUNKING], ids=["data", "bdat"])
def test_421_instead_of_a_final_reply(driver: str, offer: tuple[bytes, ...]) -> None:
    server = Server(offer, replies={("final", 1): b"421 4.3.2 shutting down"})
    done = run(driver, server, [item(i) for i in range(4)], window=2)
    first, closing, *rest = done.entries
    assert isinstance(first, smtpx.SendResult)
    assert isinstance(closing, smtpx.SMTPDataError)  # refused: the server did not take it
    assert (closing.smtp_code, closing.smtp_error) == (421, b"4.3.2 shutting down")
    for entry in rest:
        assert isinstance(entry, smtpx.SMTPNotAttempted), entry
    assert delivered(server) == [0]
    assert mails(server) == [0, 1]  # nothing after the 421 was taken
    assert sent_once(server)


def test_421_to_the_rset_heading_a_group(driver: str) -> None:
    """Message 0's refusal leaves an RSET due; it heads message 2's group, and the server
    closes there: message 2 and the rest were never attempted."""
    replies = {("final", 0): b"554 5.7.1 rejected", ("rset",): b"421 4.3.2 shutting down"}
    server = Server(PIPELINING, replies=replies)
    done = run(driver, server, [item(i) for i in range(4)])
    assert done.writes == [
        envelope(0),
        content(0) + envelope(1),
        content(1) + b"rset\r\n" + envelope(2),
    ]
    kinds = [type(e).__name__ for e in done.entries]
    assert kinds == ["SMTPDataError", "SendResult", "SMTPNotAttempted", "SMTPNotAttempted"]
    assert delivered(server) == [1] and sent_once(server)


@pytest.mark.parametrize("offer", [PIPELINING, CHUNKING], ids=["data", "bdat"])
def test_server_stops_answering(driver: str, offer: tuple[bytes, ...]) -> None:
    """No final reply for message 1 within the timeout: the connection is cut; what was
    sent is outcome unknown, the rest not attempted."""
    server = Server(offer, stall_at=1)
    done = run(driver, server, [item(i) for i in range(4)], window=2, timeout=0.5)
    kinds = [type(e).__name__ for e in done.entries]
    if offer == CHUNKING:  # 2 went out after 0's reply: its content too
        assert kinds == [
            "SendResult",
            "SMTPOutcomeUnknown",
            "SMTPOutcomeUnknown",
            "SMTPNotAttempted",
        ]
    else:
        assert kinds == ["SendResult", "SMTPOutcomeUnknown", "SMTPNotAttempted", "SMTPNotAttempted"]
    assert isinstance(done.entries[1].__cause__, smtpx.SMTPTimeoutError)
    assert done.closed and delivered(server) == [0]


# ------------------------------------------------------------------ 6. quit=True


@pytest.mark.parametrize("offer", [PIPELINING, CHUNKING], ids=["data", "bdat"])
def test_quit_goes_with_the_last_message(driver: str, offer: tuple[bytes, ...]) -> None:
    server = Server(offer)
    done = run(driver, server, [item(0), item(1)], quit=True)
    if offer == CHUNKING:
        assert done.writes == [eager(0) + eager(1) + b"quit\r\n"]
    else:
        assert done.writes == [envelope(0), content(0) + envelope(1), content(1) + b"quit\r\n"]
        assert server.pending[1] == b"quit\r\n"
    assert queue_ids(done.entries) == ["Q0", "Q1"]
    assert server.quit and done.closed


def test_quit_after_the_last_reply_without_pipelining(driver: str) -> None:
    server = Server((b"ENHANCEDSTATUSCODES",))
    done = run(driver, server, [item(0)], quit=True)
    assert done.writes == [mail(0), rcpt_line(A), b"data\r\n", content(0), b"quit\r\n"]
    assert server.pending[0] == b""
    assert queue_ids(done.entries) == ["Q0"]
    assert server.quit and done.closed


# ------------------------------------------------------------------ 7. Haraka's rule


def test_haraka_503_after_end_of_data(driver: str) -> None:
    server = Server(PIPELINING, haraka=True)
    done = run(driver, server, [item(i) for i in range(4)])
    assert server.refused_after_data == [mail(1), rcpt_line(A), b"data\r\n"]
    assert done.writes == [
        envelope(0),
        content(0) + envelope(1),  # refused: 503 pipelined after end of DATA
        b"rset\r\n" + envelope(1),  # said again once 0 has its reply
        content(1),  # and no longer pipelined past the end of content
        envelope(2),
        content(2),
        envelope(3),
        content(3),
    ]
    assert queue_ids(done.entries) == ["Q0", "Q1", "Q2", "Q3"]
    assert delivered(server) == [0, 1, 2, 3]  # each exactly once
    assert not done.pipeline_after_content


def test_haraka_quit_refused_is_said_again(driver: str) -> None:
    server = Server(PIPELINING, haraka=True)
    done = run(driver, server, [item(0)], quit=True)
    assert done.writes == [envelope(0), content(0) + b"quit\r\n", b"quit\r\n"]
    assert server.refused_after_data == [b"quit\r\n"]
    assert queue_ids(done.entries) == ["Q0"]
    assert server.quit and done.closed


def test_haraka_quit_after_pipelining_stopped(driver: str) -> None:
    server = Server(PIPELINING, haraka=True)
    done = run(driver, server, [item(0), item(1)], quit=True)
    assert done.writes[-2:] == [content(1), b"quit\r\n"]
    assert server.refused_after_data == [mail(1), rcpt_line(A), b"data\r\n"]
    assert delivered(server) == [0, 1] and server.quit and done.closed


MANY = [f"recipient-{n:03d}-with-a-long-local-part@example.test" for n in range(100)]


@pytest.mark.parametrize("offer", [PIPELINING, CHUNKING], ids=["data", "bdat"])
def test_large_envelope_is_not_written_behind_an_end_of_content(
    driver: str, offer: tuple[bytes, ...]
) -> None:
    assert len(envelope(1, *MANY)) > BEHIND_LIMIT
    server = Server(offer)
    done = run(driver, server, [item(0), item(1, *MANY), item(2)])
    if offer == CHUNKING:
        assert done.writes == [eager(0), eager(1, *MANY) + eager(2)]
    else:
        assert done.writes == [
            envelope(0),
            content(0),  # alone: the large envelope waits for 0's reply
            envelope(1, *MANY),
            content(1) + envelope(2),
            content(2),
        ]
    assert queue_ids(done.entries) == ["Q0", "Q1", "Q2"]
    assert server.delivered[1][1] == tuple(MANY)


# ------------------------------------------------------------------ 8. LMTP


@pytest.mark.parametrize("offer", [PIPELINING, CHUNKING], ids=["data", "bdat"])
def test_lmtp_batch(driver: str, offer: tuple[bytes, ...]) -> None:
    """RFC 2033 section 4.2: after each content one reply per accepted recipient."""
    replies = {
        ("final", 0, B): b"452 4.2.2 mailbox full",
        ("rcpt", 1, C): b"550 5.1.1 unknown",
        ("final", 2, A): b"552 5.2.2 over quota",
    }
    server = Server(offer, replies=replies, lmtp=True)
    done = run(driver, server, [item(0, A, B), item(1, A, C), item(2)])
    if offer == CHUNKING:  # no BDAT LAST with the envelope: LMTP's replies depend on RCPT
        assert done.writes == [
            envelope(0, A, B, data=False),
            bdat(0) + envelope(1, A, C, data=False),
            bdat(1) + envelope(2, data=False),
            bdat(2),
        ]
    else:
        assert done.writes == [
            envelope(0, A, B),
            content(0) + envelope(1, A, C),
            content(1) + envelope(2),
            content(2),
        ]
    first, second, third = done.entries
    assert isinstance(first, smtpx.SendResult) and isinstance(second, smtpx.SendResult)
    assert [(r.address, r.status, r.code) for r in first.recipients] == [
        (A, "accepted", 250),
        (B, "deferred", 452),
    ]
    assert [(r.address, r.status, r.code) for r in second.recipients] == [
        (A, "accepted", 250),
        (C, "refused", 550),
    ]
    assert isinstance(third, smtpx.SMTPRecipientsRefused)
    assert third.recipients == {A: (552, b"5.2.2 over quota")}
    assert delivered(server) == [0, 1]


# ------------------------------------------------------------------ 9. asyncio: cancelled


def test_async_batch_cancelled_midway() -> None:
    server = Server(CHUNKING, stall_at=2)
    state: dict[str, Any] = {}

    async def main(port: int) -> None:
        client = smtpx.AsyncSMTP("127.0.0.1", port, **CLIENT)
        await client.connect()
        task = asyncio.create_task(client.deliver_many([item(i) for i in range(6)], window=2))
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, server.stalled.wait, 5)
        await asyncio.sleep(0.05)  # the client is waiting for message 2's reply
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        state["closed"] = client.sock is None
        await client.close()

    with scripted_server(server) as (port, _):
        asyncio.run(main(port))
    assert state == {"closed": True}
    assert delivered(server) == [0, 1]
