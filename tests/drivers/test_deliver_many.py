"""``deliver_many()`` against a scripted server, on both drivers: how the writes are grouped
(RFC 2920 section 3.1 without CHUNKING, several transactions in flight with it), one entry
per item whatever happens to it, the items consumed lazily, a connection lost or closed
(421) midway, QUIT with the last message, Haraka's ``503`` to commands pipelined after the
end of DATA, and LMTP.

Every write the client makes is recorded through the ``smtplib.send`` audit event both
drivers raise, so each test states the exact grouping; the server also records what it had
already received when it was about to give each message's final reply, which shows what
the client sent before it had that reply.
"""

from __future__ import annotations

import asyncio
import collections
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import smtpx
from smtpx._engine import BEHIND_LIMIT, EAGER_LIMIT

from .scripted import Peer, scripted_server
from .test_deliver import greet, rcpt_line, read_exact

A, B, C = "a@example.test", "b@example.test", "c@example.test"
CLIENT: dict[str, Any] = {"local_hostname": "client.test", "timeout": 5}
PIPELINING = (b"PIPELINING",)
CHUNKING = (b"PIPELINING", b"CHUNKING")

# ------------------------------------------------------------------ the client's writes

_writes: list[bytes] | None = None  # the writes of the batch being recorded


def _audit(event: str, args: tuple[Any, ...]) -> None:
    # Both drivers raise smtplib's audit event once per write (as smtplib does per send).
    if event == "smtplib.send" and _writes is not None:
        data = args[1]
        _writes.append(data.encode() if isinstance(data, str) else bytes(data))


if not getattr(sys, "_smtpx_batch_audit", False):  # an audit hook cannot be removed
    sys.addaudithook(_audit)
    sys._smtpx_batch_audit = True  # type: ignore[attr-defined]


# ------------------------------------------------------------------ the messages


def sender(i: int) -> str:
    """Message *i*'s sender: the server tells the transactions apart by it."""
    return f"s{i}@client.test"


def message(i: int) -> bytes:
    return b"Subject: m%d\r\n\r\nbody of message %d\r\n" % (i, i)


def item(i: int, *recipients: str) -> tuple[bytes, str, list[str]]:
    return message(i), sender(i), list(recipients or [A])


def mail(i: int) -> bytes:
    return b"mail from:<%s>\r\n" % sender(i).encode()


def envelope(i: int, *recipients: str, data: bool = True) -> bytes:
    """MAIL, the RCPTs and (without CHUNKING) DATA of message *i*."""
    rcpts = b"".join(rcpt_line(r) for r in recipients or [A])
    return mail(i) + rcpts + (b"data\r\n" if data else b"")


def content(i: int) -> bytes:
    """Message *i* after DATA: its lines and the terminator (nothing to dot-stuff)."""
    return message(i) + b".\r\n"


def bdat(i: int, body: bytes | None = None) -> bytes:
    body = message(i) if body is None else body
    return b"BDAT %d LAST\r\n" % len(body) + body


def eager(i: int, *recipients: str) -> bytes:
    """A whole transaction in one piece: MAIL, RCPTs, BDAT LAST and the content."""
    return envelope(i, *recipients, data=False) + bdat(i)


# ------------------------------------------------------------------ the server

DROP = b"<drop the connection>"  # as a reply: close without answering
HARAKA_503 = b"503 5.5.0 pipelined after end of DATA"


class _Ended(Exception):
    """The server ended the session (421, or a dropped connection)."""


