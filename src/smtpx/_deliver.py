"""``deliver()``: one message to its recipients with every ESMTP extension that helps, and
a result for every recipient.  Written once as a flow; both drivers run it.

What it adds to ``sendmail``: PIPELINING (RFC 2920) and CHUNKING (RFC 3030) chosen from the
server's offer; SIZE declared and checked before anything is sent (RFC 1870); DSN as
typed options (RFC 3461); REQUIRETLS on request (RFC 8689); SMTPUTF8 (RFC 6531) and
8BITMIME (RFC 6152) chosen from the message; content streamed from bytes, a file or an
iterator; refused recipients as results, not exceptions; and a connection lost after the
content told apart from a message that was not sent (``SMTPOutcomeUnknown``).
"""

from __future__ import annotations

import email.message
import io
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ._addresses import check_envelope
from ._exceptions import (
    SMTPDataError,
    SMTPMessageTooLarge,
    SMTPNotSupportedError,
    SMTPOutcomeUnknown,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from ._flows import (
    Call,
    Client,
    Flow,
    Response,
    graph_intact,
    mail_argument,
    rcpt_argument,
    stream_data,
)
from ._message import CHUNK_SIZE, content_pieces, envelope_from_headers, flatten
from ._protocol import Reply, normalized_size
from ._results import Recipient, RecipientResult, SendResult, xtext

__all__ = ["DeliveryOptions", "deliver"]

Content = email.message.Message | str | bytes | bytearray | memoryview | Any
# BDAT chunks are sent in pieces of this size (RFC 3030 leaves it to the client).
BDAT_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """Options of ``deliver()`` beyond the envelope (see its docstring)."""

    ret: str | None = None
    envid: str | None = None
    notify: Sequence[str] | None = None
    requiretls: bool = False
    chunking: bool | None = None
    binarymime: bool = False


@dataclass(slots=True)
class _Source:
    """The content to send: pieces, a size when known, and whether it is 8-bit."""

    pieces: Iterator[bytes]
    size: int | None
    eightbit: bool | None  # None: a stream, not known before it is sent


def _source(message: Content, utf8: bool) -> _Source:
    if isinstance(message, email.message.Message):
        message = flatten(message, utf8=utf8)
    if isinstance(message, str):
        if not message.isascii():
            message = message.encode("utf-8")
        else:
            return _Source(content_pieces(message), normalized_size(message), False)
    if isinstance(message, bytes | bytearray):
        data = bytes(message) if isinstance(message, bytearray) else message
        return _Source(content_pieces(data), normalized_size(data), not data.isascii())
    if isinstance(message, memoryview):
        view = message.cast("B")
        return _Source(content_pieces(view), view.nbytes, None)  # type: ignore[arg-type]
    if hasattr(message, "read"):
        return _Source(_file_pieces(message), _file_size(message), None)
    if isinstance(message, Iterable):
        return _Source(_checked_pieces(iter(message)), None, None)
    raise TypeError(
        "deliver() takes an email.message.Message, str, bytes, a binary file or an"
        f" iterable of bytes, not {type(message).__name__}"
    )


def _file_pieces(file: Any) -> Iterator[bytes]:
    while piece := file.read(CHUNK_SIZE):
        if not isinstance(piece, bytes | bytearray):
            raise TypeError("deliver() reads files in binary mode; open the file with 'rb'")
        yield bytes(piece)


def _file_size(file: Any) -> int | None:
    """An estimate for SIZE (RFC 1870 calls it the client's estimate): what is left of
    a regular file; None for pipes, sockets and other streams."""
    try:
        if not file.seekable():
            return None
        return int(os.fstat(file.fileno()).st_size - file.tell())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def _checked_pieces(pieces: Iterator[Any]) -> Iterator[bytes]:
    for piece in pieces:
        if not isinstance(piece, bytes | bytearray | memoryview):
            raise TypeError(f"message pieces must be bytes, not {type(piece).__name__}")
        yield bytes(piece)


def _recipients(recipients: str | Recipient | Iterable[str | Recipient]) -> list[Recipient]:
    if isinstance(recipients, str | Recipient):
        recipients = [recipients]
    return [r if isinstance(r, Recipient) else Recipient(r) for r in recipients]


def _plan(
    client: Client,
    sender: str,
    recipients: list[Recipient],
    source: _Source,
    options: DeliveryOptions,
    international: bool,
) -> tuple[list[str], list[list[str]], bool]:
    """MAIL parameters, RCPT parameters and whether to use BDAT; raises before anything
    is sent when the server cannot do what the message or the caller needs."""
    esmtp = client.does_esmtp
    offered = client.has_extn
    mail: list[str] = []
    if international:
        if not offered("smtputf8"):
            raise SMTPNotSupportedError(
                "an address is internationalized but the server does not offer SMTPUTF8"
            )
        mail.append("SMTPUTF8")
    chunking = options.chunking
    if chunking is None:
        chunking = offered("chunking") or options.binarymime
    elif chunking and not offered("chunking"):
        raise SMTPNotSupportedError("CHUNKING (BDAT) was asked for but is not offered")
    if options.binarymime:
        if not (offered("binarymime") and offered("chunking")):
            raise SMTPNotSupportedError("BINARYMIME needs the server's BINARYMIME and CHUNKING")
        mail.append("BODY=BINARYMIME")
    elif source.eightbit or international or (source.eightbit is None and offered("8bitmime")):
        # RFC 6152: 8-bit content needs 8BITMIME; a stream we cannot see ahead is declared
        # 8-bit when the server allows it, which costs nothing.
        if offered("8bitmime"):
            mail.append("BODY=8BITMIME")
        elif source.eightbit:
            raise SMTPNotSupportedError("the message has 8-bit content but 8BITMIME is not offered")
    if source.size is not None and offered("size"):
        params = client.esmtp_features.get("size", "")
        limit = int(params) if params.isascii() and params.isdigit() else 0
        if limit and source.size > limit:
            raise SMTPMessageTooLarge(source.size, limit)
        mail.append(f"SIZE={source.size}")
    dsn = options.ret is not None or options.envid is not None or options.notify is not None
    dsn = dsn or any(r.uses_dsn for r in recipients)
    if dsn and not offered("dsn"):
        raise SMTPNotSupportedError("DSN options were given but the server does not offer DSN")
    if options.ret is not None:
        ret = options.ret.upper()
        if ret not in ("FULL", "HDRS"):
            raise ValueError(f"RET must be FULL or HDRS, not {options.ret!r}")
        mail.append(f"RET={ret}")
    if options.envid is not None:
        envid = xtext(options.envid)
        if len(envid) > 100:  # RFC 3461 section 4.4
            raise ValueError("ENVID is longer than 100 characters once encoded")
        mail.append(f"ENVID={envid}")
    if options.requiretls:
        # RFC 8689 section 4.1: only over TLS, and only to a server that offers it.
        if not client._tls_active:
            raise SMTPNotSupportedError("REQUIRETLS needs a TLS connection (call starttls())")
        if not offered("requiretls"):
            raise SMTPNotSupportedError("REQUIRETLS was asked for but is not offered")
        mail.append("REQUIRETLS")
    rcpt = [_with_default(r, options.notify).rcpt_parameters() for r in recipients]
    if not esmtp and (mail or any(rcpt)):
        raise SMTPNotSupportedError("the server did not accept EHLO: no ESMTP options")
    return mail, rcpt, bool(chunking)


def _with_default(recipient: Recipient, notify: Sequence[str] | None) -> Recipient:
    """The recipient, with the call's NOTIFY unless it has its own."""
    if recipient.notify is not None or notify is None:
        return recipient
    return Recipient(recipient.address, notify, recipient.orcpt)


def _reply(response: Response) -> Reply:
    return Reply(response[0], tuple(response[1].split(b"\n")))


def deliver(
    client: Client,
    message: Content,
    sender: str | None,
    recipients: str | Recipient | Iterable[str | Recipient] | None,
    options: DeliveryOptions,
    lmtp: bool,
) -> Flow[SendResult]:
    yield Call("ehlo_or_helo_if_needed")
    if isinstance(message, email.message.Message):
        sender, found = envelope_from_headers(message, sender, None if recipients is None else [])
        if recipients is None:
            recipients = found
    if sender is None or recipients is None:
        raise ValueError("deliver() needs sender and recipients unless given a Message")
    rcpts = _recipients(recipients)
    addresses = [sender, *(r.address for r in rcpts)]
    international = not all(a.isascii() for a in addresses)
    source = _source(message, utf8=international)
    mail_params, rcpt_params, chunking = _plan(
        client, sender, rcpts, source, options, international
    )
    check_envelope(addresses, [*mail_params, *(p for ps in rcpt_params for p in ps)], "utf-8")
    normalize = not (chunking and options.binarymime)  # BINARYMIME content is sent as is

    # The envelope: MAIL, every RCPT and (without BDAT) DATA, pipelined when offered.
    commands = [("mail", mail_argument(client, sender, mail_params))]
    commands += [
        ("rcpt", rcpt_argument(client, r.address, p))
        for r, p in zip(rcpts, rcpt_params, strict=True)
    ]
    if not chunking:
        commands.append(("data", ""))
    pipelining = client.has_extn("pipelining")
    replies = yield from _exchange(client, commands, pipelining)

    mail_reply = replies[0]
    if mail_reply[0] != 250:
        yield from _abandon(client, replies)
        raise SMTPSenderRefused(mail_reply[0], mail_reply[1], sender)
    results = [
        RecipientResult(r.address, _reply(reply))
        for r, reply in zip(rcpts, replies[1:], strict=False)
    ]
    if len(results) < len(rcpts) or not any(r.accepted for r in results):
        yield from _abandon(client, replies)
        refused = {r.address: r.reply.as_tuple() for r in results if not r.accepted}
        raise _with_result(SMTPRecipientsRefused(refused), results, replies[-1])
    if not chunking:
        data_reply = replies[-1]
        if data_reply[0] != 354:
            yield from _abandon(client, replies)
            raise _with_result(SMTPDataError(*data_reply), results, data_reply)
        yield from _guarded_stream(client, stream_data(client, source.pieces))
    else:
        failed = yield from _send_chunks(client, source.pieces, normalize, pipelining)
        if failed is not None:
            yield from _abandon(client, [failed])
            raise _with_result(SMTPDataError(*failed), results, failed)
    # The content is out: from here a lost connection means the outcome is unknown.
    final: list[Response] = []
    chunk_failure: Response | None = None
    try:
        while client._replies_pending:
            ends_message = client._awaiting_final_reply
            reply = yield Call("getreply")
            if not ends_message:
                # The reply to a BDAT chunk sent before the last one.
                if chunk_failure is None and not 200 <= reply[0] <= 299:
                    chunk_failure = reply
                continue
            final.append(reply)
            if reply[0] == 421:
                break
    except SMTPServerDisconnected as exc:
        unknown = SMTPOutcomeUnknown(
            "the connection was lost after the message was sent, before the server's reply;"
            " it may or may not have been delivered"
        )
        raise _with_result(unknown, results, final[-1] if final else replies[-1]) from exc
    if chunk_failure is not None:
        # RFC 3030 section 4.2: a refused chunk fails the whole transaction.
        yield from _abandon(client, final or [chunk_failure])
        raise _with_result(SMTPDataError(*chunk_failure), results, chunk_failure)
    if not final:  # the session ended without the reply that ends the message
        raise _with_result(SMTPOutcomeUnknown("no final reply was received"), results, replies[-1])
    return (yield from _conclude(client, results, final, lmtp))


def _conclude(
    client: Client, results: list[RecipientResult], final: list[Response], lmtp: bool
) -> Flow[SendResult]:
    if not lmtp:
        reply = _reply(final[0])
        result = SendResult(tuple(results), reply)
        if not reply.is_positive:
            if reply.code != 421:
                yield Call("_rset")
            raise _with_result(SMTPDataError(reply.code, reply.message), results, final[0])
        return result
    # RFC 2033 section 4.2: one reply per accepted recipient, in RCPT order.
    replies = iter(final)
    merged = [
        RecipientResult(r.address, r.reply, _reply(next(replies, final[-1]))) if r.accepted else r
        for r in results
    ]
    result = SendResult(tuple(merged), _reply(final[-1]))
    if not result.accepted:
        raise _with_result(SMTPRecipientsRefused(result.as_smtplib_dict()), merged, final[-1])
    return result


_E = TypeVar("_E", bound=BaseException)


def _with_result(error: _E, results: Sequence[RecipientResult], reply: Response) -> _E:
    """Attach what is known (``error.result``, a ``SendResult``) to an exception."""
    error.result = SendResult(tuple(results), _reply(reply))  # type: ignore[attr-defined]
    return error


def _exchange(
    client: Client, commands: list[tuple[str, str]], pipelining: bool
) -> Flow[list[Response]]:
    """Send *commands* and read their replies: all in one write when pipelining, else
    one by one, stopping where the rest could only fail (no MAIL, no recipient)."""
    if pipelining and graph_intact(client):
        replies: list[Response] = yield Call("_exchange", (commands,))
        return replies
    replies = []
    if pipelining:
        # putcmd, send or getreply replaced (a subclass, a test): call them, one write.
        yield Call("_cork")
        try:
            for verb, argument in commands:
                yield Call("putcmd", (verb, argument))
        except BaseException:
            yield Call("close")  # queued but never written: the session is unusable
            raise
        yield Call("_flush")
        for _ in commands:
            reply = yield Call("getreply")
            replies.append(reply)
            if reply[0] == 421:
                break
        return replies
    accepted = False
    for index, (verb, argument) in enumerate(commands):
        if verb == "data" and not accepted:
            break
        yield Call("putcmd", (verb, argument))
        reply = yield Call("getreply")
        replies.append(reply)
        if reply[0] == 421 or (index == 0 and reply[0] != 250):
            break
        accepted = accepted or (verb == "rcpt" and reply[0] in (250, 251))
    return replies


def _abandon(client: Client, replies: list[Response]) -> Flow[None]:
    """End a transaction that will not complete: close after a 421 or when DATA was
    accepted anyway (sending nothing is safer than sending to nobody), else RSET."""
    if (
        client._replies_pending
        or any(r[0] == 421 for r in replies)
        or (replies and replies[-1][0] == 354)
    ):
        yield Call("close")
    else:
        yield Call("_rset")


def _guarded_stream(client: Client, flow: Flow[None]) -> Flow[None]:
    """Stream content; if the caller's source fails midway, close the connection so the
    server discards the partial message (RFC 5321 section 3.3: no terminator, no mail)."""
    try:
        yield from flow
    except SMTPServerDisconnected:
        raise
    except BaseException:
        yield Call("close")
        raise


def _send_chunks(
    client: Client, pieces: Iterator[bytes], normalize: bool, pipelining: bool
) -> Flow[Response | None]:
    """BDAT chunks (RFC 3030 section 2).  Without PIPELINING each chunk's reply is read
    before the next is sent, and a refusal stops the sending: it is returned, with every
    reply due read.  Otherwise the replies are left for the caller."""
    encoder = client._content_encoder() if normalize else None
    failed: Response | None = None
    buffered: list[bytes] = []
    size = 0

    def drain() -> Flow[None]:
        nonlocal failed
        while client._replies_pending and not client._awaiting_final_reply:
            reply = yield Call("getreply")
            if failed is None and not 200 <= reply[0] <= 299:
                failed = reply

    try:
        source = iter(pieces)
        while True:
            piece = next(source, None)
            last = piece is None
            if piece is not None:
                out = encoder.feed(piece) if encoder is not None else piece
                buffered.append(out)
                size += len(out)
                if size < BDAT_CHUNK:
                    continue
            elif encoder is not None:
                tail = encoder.finish()
                buffered.append(tail)
                size += len(tail)
            chunk = b"".join(buffered)
            buffered, size = [], 0
            if not last and not chunk:
                continue
            yield Call("_send_chunk", (chunk, last))
            if last:
                break
            if not pipelining:
                yield from drain()
                if failed is not None:
                    return failed  # RFC 3030 section 4.2: send no more chunks
    except SMTPServerDisconnected:
        raise
    except BaseException:
        yield Call("close")
        raise
    # The last chunk is out: its replies are read by the caller, where a lost connection
    # means the outcome is unknown.
    return None
