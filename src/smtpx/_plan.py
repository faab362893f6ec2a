"""What to send: a message and its envelope turned into the commands of one transaction.

``plan_delivery`` serves ``deliver()`` and ``deliver_many()``: PIPELINING and CHUNKING
(RFC 3030) chosen from the server's offer, SIZE declared and checked before anything is
sent (RFC 1870), DSN as typed options (RFC 3461), REQUIRETLS on request (RFC 8689),
SMTPUTF8 (RFC 6531) and 8BITMIME (RFC 6152) chosen from the message, content from bytes, a
file or an iterator.  ``plan_sendmail`` serves smtplib's ``sendmail``: its options as given,
SIZE as smtplib computes it, DATA only.  Both give a ``Job`` that the engine (``_engine``)
sends; planning raises before anything is sent.
"""

from __future__ import annotations

import email.message
import io
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ._addresses import check_envelope, quoteaddr
from ._exceptions import SMTPMessageTooLarge, SMTPNotSupportedError
from ._message import CHUNK_SIZE, check_content, content_pieces, envelope_from_headers, flatten
from ._protocol import Command, Extensions, normalized_size
from ._results import Recipient, xtext

__all__ = [
    "Content",
    "DeliveryOptions",
    "Job",
    "Offers",
    "Planner",
    "offers",
    "plan_delivery",
    "plan_sendmail",
    "sendmail_options",
]

Content = email.message.Message | str | bytes | bytearray | memoryview | Any


class Offers(Protocol):
    """What the server offered, as ``has_extn`` says and as the core read it."""

    def has_extn(self, opt: str) -> bool: ...
    @property
    def _offered(self) -> Extensions: ...


class Planner(Offers, Protocol):
    """What planning reads on a client (no I/O)."""

    does_esmtp: bool
    esmtp_features: dict[str, str]

    @property
    def _tls_active(self) -> bool: ...


def offers(client: Offers, keyword: str) -> bool:
    """Use an extension of smtpx's own choosing (PIPELINING, CHUNKING, 8BITMIME, DSN...)
    only when ``has_extn`` and the server's EHLO reply agree: a patched ``has_extn`` may
    make smtplib's own decisions (SIZE, SMTPUTF8) as it does in smtplib, but it cannot
    make smtpx use a feature the server never offered, nor one that ``has_extn`` denies."""
    return keyword in client._offered and client.has_extn(keyword)


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
class Job:
    """One transaction, ready to send.

    *pieces* is the content, raw (the engine encodes it: CRLF line ends, dot-stuffing for
    DATA; as is for BINARYMIME); *size* its length once encoded, when known without
    reading it; *whole* the same content in memory, when it is (a str or bytes body).
    """

    sender: str
    recipients: list[str]
    mail: Command
    rcpts: list[Command]
    pieces: Iterator[bytes]
    size: int | None
    whole: bytes | str | None = None
    chunking: bool = False
    normalize: bool = True
    encoding: str = "ascii"


def _mail_command(client: Planner, sender: str, options: Sequence[str]) -> Command:
    # smtplib sends ESMTP options only after a successful EHLO.
    params = " " + " ".join(options) if options and client.does_esmtp else ""
    return Command("mail", f"from:{quoteaddr(sender)}{params}")


def _rcpt_command(client: Planner, recipient: str, options: Sequence[str]) -> Command:
    params = " " + " ".join(options) if options and client.does_esmtp else ""
    return Command("rcpt", f"to:{quoteaddr(recipient)}{params}")


def sendmail_options(client: Planner, msg: str | bytes, mail_options: Sequence[str]) -> list[str]:
    """smtplib's MAIL options: SIZE first when offered, then the caller's (after EHLO)."""
    options: list[str] = []
    if client.does_esmtp:
        if client.has_extn("size"):
            options.append(f"size={normalized_size(msg)}")
        options.extend(mail_options)
    return options


def plan_sendmail(
    client: Planner,
    from_addr: str,
    to_addrs: str | Sequence[str],
    msg: str | bytes,
    mail_options: Sequence[str],
    rcpt_options: Sequence[str],
) -> Job:
    """smtplib's transaction: its options as given, SIZE as smtplib computes it.

    The envelope is checked before anything is sent (smtplib sends MAIL and the first
    RCPTs before it notices a bad later address; docs/compatibility.md).
    """
    recipients = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
    smtputf8 = any(option.lower() == "smtputf8" for option in mail_options)
    encoding = "utf-8" if smtputf8 else "ascii"
    check_envelope([from_addr, *recipients], [*mail_options, *rcpt_options], encoding)
    check_content(msg)  # the message is streamed as it is, never copied whole
    options = sendmail_options(client, msg, mail_options)
    if smtputf8 and client.does_esmtp and not client.has_extn("smtputf8"):
        raise SMTPNotSupportedError("SMTPUTF8 not supported by server")
    return Job(
        sender=from_addr,
        recipients=recipients,
        mail=_mail_command(client, from_addr, options),
        rcpts=[_rcpt_command(client, r, rcpt_options) for r in recipients],
        pieces=content_pieces(msg),
        size=None,
        whole=msg,
        encoding=encoding if client.does_esmtp else "ascii",
    )