@dataclass
class Server:
    """A small SMTP (or LMTP) server: everything accepted unless *replies* says otherwise.

    *replies* keys: ``("mail", i)``, ``("rcpt", i, address)``, ``("data", i)`` (the reply
    to DATA), ``("final", i)`` after the content (LMTP: ``("final", i, address)``), for
    message *i* (its sender ``s<i>@client.test``), and ``("rset",)`` for every RSET.  A
    421 reply closes the session; DROP
    closes the connection without a reply.  *haraka*: answer ``503`` to every command
    received after the end of DATA and before its reply, as Haraka does.
    """

    offer: tuple[bytes, ...] = PIPELINING
    replies: dict[tuple[Any, ...], bytes] = field(default_factory=dict)
    lmtp: bool = False
    haraka: bool = False
    stall_at: int | None = None  # never answer message i's content; wait for EOF
    commands: list[bytes] = field(default_factory=list)  # every command answered, in order
    delivered: list[tuple[int, tuple[str, ...], bytes]] = field(default_factory=list)
    pending: dict[int, bytes] = field(default_factory=dict)  # see _final
    refused_after_data: list[bytes] = field(default_factory=list)
    finals: int = 0  # final replies sent (read by the test while the batch runs)
    stalled: threading.Event = field(default_factory=threading.Event)
    quit: bool = False
    received: list[bytes] = field(default_factory=list)  # every line read, drained ones too

    def __call__(self, peer: Peer) -> None:
        self.received = peer.received
        # Each reply is its own send: without this, Nagle's algorithm holds one back
        # until the client's delayed acknowledgement (40 ms a message).
        peer.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        greet(peer, *self.offer, lmtp=self.lmtp)
        try:
            self._serve(peer)
        except _Ended:
            pass

    def _serve(self, peer: Peer) -> None:
        index: int | None = None  # the open transaction's message
        accepted: list[str] = []
        body = b""
        while True:
            line = peer.readline()
            if not line:
                return  # EOF
            self.commands.append(line)
            verb = line[:4].upper()
            if verb == b"MAIL":
                found = re.search(rb"<s(\d+)@", line)
                assert found is not None, line
                i = int(found[1])
                reply = self.replies.get(("mail", i), b"250 2.1.0 ok")
                if index is not None:
                    reply = b"503 5.5.1 nested MAIL command"
                elif reply.startswith(b"250"):
                    index, accepted, body = i, [], b""
                self._reply(peer, reply)
            elif verb == b"RCPT":
                address = line[line.index(b"<") + 1 : line.index(b">")].decode()
                if index is None:
                    self._reply(peer, b"503 5.5.1 need MAIL command")
                    continue
                reply = self.replies.get(("rcpt", index, address), b"250 2.1.5 ok")
                if reply[:3] in (b"250", b"251"):
                    accepted.append(address)
                self._reply(peer, reply)
            elif verb == b"DATA":
                if index is None or not accepted:
                    self._reply(peer, b"554 5.5.1 no valid recipients")
                    continue
                reply = self.replies.get(("data", index), b"354 go ahead")
                self._reply(peer, reply)
                if reply.startswith(b"354"):
                    self._final(peer, index, accepted, peer.read_content())
                index = None
            elif verb == b"BDAT":
                _, size, *last = line.split()
                chunk = read_exact(peer, int(size))
                if index is None or not accepted:
                    self._reply(peer, b"554 5.5.1 no valid recipients")
                    index = None if last else index
                elif last:
                    self._final(peer, index, accepted, body + chunk)
                    index = None
                else:
                    body += chunk
                    self._reply(peer, b"250 2.0.0 chunk received")
            elif verb == b"NOOP":
                self._reply(peer, b"250 2.0.0 ok")
            elif verb == b"RSET":
                index = None
                self._reply(peer, self.replies.get(("rset",), b"250 2.0.0 reset"))
            elif verb == b"QUIT":
                self.quit = True
                self._reply(peer, b"221 2.0.0 bye")
                assert peer.readline() == b"", "nothing after QUIT"
                return
            else:
                self._reply(peer, b"502 5.5.2 unknown command")

    def _reply(self, peer: Peer, reply: bytes) -> None:
        if reply == DROP:
            raise _Ended
        peer.send(reply + b"\r\n")
        if reply.startswith(b"421"):
            # RFC 5321 section 3.8: the server closes; read until the client does too, so
            # that the client reads the 421 rather than a reset connection.
            peer.sock.shutdown(socket.SHUT_WR)
            while peer.readline():
                pass
            raise _Ended

    def _final(self, peer: Peer, i: int, accepted: list[str], body: bytes) -> None:
        """The replies after message *i*'s content.  What the client has already sent is
        kept in ``pending[i]``: it was written before the client had this reply."""
        _take_what_arrived(peer)
        self.pending[i] = peer._buffer
        behind = peer._buffer.splitlines(keepends=True) if self.haraka else []
        if i == self.stall_at:
            self.stalled.set()
            while peer.readline():
                pass
            raise _Ended
        if self.lmtp:  # RFC 2033 section 4.2: one reply per accepted recipient
            replies = [self.replies.get(("final", i, a), b"250 2.0.0 saved") for a in accepted]
        else:
            replies = [self.replies.get(("final", i), b"250 2.0.0 ok: queued as Q%d" % i)]
        if any(reply.startswith(b"2") for reply in replies):
            self.delivered.append((i, tuple(accepted), body))
        self.finals += 1  # counted before the client can have it
        for reply in replies:
            self._reply(peer, reply)
        for line in behind:  # Haraka: "pipelined after end of DATA", QUIT included
            if line.endswith(b"\n"):
                assert peer.readline() == line
                self.commands.append(line)
                self.refused_after_data.append(line)
                self._reply(peer, HARAKA_503)


