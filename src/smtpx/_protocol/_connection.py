"""The client side of one SMTP or LMTP session, as a state machine with no I/O.

Modelled on h11: ``send(command) -> bytes`` for the driver to write,
``receive_data(bytes)`` for what it read (``b""`` is end of file) and ``next_event()``,
which returns a ``Reply``, ``Event.NEED_DATA`` or ``Event.CONNECTION_CLOSED``.

All session state lives here.  Each command sent is queued, and each reply is paired with
the oldest queued command, so pipelined commands (RFC 2920) get their own replies in order;
a reply that arrives with nothing queued is an error, never silently taken as the answer to
the next command.

State table (what may be sent in each state; anything else raises LocalProtocolError):

=========  ====================================  =========================================
state      may send                              left by
=========  ====================================  =========================================
GREETING   nothing                               the greeting reply -> READY
READY      any command                           354 to DATA -> MESSAGE; 220 to STARTTLS
                                                 -> TLS; 334 to AUTH -> SASL; QUIT or 421
                                                 -> CLOSED
SASL       one response line (RFC 4954 sec. 4)   its reply: 334 -> SASL, other -> READY
MESSAGE    content (send_data), end_data()       end_data() -> READY
TLS        nothing                               start_tls() -> READY, capabilities gone
CLOSED     nothing
=========  ====================================  =========================================

A command may be sent while replies are outstanding only when the server offered
PIPELINING and every outstanding command is one RFC 2920 section 3.1 lets a group continue
after: MAIL, RCPT, RSET, a BDAT chunk (RFC 3030 section 4.2), and the end of a message's
content ("the RSET/MAIL FROM sequence necessary to initiate a new message transaction can be
placed in the same group as the final transfer of the headers and body of the previous
message"), which only a new transaction (MAIL, RSET) or QUIT may follow.

Bytes that arrive with no command outstanding answer nothing and are refused (a reply
injection), with one exception: RFC 5321 section 3.8 lets a server that must shut down send
``421`` on its own, "on the assumption that the client will receive it after the next command
is issued".  A buffered 421 is therefore kept as the reply to the next command
(``closing_reply_buffered`` tells the driver not to bother writing it).

An optional *observer* is told what happens (``_events``): each command as it is queued,
secrets redacted; content by size; each reply; STARTTLS; the end.  Without one, no event
is built: each place checks ``self._observer`` once.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable

from ._commands import Command
from ._data import DataEncoder
from ._errors import LocalProtocolError, RemoteProtocolError
from ._events import (
    CommandSent,
    ConnectionClosed,
    ContentSent,
    Observer,
    RawSent,
    ReplyReceived,
    SessionEvent,
    TLSInfo,
    TLSStarted,
    redact_command,
    redact_raw,
    starts_auth,
)
from ._extensions import Extensions
from ._reply import Reply, ReplyParser

__all__ = ["ClientConnection", "Event", "State"]


class State(enum.Enum):
    GREETING = "greeting"
    READY = "ready"
    SASL = "sasl"
    MESSAGE = "message"
    TLS = "tls"
    CLOSED = "closed"


class Event(enum.Enum):
    NEED_DATA = "need data"
    CONNECTION_CLOSED = "connection closed"


# Keywords of queued replies that are not commands the caller sent.
_GREETING = "<greeting>"
_END_OF_DATA = "<end of data>"
_SASL_RESPONSE = "<sasl response>"
_UNKNOWN = "<unknown>"  # a reply the caller asked for after writing raw bytes

# Commands a pipelined group may go on after (RFC 2920 section 3.1); the common ones, which
# the reply queue does not even count.
_PIPELINABLE = frozenset({"MAIL", "RCPT", "RSET"})
# What may follow the end of a message's content in the same group: a new transaction, or
# the end of the session (RFC 2920 section 3.1).
_AFTER_CONTENT = frozenset({"MAIL", "RSET", "QUIT"})
_HELLO = frozenset({"EHLO", "LHLO", "HELO"})
_CLOSING = 421  # RFC 5321 section 3.8: the service is closing the channel


class _Outstanding:
    """The queue of replies still due, with counts kept as it changes, so that checking
    whether a pipelined group may continue costs the same for 1 or 1,000 recipients."""

    __slots__ = ("_queue", "blocking", "final")

    def __init__(self, first: str) -> None:
        self._queue: deque[str] = deque()
        self.blocking = 0  # entries after which RFC 2920 lets no command follow
        self.final = 0  # replies that end a message
        self.append(first)

    def __len__(self) -> int:
        return len(self._queue)

    def __bool__(self) -> bool:
        return bool(self._queue)

    def first(self) -> str:
        return self._queue[0]

    def last(self) -> str:
        return self._queue[-1]

    def _count(self, keyword: str, step: int) -> None:
        if keyword == _END_OF_DATA:
            self.final += step
        elif keyword != "BDAT":
            self.blocking += step

    def append(self, keyword: str) -> None:
        self._queue.append(keyword)
        if keyword not in _PIPELINABLE:  # MAIL, RCPT, RSET: the common case, not counted
            self._count(keyword, 1)

    def extend(self, keywords: list[str]) -> None:
        self._queue.extend(keywords)
        for keyword in keywords:
            if keyword not in _PIPELINABLE:
                self._count(keyword, 1)

    def popleft(self) -> str:
        keyword = self._queue.popleft()
        if keyword not in _PIPELINABLE:
            self._count(keyword, -1)
        return keyword

    def clear(self) -> None:
        self._queue.clear()
        self.blocking = self.final = 0


class ClientConnection:
    """One session's protocol state.  ``lmtp=True`` expects RFC 2033's replies.

    *observer* is called with each event (``observe`` changes it); *content*: content
    events carry the bytes.  *clock* gives the events' times (seconds, monotonic).
    """

    def __init__(
        self,
        *,
        lmtp: bool = False,
        observer: Observer | None = None,
        content: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lmtp = lmtp
        self.state = State.GREETING
        #: What the last successful EHLO/LHLO offered; emptied by HELO and STARTTLS.
        self.extensions = Extensions()
        #: True from a 250 to MAIL until the transaction ends (final reply or RSET).
        self.in_transaction = False
        #: Recipients accepted (250/251) in the current transaction.
        self.accepted_recipients = 0
        self._pending = _Outstanding(_GREETING)
        self._parser = ReplyParser()
        self._encoder: DataEncoder | None = None
        #: The session is over (``state`` is CLOSED); a plain attribute, read per reply.
        self.closed = False
        #: The server closed the connection (the driver read end of file).
        self.peer_closed = False
        self._observer = observer
        self._content = content
        self._clock = clock
        self._started = self._last_sent = clock()
        self._raw_auth = False  # the last raw write held an AUTH command

    # ----------------------------------------------------------------- events

    @property
    def observer(self) -> Observer | None:
        return self._observer

    def observe(self, observer: Observer | None, *, content: bool = False) -> None:
        """Report events to *observer* from now on (None: to nobody)."""
        self._observer = observer
        self._content = content

    def elapsed(self) -> float:
        """Seconds since the session started (since this object was made)."""
        return self._clock() - self._started

    def emit(self, event: SessionEvent) -> None:
        """Report *event* (the drivers report their own: connecting, connected)."""
        if self._observer is not None:
            self._observer(event)

    def _sent(self) -> float:
        now = self._clock()
        self._last_sent = now
        return now - self._started

    def _report_command(self, command: Command, in_sasl: bool) -> None:
        line, redacted = redact_command(command.verb, command.keyword, command.argument, in_sasl)
        self.emit(CommandSent(line, redacted, self._sent()))

    def _report_content(self, data: bytes, via: str, last: bool) -> None:
        shown = data if self._content else None
        self.emit(ContentSent(len(data), via, last, shown, self._sent()))

    def _report_reply(self, keyword: str, reply: Reply) -> None:
        now = self._clock()
        self.emit(ReplyReceived(reply, keyword, now - self._started, now - self._last_sent))

    def sent_raw(self, data: str | bytes) -> None:
        """The caller wrote *data* itself (smtplib's ``send``): report it, redacted like a
        command (``_events.redact_raw``); content only to an observer that asked for it.

        An AUTH command written raw is noted, so that a 334 to it opens the exchange
        (``expect_reply``) and the responses that follow are known for secrets too.
        """
        if self.state is not State.MESSAGE:
            self._raw_auth = starts_auth(data)
        if self._observer is None:
            return
        shown, redacted = redact_raw(data, self.state is State.SASL)
        private = self.state is State.MESSAGE and not self._content
        self.emit(RawSent(None if private else shown, len(data), redacted, self._sent()))

    # ----------------------------------------------------------------- sending

    @property
    def pending(self) -> int:
        """How many replies are still expected."""
        return len(self._pending)

    @property
    def has_buffered(self) -> bool:
        """Bytes were received that no reply returned yet has used."""
        return self._parser.has_buffered

    @property
    def awaiting_final_reply(self) -> bool:
        """True when the next reply is one that ends a message (after its content)."""
        return bool(self._pending) and self._pending.first() == _END_OF_DATA

    def send(self, command: Command, encoding: str = "ascii") -> bytes:
        """Check that *command* may be sent now, queue its reply, and return its bytes."""
        if self.state is State.SASL:
            keyword = _SASL_RESPONSE
        elif self.state is State.READY:
            keyword = command.keyword
        else:
            raise LocalProtocolError(self._why_not_now())
        self._check_sendable(command.verb.upper())
        wire = command.wire(encoding)  # may raise before any state changes
        self._pending.append(keyword)
        if self._observer is not None:
            self._report_command(command, keyword == _SASL_RESPONSE)
        return wire

    @property
    def closing_reply_buffered(self) -> bool:
        """A 421 arrived with no command outstanding: the server is closing (RFC 5321
        section 3.8), and the next command will get it as its reply without being read."""
        return not self._pending and self._parser.buffered_code() == _CLOSING

    def _check_sendable(self, verb: str) -> None:
        """May a command go now, given the replies still due and the bytes received?"""
        pending = self._pending
        if pending:
            waiting = pending.last()
            if pending.blocking or "pipelining" not in self.extensions:
                raise LocalProtocolError(f"cannot send {verb!r}: a reply to {waiting!r} is pending")
            if waiting == _END_OF_DATA and verb not in _AFTER_CONTENT:
                raise LocalProtocolError(f"cannot send {verb!r} right after a message's content")
            if waiting == "BDAT" and verb != "RSET":
                raise LocalProtocolError(f"cannot send {verb!r} between the chunks of a message")
        elif self._parser.has_buffered and self._parser.buffered_code() != _CLOSING:
            # Bytes arrived that answer nothing we sent: a server out of step, or an
            # attacker's pipelined injection.  Either way the stream cannot be trusted.
            raise RemoteProtocolError("the server sent data that answers no command")

    def send_group(self, commands: list[Command], encoding: str = "ascii") -> bytes:
        """A pipelined group (RFC 2920 section 3.1) as one write: every command but the
        last must be one a group may continue after (MAIL, RCPT, RSET).

        All are checked and encoded before any is queued, so a refusal leaves no trace.
        """
        if len(commands) < 2:
            return self.send(commands[0], encoding) if commands else b""
        if self.state is not State.READY:
            raise LocalProtocolError(self._why_not_now())
        if "pipelining" not in self.extensions:
            raise LocalProtocolError("the server does not offer PIPELINING")
        keywords = [command.keyword for command in commands]
        for keyword, command in zip(keywords[:-1], commands, strict=False):
            if keyword not in _PIPELINABLE:
                raise LocalProtocolError(f"{command.verb!r} cannot be followed in a group")
        data = ("\r\n".join([command.text for command in commands]) + "\r\n").encode(encoding)
        self._check_sendable(keywords[0])
        self._pending.extend(keywords)
        if self._observer is not None:
            for command in commands:
                self._report_command(command, False)
        return data

    def send_bdat(self, size: int, last: bool, chunk: bytes | None = None) -> bytes:
        """The BDAT line for a chunk of *size* octets (RFC 3030 section 2), which the
        caller sends right after it, unchanged.  A last chunk ends the message.  *chunk*
        (the chunk itself) is only for an observer that asked for content."""
        if self.state is not State.READY:
            raise LocalProtocolError(self._why_not_now())
        pending = self._pending
        if pending:
            if pending.blocking or "pipelining" not in self.extensions:
                raise LocalProtocolError(f"cannot send BDAT: a reply to {pending.last()!r}")
            if pending.last() == _END_OF_DATA:
                raise LocalProtocolError("cannot send BDAT right after a message's content")
        elif self._parser.has_buffered and self._parser.buffered_code() != _CLOSING:
            raise RemoteProtocolError("the server sent data that answers no command")
        if last:
            self._expect_final_replies()
        else:
            self._pending.append("BDAT")
        if self._observer is not None:
            self._report_command(Command("BDAT", f"{size} LAST" if last else str(size)), False)
            data = chunk if chunk is not None and self._content else None
            self.emit(ContentSent(size, "BDAT", last, data, self._sent()))
        return b"BDAT %d LAST\r\n" % size if last else b"BDAT %d\r\n" % size

    def content_encoder(self) -> DataEncoder:
        """A streaming encoder for BDAT content: CRLF line ends, no dot-stuffing."""
        return DataEncoder(dot_stuffing=False)

    def send_data(self, chunk: bytes) -> bytes:
        """Encode a piece of message content (after the 354 reply to DATA)."""
        if self.state is not State.MESSAGE or self._encoder is None:
            raise LocalProtocolError(self._why_not_now())
        data = self._encoder.feed(chunk)
        if self._observer is not None and data:
            self._report_content(data, "DATA", False)
        return data

    def end_data(self, last: bytes = b"") -> bytes:
        """Finish the content with its *last* piece: returns the last bytes and the ``.``
        terminator line (one write, one event)."""
        encoder = self._encoder
        if self.state is not State.MESSAGE or encoder is None:
            raise LocalProtocolError(self._why_not_now())
        tail = encoder.feed(last) + encoder.finish() if last else encoder.finish()
        self._encoder = None
        self._expect_final_replies()
        if self._observer is not None:
            self._report_content(tail, "DATA", True)
        return tail

    def expect_reply(self) -> None:
        """The caller is about to read a reply it did not send a queued command for.

        smtplib lets programs write raw bytes with ``send`` and then ``getreply``; this
        keeps such programs working without treating their reply as unsolicited.
        """
        if self.state is State.MESSAGE:
            self._encoder = None
            self._expect_final_replies()  # the raw content ended with its terminator
        elif not self._pending:
            if self.state is State.SASL:
                self._pending.append(_SASL_RESPONSE)
            else:
                self._pending.append("AUTH" if self._raw_auth else _UNKNOWN)
        self._raw_auth = False

    def _expect_final_replies(self) -> None:
        # RFC 2033 section 4.2: after the content an LMTP server sends one reply for each
        # recipient it accepted, in RCPT order; an SMTP server sends one.
        count = max(1, self.accepted_recipients) if self.lmtp else 1
        for _ in range(count):
            self._pending.append(_END_OF_DATA)
        self.state = State.READY

    def start_tls(self, tls: TLSInfo | None = None) -> None:
        """The TLS handshake after STARTTLS succeeded (*tls*: what the driver saw of it).

        RFC 3207 section 4.2: the client must discard what it learned before TLS.  Bytes
        that arrived in clear after the 220 are discarded too: a man in the middle may have
        planted them to be read as replies inside the encrypted session.
        """
        if self.state is not State.TLS:
            raise LocalProtocolError(self._why_not_now())
        self._parser.discard()
        self.extensions = Extensions()
        self.state = State.READY
        if self._observer is not None:
            self.emit(TLSStarted(tls, self.elapsed()))

    def close(self, reason: str = "closed") -> None:
        """The driver closed the connection (or the session ended: *reason*)."""
        was_closed = self.closed
        self.state = State.CLOSED
        self.closed = True
        self._pending.clear()
        self._encoder = None
        if self._observer is not None and not was_closed:
            self.emit(ConnectionClosed(reason, self.elapsed()))

    # --------------------------------------------------------------- receiving

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the server; ``b""`` means it closed the connection."""
        if data:
            self._parser.feed(data)
        else:
            self.peer_closed = True

    def next_event(self) -> Reply | Event:
        """The next reply, or what the driver must do before there can be one."""
        reply = self._parser.next_reply()
        if reply is None:
            if self.peer_closed:
                # A reply cut off before its line end is a lost connection, not a reply.
                self.close("lost")
                return Event.CONNECTION_CLOSED
            return Event.NEED_DATA
        if not self._pending:
            raise RemoteProtocolError(f"unsolicited reply from the server: {reply.code}")
        keyword = self._pending.popleft()
        if self._observer is not None:
            self._report_reply(keyword, reply)
        self._on_reply(keyword, reply)
        return reply

    def next_replies(self, limit: int) -> list[Reply]:
        """Replies already received in full, up to *limit*, each paired with its command
        (a pipelined batch in one call); none when more bytes are needed."""
        if self.state is State.CLOSED:
            return []
        # Only as many as are due: the parser keeps the rest for the next call, where an
        # extra reply is seen for what it is (unsolicited).
        pending = self._pending
        due = len(pending)
        replies = self._parser.next_replies(min(limit, due) or 1)
        observer = self._observer
        for index, reply in enumerate(replies):
            if index == due:
                raise RemoteProtocolError(f"unsolicited reply from the server: {reply.code}")
            keyword = pending.popleft()
            if observer is not None:
                self._report_reply(keyword, reply)
            self._on_reply(keyword, reply)
            if self.closed:
                return replies[: index + 1]  # 421: whatever follows is not read
        return replies

    def _on_reply(self, keyword: str, reply: Reply) -> None:
        code = reply.code
        if keyword == "RCPT" and code != 421:  # the common case first: fan-outs
            if code in (250, 251):
                self.accepted_recipients += 1
            return
        if code == 421:
            # RFC 5321 section 3.8: the service is closing the channel, whatever we sent.
            self.close("421")
            return
        if (keyword in _HELLO or keyword == "RSET") and 200 <= code <= 299:
            # RFC 5321 section 4.1.4: EHLO and HELO, like RSET, clear any transaction.
            # Applied at the reply, in order: replies to MAIL and RCPT pipelined before
            # them arrive first and must not reopen it.
            self._end_transaction()
        if keyword == _GREETING:
            self.state = State.READY
        elif keyword in ("EHLO", "LHLO"):
            self.extensions = (
                Extensions.from_ehlo_lines(reply.lines) if code == 250 else (Extensions())
            )
        elif keyword == "HELO":
            if code == 250:
                self.extensions = Extensions()
        elif keyword == "MAIL":
            if code == 250:
                self.in_transaction = True
                self.accepted_recipients = 0
        elif keyword == "RCPT":
            if code in (250, 251):
                self.accepted_recipients += 1
        elif keyword == "DATA":
            if code == 354:
                if self._parser.has_buffered:
                    # After 354 the server waits for the content (RFC 5321 section 4.1.1.4):
                    # bytes behind it answer nothing yet.  Taken as the reply to the end of
                    # the content, they would let an attacker who can inject into the
                    # stream fake a "250 queued" for a message the server never took.
                    raise RemoteProtocolError("the server sent data after its 354 reply to DATA")
                self._encoder = DataEncoder()
                self.state = State.MESSAGE
        elif keyword == _END_OF_DATA:
            # The last reply for this message (LMTP sends one per recipient) ends its
            # transaction; a pipelined MAIL of the next one may already be queued.
            if not self._pending or self._pending.first() != _END_OF_DATA:
                self._end_transaction()
        elif keyword == "BDAT":
            pass  # a refused chunk fails the transaction; the caller resets it
        elif keyword == "STARTTLS":
            if code == 220:
                self.state = State.TLS
        elif keyword == "QUIT" and 200 <= code <= 299:
            self.close("QUIT")  # 221; a refusal (a 503 to a pipelined QUIT) closes nothing
        if keyword in ("AUTH", _SASL_RESPONSE):
            self.state = State.SASL if code == 334 else State.READY

    def _end_transaction(self) -> None:
        self.in_transaction = False
        self.accepted_recipients = 0

    def _why_not_now(self) -> str:
        return {
            State.GREETING: "the server's greeting has not been received yet",
            State.READY: "no message content is being sent (no 354 reply to DATA)",
            State.SASL: "an AUTH exchange is in progress",
            State.MESSAGE: "message content is being sent; finish it first",
            State.TLS: "STARTTLS was accepted; the TLS handshake must come first",
            State.CLOSED: "the connection is closed",
        }[self.state]