@dataclass(slots=True)
class _Source:
    """The content to send: pieces, a size when known, and whether it is 8-bit."""

    pieces: Iterator[bytes]
    size: int | None
    eightbit: bool | None  # None: a stream, not known before it is sent
    whole: bytes | str | None = None


def _source(message: Content, utf8: bool) -> _Source:
    if isinstance(message, email.message.Message):
        message = flatten(message, utf8=utf8)
    if isinstance(message, str):
        if not message.isascii():
            message = message.encode("utf-8")
        else:
            return _Source(content_pieces(message), normalized_size(message), False, message)
    if isinstance(message, bytes | bytearray):
        data = bytes(message) if isinstance(message, bytearray) else message
        return _Source(content_pieces(data), normalized_size(data), not data.isascii(), data)
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


def plan_delivery(
    client: Planner,
    message: Content,
    sender: str | None,
    recipients: str | Recipient | Iterable[str | Recipient] | None,
    options: DeliveryOptions,
) -> Job:
    """``deliver()``'s transaction for *message*; raises before anything is sent when the
    server cannot do what the message or the caller needs."""
    if isinstance(message, email.message.Message):
        if sender is None and not any(
            name in message for name in ("From", "Sender", "Resent-From", "Resent-Sender")
        ):
            # smtplib's send_message would send MAIL FROM:<None> here.
            raise ValueError("the message has no From header: give deliver() a sender")
        sender, found = envelope_from_headers(message, sender, None if recipients is None else [])
        if recipients is None:
            recipients = found
    if sender is None or recipients is None:
        raise ValueError("deliver() needs sender and recipients unless given a Message")
    rcpts = _recipients(recipients)
    addresses = [sender, *(r.address for r in rcpts)]
    # Refused before the content is read: a line break in an address is a caller's bug.
    check_envelope(addresses, (), "utf-8")
    international = not all(a.isascii() for a in addresses)
    source = _source(message, utf8=international)
    mail, rcpt_params, chunking = _parameters(client, rcpts, source, options, international)
    check_envelope((), [*mail, *(p for ps in rcpt_params for p in ps)], "utf-8")
    normalize = not (chunking and options.binarymime)  # BINARYMIME content is sent as is
    return Job(
        sender=sender,
        recipients=[r.address for r in rcpts],
        mail=_mail_command(client, sender, mail),
        rcpts=[
            _rcpt_command(client, r.address, p) for r, p in zip(rcpts, rcpt_params, strict=True)
        ],
        pieces=source.pieces,
        size=source.size if normalize else None,
        whole=source.whole,
        chunking=chunking,
        normalize=normalize,
        encoding="utf-8" if international else "ascii",
    )


def _parameters(
    client: Planner,
    recipients: list[Recipient],
    source: _Source,
    options: DeliveryOptions,
    international: bool,
) -> tuple[list[str], list[list[str]], bool]:
    """MAIL parameters, RCPT parameters and whether to use BDAT."""

    def offered(keyword: str) -> bool:
        return offers(client, keyword)

    mail: list[str] = []
    if international:
        if not offered("smtputf8"):
            raise SMTPNotSupportedError(
                "an address is internationalized but the server does not offer SMTPUTF8"
            )
        mail.append("SMTPUTF8")
    chunking = options.chunking
    if chunking is None:
        chunking = offered("chunking")
    elif chunking and not offered("chunking"):
        raise SMTPNotSupportedError("CHUNKING (BDAT) was asked for but is not offered")
    if options.binarymime:
        # RFC 3030 section 3: BINARYMIME content can only be sent with BDAT.
        if not (offered("binarymime") and offered("chunking")):
            raise SMTPNotSupportedError("BINARYMIME needs the server's BINARYMIME and CHUNKING")
        if not chunking:
            raise ValueError("BINARYMIME content can only be sent with BDAT: chunking=False")
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
    if not client.does_esmtp and (mail or any(rcpt)):
        raise SMTPNotSupportedError("the server did not accept EHLO: no ESMTP options")
    return mail, rcpt, bool(chunking)


def _with_default(recipient: Recipient, notify: Sequence[str] | None) -> Recipient:
    """The recipient, with the call's NOTIFY unless it has its own."""
    if recipient.notify is not None or notify is None:
        return recipient
    return Recipient(recipient.address, notify, recipient.orcpt)
