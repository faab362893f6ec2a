"""What happens on a session, as frozen values for an observer (transcripts, logging,
``set_debuglevel``).

The core reports what it sends and receives; the drivers add what only they can see (the
addresses, the TLS session).  An observer is any callable taking one event.  Secrets are
redacted here, where each line is made, so no observer can show one:

- an AUTH command keeps its mechanism name; anything after it (an initial response: PLAIN's
  password, an OAuth token) becomes ``********`` (RFC 4954 section 4);
- every line sent while an AUTH exchange is in progress (a response to a 334 challenge) is
  ``********`` as a whole;
- bytes a caller writes raw (smtplib's ``send``) get the same rules, line by line.

Message content is reported by size; its bytes only to an observer that asks for them.

>>> from smtpx._protocol import ClientConnection, Command
>>> seen = []
>>> conn = ClientConnection(observer=seen.append)
>>> conn.receive_data(b"220 ready\\r\\n")
>>> conn.next_replies(1)[0].code
220
>>> _ = conn.send(Command.auth("PLAIN", "AGFsaWNlAHMzY3JldA=="))
>>> seen[-1].line
'AUTH PLAIN ********'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._reply import Reply

__all__ = [
    "REDACTED",
    "CommandSent",
    "Connected",
    "Connecting",
    "ConnectionClosed",
    "ConnectionFailed",
    "ContentSent",
    "Observer",
    "RawSent",
    "ReplyReceived",
    "SessionEvent",
    "TLSInfo",
    "TLSStarted",
    "redact_command",
    "redact_raw",
    "starts_auth",
]

#: What replaces a secret in every event.
REDACTED = "********"


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """The TLS session, as the driver saw it after the handshake."""

    version: str | None  # "TLSv1.3"
    cipher: str | None  # "TLS_AES_256_GCM_SHA384"
    bits: int | None
    #: The server certificate's subject ("CN=mail.example.org"), when it was verified
    #: (an unverified certificate is not decoded by the ``ssl`` module).
    peer_subject: str | None


@dataclass(frozen=True, slots=True)
class Connecting:
    """The client is about to connect (*port* is None for a unix socket)."""

    host: str
    port: int | None
    source_address: Any
    implicit_tls: bool  # SMTPS (RFC 8314): TLS from the first byte
    elapsed: float


@dataclass(frozen=True, slots=True)
class Connected:
    """The connection is open (and, with implicit TLS, the handshake done); *elapsed* is
    how long that took."""

    peer: Any  # (address, port), or a unix socket's path
    local: Any
    tls: TLSInfo | None
    elapsed: float


@dataclass(frozen=True, slots=True)
class ConnectionFailed:
    """Connecting failed; the error is raised to the caller too."""

    host: str
    port: int | None
    error: str
    elapsed: float


@dataclass(frozen=True, slots=True)
class CommandSent:
    """One command line (without its CRLF), secrets already replaced."""

    line: str
    redacted: bool
    elapsed: float


@dataclass(frozen=True, slots=True)
class RawSent:
    """What a caller wrote with smtplib's ``send``, as given (str or bytes), secrets
    already replaced.  *data* is None for message content nobody asked to see."""

    data: str | bytes | None
    size: int
    redacted: bool
    elapsed: float


@dataclass(frozen=True, slots=True)
class ContentSent:
    """A piece of message content after DATA (dot-stuffed) or in a BDAT chunk; *last*: it
    ends the message.  *data* is None unless an observer asked for content."""

    size: int
    via: str  # "DATA" or "BDAT"
    last: bool
    data: bytes | None
    elapsed: float


@dataclass(frozen=True, slots=True)
class ReplyReceived:
    """A complete reply.  *answers* is the command it answers (``"EHLO"``, ``"RCPT"``...)
    or ``"<greeting>"``, ``"<end of data>"``, ``"<sasl response>"``, ``"<unknown>"`` (a
    reply read after raw bytes); *latency*: seconds since the client last sent."""

    reply: Reply
    answers: str
    elapsed: float
    latency: float


@dataclass(frozen=True, slots=True)
class TLSStarted:
    """The STARTTLS handshake succeeded (RFC 3207); what was learnt before is forgotten."""

    tls: TLSInfo | None
    elapsed: float


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The session ended: ``"QUIT"``, ``"421"`` (the server is closing, RFC 5321 section
    3.8), ``"lost"`` (the server closed first) or ``"closed"`` (by the client)."""

    reason: str
    elapsed: float


SessionEvent = (
    Connecting
    | Connected
    | ConnectionFailed
    | CommandSent
    | RawSent
    | ContentSent
    | ReplyReceived
    | TLSStarted
    | ConnectionClosed
)
#: Called with each event, in order, on the task or thread that runs the session.
Observer = Callable[[SessionEvent], None]


def redact_command(verb: str, keyword: str, argument: str, in_sasl: bool) -> tuple[str, bool]:
    """The line an observer sees, and whether anything was hidden."""
    if in_sasl:
        return REDACTED, True  # a response to a 334 challenge (RFC 4954 section 4)
    if keyword == "AUTH":
        parts = argument.split(None, 1)
        if len(parts) == 2:  # the mechanism, then an initial response
            return f"{verb} {parts[0]} {REDACTED}", True
    return (f"{verb} {argument}" if argument else verb), False


# An AUTH command at the start of any line (RFC 4954 section 4).
_AUTH_LINE = re.compile(r"(?im)^auth\s")
# Raw writes longer than this are content, not commands (RFC 4954 section 4 lets a SASL
# line be up to 12,288 octets).
_COMMAND_SIZED = 16 * 1024


def starts_auth(data: str | bytes) -> bool:
    """Does a raw write hold an AUTH command?"""
    if len(data) > _COMMAND_SIZED:
        return False
    text = data if isinstance(data, str) else data.decode("latin-1")
    return _AUTH_LINE.search(text) is not None


def redact_raw(data: str | bytes, in_sasl: bool) -> tuple[str | bytes, bool]:
    """Raw bytes with the command rules applied line by line: an AUTH line keeps its
    mechanism, and every line after it in the same write is hidden (it can only be a
    pipelined response to the challenge)."""
    text = data if isinstance(data, str) else data.decode("latin-1")  # lossless
    lines = text.splitlines(keepends=True)
    hidden = in_sasl
    changed = False
    for index, line in enumerate(lines):
        body = line.rstrip("\r\n")
        end = line[len(body) :]
        if hidden:
            lines[index] = REDACTED + end
            changed = True
            continue
        parts = body.split(None, 2)
        if parts and parts[0].upper() == "AUTH":
            hidden = True
            if len(parts) == 3:
                lines[index] = f"{parts[0]} {parts[1]} {REDACTED}{end}"
                changed = True
    if not changed:
        return data, False
    shown = "".join(lines)
    return (shown if isinstance(data, str) else shown.encode("latin-1")), True
