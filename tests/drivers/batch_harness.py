"""The scripted server and the client runner of the ``deliver_many`` tests
(``test_deliver_many.py``, ``test_deliver_many_failures.py``).

Every write the client makes is recorded through the ``smtplib.send`` audit event both
drivers raise, so each test states the exact grouping; the server also records what it had
already received when it was about to give each message's final reply, which shows what
the client sent before it had that reply.
"""

from __future__ import annotations

import asyncio
import re
import socket
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import smtpx

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
