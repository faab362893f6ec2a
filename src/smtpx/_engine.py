"""The transaction engine: every message smtpx sends goes through ``transact``.

One loop sends a sequence of planned transactions (``_plan.Job``) over one connection and
records, for each, every reply it got (``Outcome``); ``_outcomes`` turns those into what
each API returns (smtplib's dict and exceptions, a ``SendResult``, a batch entry).

Round trips are what a user waits for on a real network, so the engine writes as much as
the RFCs allow before it reads:

- MAIL, every RCPT and DATA go in one write (RFC 2920).  With CHUNKING (RFC 3030) a small
  message's content goes with them as ``BDAT n LAST``: one round trip per message.  Above
  ``EAGER_LIMIT``, or when its size is unknown, the content waits for the RCPT replies, so
  that a refused transaction does not waste a large upload.
- The next transaction starts in the same write as the end of the previous one's content
  (RFC 2920 section 3.1: "the RSET/MAIL FROM sequence necessary to initiate a new message
  transaction can be placed in the same group as the final transfer of the headers and
  body of the previous message"); with CHUNKING up to *window* transactions are in flight.
- QUIT goes with the last transaction when the caller says it is the last.

Servers differ from the RFC here: Haraka answers ``503`` to any command pipelined after the
end of a message's content, before that content's reply.  A transaction whose MAIL got a
503 while it was pipelined behind another one was not executed: it is sent again on its
own, and the connection stops pipelining past the end of content
(``client._pipeline_after_content``, which a pool can remember per destination).  A QUIT
refused the same way is said again.  Haraka also drops the connection when more than 8 KiB
arrive there, so a large envelope is never written behind an end of content
(``BEHIND_LIMIT``).

A failed transaction leaves an RSET due (smtplib resets after a failure too): it heads the
next group, or goes on its own after the last transaction.  A connection closed (421) or
lost mid-way is recorded on every transaction it touched: *not attempted* (the server never
took it: safe to send again) or, when its content was sent and its final reply never came,
*outcome unknown*.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from ._exceptions import SMTPServerDisconnected, from_protocol_error
from ._plan import Job, offers
from ._protocol import (
    ClientConnection,
    Command,
    DataEncoder,
    Extensions,
    RemoteProtocolError,
    Reply,
)
from ._steps import Close, Flow, Invoke, Read, Write
from ._wire import Client, connection, encode_commands, send_step

__all__ = [
    "BEHIND_LIMIT",
    "DEFAULT_WINDOW",
    "EAGER_LIMIT",
    "Engine",
    "Lost",
    "Outcome",
    "transact",
]

#: Largest content sent in the same write as its envelope (BDAT).  Above it the client
#: waits for the RCPT replies, so that a transaction refused at RCPT wastes no upload:
#: 256 KiB is a few round trips of upload on a slow link, and covers most notifications.
EAGER_LIMIT = 256 * 1024
#: Transactions in flight at once with CHUNKING, when the caller does not say.
DEFAULT_WINDOW = 8
# BDAT chunks of a streamed message are sent in pieces of this size (RFC 3030 leaves it
# to the client).
BDAT_CHUNK = 1024 * 1024
#: Largest envelope (its MAIL, RCPT and DATA lines) written behind the end of another
#: transaction's content, before that content's reply.  Haraka drops the connection when
#: more than 8 KiB arrive there (``MAX_POST_DATA_BYTES``), which would leave the message
#: before as *outcome unknown*; it cannot be recognised before its first 503.  A larger
#: envelope (about a hundred recipients) waits for the reply: one round trip.
BEHIND_LIMIT = 4096
# Queued writes are joined into one up to this size (one write: no segment held back by
# Nagle's algorithm waiting for an acknowledgement); a larger piece goes on its own rather
# than being copied.
JOIN_LIMIT = 512 * 1024


class Engine(Client, Protocol):
    """What the engine reads and sets on a client, beyond the wire's needs."""

    _lmtp: bool
    _pipeline_after_content: bool

    def has_extn(self, opt: str) -> bool: ...
    @property
    def _offered(self) -> Extensions: ...


