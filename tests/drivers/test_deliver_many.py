"""``deliver_many()`` against a scripted server, on both drivers: how the writes are grouped
(RFC 2920 section 3.1 without CHUNKING, several transactions in flight with it), one entry
per item whatever happens to it, the items consumed lazily, a connection lost or closed
(421) midway, QUIT with the last message, Haraka's ``503`` to commands pipelined after the
end of DATA, and LMTP.  Failures, QUIT, Haraka and LMTP are in
``test_deliver_many_failures.py``; the server and runner in ``batch_harness.py``.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

import smtpx
from smtpx._engine import EAGER_LIMIT

from .batch_harness import (
    CHUNKING,
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
    message,
    queue_ids,
    run,
    sender,
    sent_once,
)
from .test_deliver import rcpt_line


@pytest.fixture(params=["sync", "asyncio"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ------------------------------------------------------------------ 1. without CHUNKING


def test_next_envelope_rides_with_the_end_of_content(driver: str) -> None:
    """RFC 2920 section 3.1: the next MAIL, RCPT and DATA go in the same write as the end
    of the previous content, before its reply: one write (one round trip) per message."""
    server = Server(PIPELINING)
    done = run(driver, server, [item(i) for i in range(4)])
    assert done.writes == [
        envelope(0),
        content(0) + envelope(1),
        content(1) + envelope(2),
        content(2) + envelope(3),
        content(3),
    ]
    assert server.pending == {0: envelope(1), 1: envelope(2), 2: envelope(3), 3: b""}
    assert queue_ids(done.entries) == ["Q0", "Q1", "Q2", "Q3"]
    assert [(i, rcpts, body) for i, rcpts, body in server.delivered] == [
        (i, (A,), content(i)) for i in range(4)
    ]
    assert done.pipeline_after_content and not done.closed


def test_without_pipelining_one_command_at_a_time(driver: str) -> None:
    server = Server((b"ENHANCEDSTATUSCODES",))
    done = run(driver, server, [item(0, A, B), item(1)])
    assert done.writes == [
        mail(0),
        rcpt_line(A),
        rcpt_line(B),
        b"data\r\n",
        content(0),
        mail(1),
        rcpt_line(A),
        b"data\r\n",
        content(1),
    ]
    assert server.pending == {0: b"", 1: b""}
    assert queue_ids(done.entries) == ["Q0", "Q1"]


# ------------------------------------------------------------------ 2. with CHUNKING


@pytest.mark.parametrize("window", [None, 1, 3])
def test_transactions_in_flight_within_the_window(driver: str, window: int | None) -> None:
    """MAIL, RCPT and BDAT LAST with the content in one piece per message; the first
    *window* (8 by default) in one write before any reply is read, then one more per reply."""
    count, width = 11, window or 8
    server = Server(CHUNKING)
    kwargs = {} if window is None else {"window": window}
    done = run(driver, server, [item(i) for i in range(count)], **kwargs)
    first = b"".join(eager(i) for i in range(width))
    assert done.writes == [first] + [eager(i) for i in range(width, count)]
    # The server saw the rest of the first write before it answered the first message.
    assert server.pending[0] == b"".join(eager(i) for i in range(1, width))
    assert queue_ids(done.entries) == [f"Q{i}" for i in range(count)]
    assert delivered(server) == list(range(count))
    assert [body for _, _, body in server.delivered] == [message(i) for i in range(count)]


def test_large_message_waits_for_its_rcpt_replies(driver: str) -> None:
    """Over EAGER_LIMIT the content follows the RCPT replies; a small message after it
    rides with that content."""
    large = b"Subject: large\r\n\r\n" + b"x" * 998 + b"\r\n"
    large *= 1 + EAGER_LIMIT // len(large)
    assert EAGER_LIMIT < len(large) < 2 * EAGER_LIMIT
    server = Server(CHUNKING)
    items = [item(0), (large, sender(1), [B]), item(2)]
    done = run(driver, server, items)
    assert done.writes == [
        eager(0) + envelope(1, B, data=False),
        bdat(1, large) + eager(2),
    ]
    assert queue_ids(done.entries) == ["Q0", "Q1", "Q2"]
    assert [body for _, _, body in server.delivered] == [message(0), large, message(2)]


def test_large_message_refused_at_rcpt_is_not_uploaded(driver: str) -> None:
    large = b"Subject: large\r\n\r\n" + (b"y" * 998 + b"\r\n") * (EAGER_LIMIT // 1000 + 1)
    server = Server(CHUNKING, replies={("rcpt", 1, B): b"550 5.1.1 unknown"})
    done = run(driver, server, [item(0), (large, sender(1), [B]), item(2)])
    assert done.writes == [
        eager(0) + envelope(1, B, data=False),
        b"rset\r\n" + eager(2),  # no BDAT for message 1: the RSET its refusal left due
    ]
    assert not any(b"y" * 998 in w for w in done.writes)
    ok0, refused, ok2 = done.entries
    assert isinstance(refused, smtpx.SMTPRecipientsRefused)
    assert refused.recipients == {B: (550, b"5.1.1 unknown")}
    assert queue_ids([ok0, ok2]) == ["Q0", "Q2"]


# ------------------------------------------------------------------ 3. results


REFUSALS = {
    ("rcpt", 0, B): b"550 5.1.1 no such user",  # 0: one recipient refused, the other not
    ("rcpt", 1, A): b"550 5.1.1 no such user",  # 1: every recipient refused
    ("rcpt", 1, C): b"450 4.2.1 mailbox busy",
    ("mail", 2): b"553 5.7.1 sender rejected",  # 2: sender refused
    ("final", 3): b"554 5.7.1 rejected as spam",  # 3: refused after its content
}


def check_refusal_entries(entries: list[Any]) -> None:
    partial, nobody, no_sender, spam, fine = entries
    assert isinstance(partial, smtpx.SendResult)
    assert partial.queue_id == "Q0"
    assert [(r.address, r.status, r.code) for r in partial.recipients] == [
        (A, "accepted", 250),
        (B, "refused", 550),
    ]
    assert partial.as_smtplib_dict() == {B: (550, b"5.1.1 no such user")}
    assert isinstance(nobody, smtpx.SMTPRecipientsRefused)
    assert nobody.recipients == {A: (550, b"5.1.1 no such user"), C: (450, b"4.2.1 mailbox busy")}
    assert [r.status for r in nobody.result.recipients] == ["refused", "deferred"]  # type: ignore[attr-defined]
    assert isinstance(no_sender, smtpx.SMTPSenderRefused)
    assert (no_sender.smtp_code, no_sender.sender) == (553, sender(2))
    assert isinstance(spam, smtpx.SMTPDataError)
    assert (spam.smtp_code, spam.smtp_error) == (554, b"5.7.1 rejected as spam")
    assert [r.address for r in spam.result.recipients] == [A]  # type: ignore[attr-defined]
    assert isinstance(fine, smtpx.SendResult) and fine.queue_id == "Q4"


BATCH = [item(0, A, B), item(1, A, C), item(2), item(3), item(4)]


def test_results_without_chunking(driver: str) -> None:
    server = Server(PIPELINING, replies=dict(REFUSALS))
    done = run(driver, server, BATCH)
    check_refusal_entries(done.entries)
    assert delivered(server) == [0, 4]
    assert done.writes == [
        envelope(0, A, B),
        content(0) + envelope(1, A, C),  # DATA refused (554): no content, an RSET due
        b"rset\r\n" + envelope(2),  # MAIL refused: DATA refused too
        b"rset\r\n" + envelope(3),
        content(3) + envelope(4),  # refused after the content (554): an RSET due ...
        content(4),
        b"rset\r\n",  # ... after the last message
    ]


def test_results_with_bdat_last_pipelined(driver: str) -> None:
    """Every transaction written at once: the server's replies to the BDAT LAST of a
    message it refused earlier (no recipient, no sender) are read and matched exactly."""
    server = Server(CHUNKING, replies=dict(REFUSALS))
    done = run(driver, server, BATCH)
    check_refusal_entries(done.entries)
    nobody = done.entries[1]
    assert nobody.result.reply.code == 554  # type: ignore[union-attr] # its BDAT's reply
    assert delivered(server) == [0, 4]
    assert done.writes == [
        eager(0, A, B) + eager(1, A, C) + b"".join(eager(i) for i in range(2, 5)),
        b"rset\r\n",  # the failures left an RSET due: after the last message
    ]
    # Every reply was read: the RSET's is the last thing the server sent.
    assert server.commands[-1] == b"rset\r\n"


class NotAMessage:
    pass


def test_planning_errors_are_entries(driver: str) -> None:
    """An item that cannot be sent is that item's exception; nothing of it reaches the
    wire and the others are sent."""
    items: list[Any] = [
        item(0),
        (message(1), "bad\r\nrcpt to:<evil@example.test>", [A]),  # CR LF in an address
        item(2),
        NotAMessage(),  # neither a message nor a tuple: no envelope
        (NotAMessage(), sender(3), [A]),  # not content
        ("caf\u00e9\n".encode(), sender(4), [A]),  # 8-bit without 8BITMIME
        (message(5), sender(5), [f"x{'y' * 64}\n@example.test"]),
        (b"Subject: big\r\n\r\n" + b"z" * 2000, sender(6), [A]),  # over SIZE
        ("message", sender(7)),  # not a (message, sender, recipients) tuple
        item(9),
    ]
    server = Server((*PIPELINING, b"SIZE 1000"))
    done = run(driver, server, items)
    kinds = [type(e).__name__ for e in done.entries]
    assert kinds == [
        "SendResult",
        "ValueError",
        "SendResult",
        "ValueError",
        "TypeError",
        "SMTPNotSupportedError",
        "ValueError",
        "SMTPMessageTooLarge",
        "ValueError",
        "SendResult",
    ]
    assert "needs sender and recipients" in str(done.entries[3])
    assert "not NotAMessage" in str(done.entries[4])
    assert delivered(server) == [0, 2, 9]
    assert mails(server, server.received) == [0, 2, 9]
    assert b"evil" not in b"".join(done.writes)


# ------------------------------------------------------------------ 4. items, lazily


@pytest.mark.parametrize("window", [1, 3, 8])
@pytest.mark.parametrize("offer", [PIPELINING, CHUNKING], ids=["data", "bdat"])
def test_items_consumed_lazily(driver: str, window: int, offer: tuple[bytes, ...]) -> None:
    count = 14
    server = Server(offer)
    ahead: list[int] = []  # at each pull: items pulled minus final replies the server gave

    def items() -> Iterator[tuple[bytes, str, list[str]]]:
        for i in range(count):
            ahead.append(i + 1 - server.finals)
            yield item(i)

    done = run(driver, server, items(), window=window)
    assert len(done.entries) == count and delivered(server) == list(range(count))
    # Never more than the window in flight, and the next item: never further ahead.  Without
    # CHUNKING two are in flight at most: one awaiting its final reply, the next one's
    # envelope written with the end of its content.
    assert max(ahead) == (window if offer == CHUNKING else min(window, 2)) + 1


class OnlyIter:
    """An iterable that is neither a sequence nor an iterator."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)