def _take_what_arrived(peer: Peer) -> None:
    """Move what the client has sent so far into the peer's buffer, without waiting."""
    timeout = peer.sock.gettimeout()
    peer.sock.settimeout(0)
    try:
        while data := peer.sock.recv(1 << 20):
            peer._buffer += data
    except BlockingIOError:
        pass
    finally:
        peer.sock.settimeout(timeout)


# ------------------------------------------------------------------ running a batch


@pytest.fixture(params=["sync", "asyncio"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class Run:
    entries: list[smtpx.SendResult | Exception]
    writes: list[bytes]  # every write of deliver_many, in order
    pipeline_after_content: bool
    closed: bool  # deliver_many closed the connection
    error: Exception | None = None  # what deliver_many raised, with raises=True
    noop: tuple[int, bytes] | None = None  # the reply to a NOOP after it, with raises=True


def run(
    driver: str,
    server: Server,
    items: Iterable[Any],
    *,
    ehlo: bool = True,
    raises: bool = False,
    timeout: float = CLIENT["timeout"],
    **kwargs: Any,
) -> Run:
    """Connect with *driver* (EHLO first unless not *ehlo*), run ``deliver_many(items,
    **kwargs)`` while recording its writes, close.  *raises*: deliver_many is expected to
    raise; keep its exception and say NOOP afterwards.  A failed assert in the server is
    raised in preference to the client's exception."""
    failure: Exception | None = None
    outcome: Run | None = None
    try:
        with scripted_server(server) as (port, _):
            try:
                args = (driver, port, server.lmtp, ehlo, raises, timeout, items, kwargs)
                outcome = _run_client(*args)
            except Exception as exc:
                failure = exc
    except AssertionError:
        raise
    except OSError:
        if failure is None:
            raise
    if failure is not None:
        raise failure
    assert outcome is not None
    return outcome


def _run_client(
    driver: str,
    port: int,
    lmtp: bool,
    ehlo: bool,
    raises: bool,
    timeout: float,
    items: Iterable[Any],
    kwargs: dict[str, Any],
) -> Run:
    global _writes
    writes: list[bytes] = []
    error: Exception | None = None
    noop = None
    entries: list[smtpx.SendResult | Exception] = []
    if driver == "sync":
        options = {**CLIENT, "timeout": timeout}
        client = (smtpx.LMTP if lmtp else smtpx.SMTP)("127.0.0.1", port, **options)
        try:
            if ehlo:
                client.ehlo_or_helo_if_needed()
            _writes = writes
            try:
                entries = client.deliver_many(items, **kwargs)
            except Exception as exc:
                if not raises:
                    raise
                error = exc
            finally:
                _writes = None
            flag, closed = client._pipeline_after_content, client.sock is None
            if raises:
                noop = client.noop()
        finally:
            client.close()
        return Run(entries, writes, flag, closed, error, noop)

    async def main() -> Run:
        global _writes
        nonlocal error, noop, entries
        options = {**CLIENT, "timeout": timeout}
        client = (smtpx.AsyncLMTP if lmtp else smtpx.AsyncSMTP)("127.0.0.1", port, **options)
        await client.connect()
        try:
            if ehlo:
                await client.ehlo_or_helo_if_needed()
            _writes = writes
            try:
                entries = await client.deliver_many(items, **kwargs)
            except Exception as exc:
                if not raises:
                    raise
                error = exc
            finally:
                _writes = None
            flag, closed = client._pipeline_after_content, client.sock is None
            if raises:
                noop = await client.noop()
        finally:
            await client.close()
        return Run(entries, writes, flag, closed, error, noop)

    return asyncio.run(main())


def results(entries: list[Any]) -> list[smtpx.SendResult]:
    assert all(isinstance(e, smtpx.SendResult) for e in entries), entries
    return entries


def queue_ids(entries: list[Any]) -> list[str | None]:
    return [e.queue_id if isinstance(e, smtpx.SendResult) else type(e).__name__ for e in entries]


def delivered(server: Server) -> list[int]:
    return [i for i, _, _ in server.delivered]


def mails(server: Server, lines: list[bytes] | None = None) -> list[int]:
    """The messages whose MAIL the server answered, in order (a resend shows twice); with
    *lines* (``server.received``), whose MAIL it received, answered or not."""
    lines = server.commands if lines is None else lines
    return [int(m[1]) for c in lines if (m := re.match(rb"mail from:<s(\d+)@", c))]


def sent_once(server: Server) -> bool:
    received = mails(server, server.received)
    return len(received) == len(set(received))


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