class Lost(enum.Enum):
    """Why a transaction has no final reply."""

    NOT_ATTEMPTED = "not attempted"  # the server never took it: safe to send again
    UNKNOWN = "outcome unknown"  # its content was sent; it may have been delivered


@dataclass(slots=True, eq=False)
class Outcome:
    """Every reply one transaction got, and how it ended."""

    job: Job
    mail: Reply | None = None
    rcpts: list[Reply] = field(default_factory=list)
    data: Reply | None = None  # the reply to DATA (354 or a refusal); None with BDAT
    chunk: Reply | None = None  # the first refusal of a BDAT chunk before the last
    final: list[Reply] = field(default_factory=list)  # after the content (LMTP: several)
    accepted: int = 0  # recipients accepted at RCPT (250 or 251)
    lost: Lost | None = None
    error: BaseException | None = None  # what cut the connection, or the content source


class _Mode(enum.Enum):
    DATA = "data"  # DATA, wait for 354, then the content
    EAGER = "eager"  # BDAT LAST with the content, in the envelope's write
    CHUNKS = "chunks"  # BDAT chunks after the RCPT replies


@dataclass(slots=True, eq=False)
class _Transaction:
    outcome: Outcome
    index: int  # its place in the batch's entries
    mode: _Mode
    reset_first: bool = False  # RSET heads its group: a transaction before it failed
    behind: bool = False  # written while another transaction's replies were due
    retried: bool = False
    content_sent: bool = False  # the end of its content is written (or queued)
    due: int = 0  # replies due after the content: earlier chunks', then the final ones


class _SourceFailed(Exception):
    """The caller's content (a file, an iterator) failed midway."""


def transact(
    client: Engine,
    jobs: Iterable[Job | BaseException],
    *,
    window: int = 1,
    quit: bool = False,
    compat: bool = False,
    graph: bool = False,
) -> Flow[list[Outcome | BaseException]]:  # a flow (the batch's), not a generator itself
    """Send *jobs* in order, pipelined as allowed; one entry per job, in order (an
    exception given in place of a job is passed through).

    *compat*: smtplib's ``sendmail`` rules (no RSET after a refused DATA, a final reply
    other than 250 is a failure).  *graph*: a method of smtplib's graph was replaced, so
    every command goes through ``putcmd`` and ``getreply`` and the content through
    ``send``, one at a time.
    """
    return _Batch(client, connection(client), window, quit, compat, graph).run(iter(jobs))