ITERABLES: dict[str, Callable[[list[Any]], Iterable[Any]]] = {
    "list": list,
    "tuple": tuple,
    "generator": lambda xs: (x for x in xs),
    "map": lambda xs: map(tuple, xs),
    "deque": collections.deque,
    "iterable": OnlyIter,
}


@pytest.mark.parametrize("kind", ITERABLES)
def test_any_iterable(driver: str, kind: str) -> None:
    server = Server(CHUNKING)
    done = run(driver, server, ITERABLES[kind]([item(0), item(1), item(2)]))
    assert queue_ids(done.entries) == ["Q0", "Q1", "Q2"]


@pytest.mark.parametrize("quit", [False, True])
def test_empty_batch(driver: str, quit: bool) -> None:
    """Nothing to send: EHLO (the session was not greeted) and, if asked, QUIT."""
    server = Server(CHUNKING)
    done = run(driver, server, iter([]), ehlo=False, quit=quit)
    assert done.entries == []
    assert done.writes == [b"ehlo client.test\r\n"] + ([b"quit\r\n"] if quit else [])
    assert server.quit is quit and done.closed is quit


class Broken(Exception):
    pass


@pytest.mark.parametrize("offer", [PIPELINING, CHUNKING], ids=["data", "bdat"])
def test_items_failing_midway(driver: str, offer: tuple[bytes, ...]) -> None:
    """The caller's iterable fails: every item it gave is still sent and settled, so the
    session stays in step, then its error propagates."""

    def items() -> Iterator[tuple[bytes, str, list[str]]]:
        yield from [item(0), item(1), item(2)]
        raise Broken("the caller's iterator failed")

    server = Server(offer)
    done = run(driver, server, items(), window=2, raises=True)
    assert isinstance(done.error, Broken)
    assert delivered(server) == [0, 1, 2] and sent_once(server)
    assert done.noop == (250, b"2.0.0 ok")  # the next command is answered as usual


def test_not_iterable(driver: str) -> None:
    server = Server(CHUNKING)
    done = run(driver, server, 42, raises=True)  # type: ignore[arg-type]
    assert isinstance(done.error, TypeError)
    assert done.writes == [] and done.noop == (250, b"2.0.0 ok")


def test_window_below_one(driver: str) -> None:
    done = run(driver, Server(CHUNKING), [item(0)], window=0, raises=True)
    assert isinstance(done.error, ValueError) and "window" in str(done.error)
    assert done.writes == [] and done.noop == (250, b"2.0.0 ok")