class _Batch:
    def __init__(
        self,
        client: Engine,
        conn: ClientConnection,
        window: int,
        quit: bool,
        compat: bool,
        graph: bool,
    ) -> None:
        self.client = client
        self.conn = conn
        self.lmtp = client._lmtp
        self.compat = compat
        self.graph = graph
        self.quit = quit
        self.pipelining = not graph and offers(client, "pipelining")
        self.window = max(1, window)
        self.out: list[bytes] = []  # the next write
        self.inflight: deque[_Transaction] = deque()
        self.retry: deque[_Transaction] = deque()
        self.entries: list[Outcome | BaseException] = []
        self.reset_due = False
        self.quit_sent = False
        self.closing = False  # the session must end: close without another command

    # ------------------------------------------------------------------ the loop

    def run(self, jobs: Iterator[Job | BaseException]) -> Flow[list[Outcome | BaseException]]:
        upcoming = next(jobs, None)
        conn, inflight = self.conn, self.inflight
        try:
            while not (self.closing or conn.closed):
                while (self.retry or upcoming is not None) and self._may_start(
                    self.retry[0].outcome.job if self.retry else upcoming
                ):
                    if self.retry:
                        txn = self.retry.popleft()
                    else:
                        assert upcoming is not None
                        job, upcoming = upcoming, next(jobs, None)
                        if isinstance(job, BaseException):
                            self.entries.append(job)
                            continue
                        txn = self._new(job)
                    self._start(txn)
                if not inflight:
                    break
                if self.quit and upcoming is None and not self.retry and self._may_quit():
                    self.out.append(self._commands([Command.quit()]))
                    self.quit_sent = True
                out = self.out
                if len(out) == 1 and len(out[0]) <= JOIN_LIMIT:
                    self.out = []
                    yield Write(out[0])  # the common case: one group, or one content's end
                elif out:
                    yield from self._flush()
                txn = inflight[0]
                if txn.outcome.mail is None:
                    yield from self._envelope(txn)
                else:  # the envelope is answered: the content is out
                    yield from self._read_final(txn)
        except _SourceFailed as failed:
            # No terminator was sent, so the server discards the partial message (RFC 5321
            # section 4.1.1.4); the session is out of step: cut it.
            yield Close(abort=True)
            txn = self.inflight.popleft()  # the oldest: the one whose content was going out
            txn.outcome.lost, txn.outcome.error = Lost.NOT_ATTEMPTED, failed.__cause__
            self._lost_all(SMTPServerDisconnected("closed: another message's content failed"))
        except SMTPServerDisconnected as exc:
            self._lost_all(exc)
        except RemoteProtocolError as exc:
            yield Close(abort=True)  # the stream cannot be trusted any more
            self._lost_all(from_protocol_error(exc))
        # The session ended early: whatever was not started was never attempted.
        for job in (upcoming, *jobs) if upcoming is not None else ():
            if isinstance(job, BaseException):
                self.entries.append(job)
            else:
                self.entries.append(Outcome(job, lost=Lost.NOT_ATTEMPTED))
        if self.closing or self.reset_due or self.quit:
            yield from self._end_session()
        return self.entries

    def _new(self, job: Job) -> _Transaction:
        if not job.chunking:
            mode = _Mode.DATA
        elif (
            self.pipelining
            and not self.lmtp  # LMTP's final replies depend on the RCPT replies
            and job.whole is not None
            and len(job.whole) <= EAGER_LIMIT
        ):
            mode = _Mode.EAGER
        else:
            mode = _Mode.CHUNKS
        outcome = Outcome(job)
        self.entries.append(outcome)
        return _Transaction(outcome, len(self.entries) - 1, mode)

    def _may_start(self, job: Job | BaseException | None) -> bool:
        """May *job* be written now?  Only after the end of the content of every
        transaction in flight, within the window, where the server takes commands
        pipelined after the end of content, and if its envelope is small enough there."""
        if not self.inflight:
            return True
        if not self.pipelining or not self.client._pipeline_after_content:
            return False
        if isinstance(job, Job) and _envelope_size(job) > BEHIND_LIMIT:
            return False
        return self.inflight[-1].content_sent and len(self.inflight) < self.window

    def _may_quit(self) -> bool:
        """May QUIT go in this write?  When asked for, after the end of every content, to a
        server that takes pipelined commands (RFC 2920 section 3.1: QUIT ends a group)."""
        return (
            self.pipelining
            and not self.quit_sent
            and self.client._pipeline_after_content
            and all(t.content_sent for t in self.inflight)
        )

    # ---------------------------------------------------------------- writing

    def _commands(self, commands: list[Command]) -> bytes:
        return encode_commands(self.client, self.conn, commands)

    def _queue(self, data: bytes) -> None:
        self.out.append(data)

    def _flush(self) -> Flow[None]:
        """Write what is queued: joined in one write, but for a large piece."""
        out, self.out = self.out, []
        joined: list[bytes] = []
        size = 0
        for data in out:
            if len(data) > JOIN_LIMIT:
                if joined:
                    yield Write(b"".join(joined))
                    joined, size = [], 0
                yield Write(data)
            else:
                joined.append(data)
                size += len(data)
        if joined:
            yield Write(joined[0] if len(joined) == 1 else b"".join(joined))

    def _start(self, txn: _Transaction) -> None:
        """Queue the envelope of *txn* (and its content, when it goes with it)."""
        job = txn.outcome.job
        if job.encoding == "utf-8":
            self.client.command_encoding = "utf-8"  # as smtplib's mail() does for SMTPUTF8
        txn.behind = bool(self.inflight)
        txn.reset_first, self.reset_due = self.reset_due, False
        self.inflight.append(txn)
        if self.graph or not self.pipelining:
            return  # the envelope goes command by command, in _advance
        commands = [job.mail, *job.rcpts]
        if txn.reset_first:
            commands.insert(0, Command.rset())
        if txn.mode is _Mode.DATA:
            commands.append(Command.data())
        self.out.append(self._commands(commands))
        if txn.mode is _Mode.EAGER:
            chunk = _encode_whole(job)
            self._queue(self.conn.send_bdat(len(chunk), last=True, chunk=chunk) + chunk)
            txn.content_sent = True

    # ---------------------------------------------------------------- reading

    def _read(self, count: int, replies: list[Reply] | None = None) -> Flow[list[Reply]]:
        replies = [] if replies is None else replies
        if not self.graph:
            return (yield Read(count, replies))  # type: ignore[no-any-return]
        for _ in range(count):
            code, message = yield Invoke(lambda c: c.getreply())
            replies.append(Reply(code, tuple(message.split(b"\n"))))
            if code == 421:
                break
        return replies

    def _envelope(self, txn: _Transaction) -> Flow[None]:
        """Read the replies to the oldest transaction's envelope, and act on them."""
        replies: list[Reply] = []
        try:
            if self.graph or not self.pipelining:
                yield from self._envelope_one_by_one(txn, replies)
            else:
                extra = int(txn.reset_first) + int(txn.mode is not _Mode.CHUNKS)  # RSET, DATA
                yield Read(1 + len(txn.outcome.job.rcpts) + extra, replies)
        finally:
            if txn.reset_first:
                del replies[:1]  # the RSET's reply (a 421 there ends the session)
            self._keep_envelope(txn.outcome, replies)  # even those read before a loss
        if not self._record_envelope(txn, replies):
            return
        if txn.mode is _Mode.EAGER:
            self._settle(txn, replies[-1:])
        elif txn.mode is _Mode.DATA:
            yield from self._send_data(txn)
        else:
            yield from self._send_chunks(txn)

    def _envelope_one_by_one(self, txn: _Transaction, replies: list[Reply]) -> Flow[None]:
        """Without PIPELINING, or through smtplib's graph: one command, one reply, stopping
        where the rest could only fail (MAIL refused, no recipient accepted)."""
        job = txn.outcome.job
        commands = [job.mail, *job.rcpts]
        if txn.reset_first:
            commands.insert(0, Command.rset())
        if txn.mode is _Mode.DATA:
            commands.append(Command.data())
        accepted = False
        for command in commands:
            if command.keyword == "DATA" and not accepted:
                break
            if self.graph:
                yield _putcmd_step(command)
            else:
                yield Write(self._commands([command]))
            if not (yield from self._read(1, replies)) or replies[-1].code == 421:
                break
            code = replies[-1].code
            if command.keyword == "MAIL" and code != 250:
                break
            accepted = accepted or (command.keyword == "RCPT" and code in (250, 251))

    @staticmethod
    def _keep_envelope(outcome: Outcome, replies: list[Reply]) -> None:
        outcome.mail = replies[0] if replies else None
        outcome.rcpts = rcpts = replies[1 : 1 + len(outcome.job.rcpts)]
        outcome.accepted = sum(1 for reply in rcpts if reply.code in (250, 251))

    def _record_envelope(self, txn: _Transaction, replies: list[Reply]) -> bool:
        """Act on the MAIL and RCPT (and DATA) replies; False when the transaction ends."""
        outcome = txn.outcome
        count = len(outcome.job.rcpts)
        if txn.mode is _Mode.DATA and len(replies) == count + 2:
            outcome.data = replies[-1]
        if outcome.mail is None:  # a 421 to the RSET before it: the server is closing
            self.inflight.popleft()
            outcome.lost = Lost.NOT_ATTEMPTED
            self._lost_behind()
            return False
        if outcome.mail.code == 503 and txn.behind and not txn.retried:
            # Pipelined behind another transaction and refused as a command out of order
            # (Haraka: "pipelined after end of DATA"): it was not executed.  Send it again
            # once the one before is settled, and pipeline no further on this connection.
            self.client._pipeline_after_content = False
            self.inflight.popleft()
            retry = _Transaction(Outcome(outcome.job), txn.index, txn.mode, retried=True)
            self.entries[txn.index] = retry.outcome
            self.retry.append(retry)
            self.reset_due = True
            return False
        complete = len(replies) == count + 1 + int(txn.mode is not _Mode.CHUNKS)
        if (
            outcome.mail.code == 250
            and outcome.accepted
            and complete
            and (outcome.data is None or outcome.data.code == 354)
        ):
            return True
        # Refused before its content.  Reset, unless the server closed (421), or took
        # DATA with nobody to deliver to (354: end the session rather than send content
        # that might reach someone), or smtplib would not (after a refused DATA).
        self.inflight.popleft()
        if txn.mode is _Mode.EAGER and len(replies) == count + 2:
            outcome.final = replies[-1:]  # the BDAT LAST's reply
        if self.conn.closed:
            self._lost_behind()
        elif outcome.data is not None and outcome.data.code == 354:
            self.closing = True
        elif not (self.compat and outcome.data is not None and outcome.accepted):
            self.reset_due = True
        return False

    # ---------------------------------------------------------------- content

    def _send_data(self, txn: _Transaction) -> Flow[None]:
        """The content after the 354, streamed; its end stays queued, so that the next
        transaction (or QUIT) can go in the same write."""
        conn = self.conn
        pieces = txn.outcome.job.pieces
        previous = _next_piece(pieces) or b""
        while (piece := _next_piece(pieces)) is not None:
            data = conn.send_data(previous)
            previous = piece
            if data:
                yield from self._content(data)
        last = conn.end_data(previous)
        if self.graph:
            yield send_step(last)
        else:
            self._queue(last)
        txn.content_sent = True
        txn.due = self._finals(txn)

    def _content(self, data: bytes) -> Flow[None]:
        if self.graph:
            yield send_step(data)
        else:
            self._queue(data)
            yield from self._flush()

    def _finals(self, txn: _Transaction) -> int:
        # RFC 2033 section 4.2: after the content an LMTP server answers once for each
        # recipient it accepted; an SMTP server once.
        return max(1, txn.outcome.accepted) if self.lmtp else 1

    def _send_chunks(self, txn: _Transaction) -> Flow[None]:
        """BDAT chunks (RFC 3030 section 2).  Without PIPELINING each chunk's reply is read
        before the next is sent, and a refusal stops the sending (section 4.2)."""
        job = txn.outcome.job
        encoder = self.conn.content_encoder() if job.normalize else None
        buffered: list[bytes] = []
        size = 0
        pieces = job.pieces
        while True:
            piece = _next_piece(pieces)
            last = piece is None
            if piece is not None:
                data = encoder.feed(piece) if encoder is not None else piece
                buffered.append(data)
                size += len(data)
                if size < BDAT_CHUNK:
                    continue
            elif encoder is not None:
                buffered.append(encoder.finish())
            chunk = b"".join(buffered)
            buffered, size = [], 0
            if not last and not chunk:
                continue
            line = self.conn.send_bdat(len(chunk), last, chunk)
            if self.graph:
                yield send_step(line + chunk)
            else:
                self._queue(line)
                self.out.append(chunk)
            if last:
                break
            txn.due += 1
            if not self.graph:
                yield from self._flush()
            if not self.pipelining:
                yield from self._read_final(txn, chunks_only=True)
                if txn.outcome.chunk is not None:
                    return  # settled as refused: no further chunk
        txn.content_sent = True
        txn.due += self._finals(txn)

    def _read_final(self, txn: _Transaction, chunks_only: bool = False) -> Flow[None]:
        """The replies after the content: those to earlier chunks, then the final one(s)."""
        outcome = txn.outcome
        finals = 0 if chunks_only else self._finals(txn)
        replies: list[Reply] = []
        try:
            if self.graph:
                yield from self._read(txn.due, replies)
            else:
                yield Read(txn.due, replies)
        finally:
            # Kept even when the connection is lost midway (LMTP: some recipients known).
            outcome.final = replies[txn.due - finals :]
        for reply in replies[: txn.due - finals]:
            if outcome.chunk is None and not reply.is_positive:
                outcome.chunk = reply
        complete = len(replies) == txn.due
        txn.due = 0
        if chunks_only:
            if outcome.chunk is not None or not complete:
                self.inflight.popleft()
                self.reset_due = not self.conn.closed
                self._lost_behind()
            return
        self._settle(txn, outcome.final)

    def _settle(self, txn: _Transaction, final: list[Reply]) -> None:
        outcome = txn.outcome
        outcome.final = final
        self.inflight.popleft()
        if not final:  # a 421 came before the final reply: the server did not take it
            outcome.lost = Lost.NOT_ATTEMPTED
        if outcome.chunk is not None:
            self.reset_due = True  # RFC 3030 section 4.2: a refused chunk fails it all
        elif final and not self.lmtp and final[0].code != 250:
            failed = final[0].code != 421 and (self.compat or not final[0].is_positive)
            self.reset_due = self.reset_due or failed
        if self.conn.closed:
            self._lost_behind()

    # ------------------------------------------------------------ losses and the end

    def _lost_behind(self) -> None:
        """After a 421 the server takes nothing more: the rest were never attempted."""
        if not self.conn.closed:
            return
        for txn in (*self.inflight, *self.retry):
            txn.outcome.lost = Lost.NOT_ATTEMPTED
        self.inflight.clear()
        self.retry.clear()

    def _lost_all(self, error: BaseException) -> None:
        """The connection was cut: a transaction whose content was sent may have been
        delivered; the others were not."""
        for txn in (*self.inflight, *self.retry):
            outcome = txn.outcome
            outcome.lost = Lost.UNKNOWN if txn.content_sent else Lost.NOT_ATTEMPTED
            outcome.error = error
        self.inflight.clear()
        self.retry.clear()

    def _end_session(self) -> Flow[None]:
        """Close after a 354 nobody can use; else the RSET due, and QUIT if asked."""
        if self.closing:
            yield Close(abort=True)
            return
        if self.conn.closed:
            return
        try:
            if self.reset_due and not self.quit:
                if self.graph:
                    yield Invoke(lambda c: c.rset())
                else:
                    self.out.append(self._commands([Command.rset()]))
                    yield from self._flush()
                    yield from self._read(1)
            if self.quit:
                if not self.quit_sent:
                    self.out.append(self._commands([Command.quit()]))
                    yield from self._flush()
                replies = yield from self._read(1)
                if replies and replies[0].code == 503:
                    # QUIT pipelined after the end of content and refused: say it again.
                    self.out.append(self._commands([Command.quit()]))
                    yield from self._flush()
                    yield from self._read(1)
                yield Close()
        except SMTPServerDisconnected:
            pass  # every transaction is settled; a server gone at QUIT changes nothing


def _envelope_size(job: Job) -> int:
    """About the bytes of *job*'s MAIL, RCPT and DATA lines (UTF-8 may add a few)."""
    size = len(job.mail.text) + 8  # CRLF after MAIL, and "DATA\r\n"
    for rcpt in job.rcpts:
        size += len(rcpt.text) + 2
    return size


def _putcmd_step(command: Command) -> Invoke:
    return Invoke(lambda c: c.putcmd(command.verb, command.argument))


def _next_piece(pieces: Iterator[bytes]) -> bytes | None:
    """The next piece of a job's content, None at its end; a failure of the caller's
    source (a file, an iterator) is told apart from the connection's."""
    try:
        return next(pieces, None)
    except Exception as exc:
        raise _SourceFailed(str(exc)) from exc


def _encode_whole(job: Job) -> bytes:
    """The whole content of a small message, for one BDAT LAST."""
    whole = job.whole
    assert whole is not None
    data = whole.encode("ascii") if isinstance(whole, str) else bytes(whole)
    if not job.normalize:
        return data
    encoder = DataEncoder(dot_stuffing=False)
    return encoder.feed(data) + encoder.finish()
