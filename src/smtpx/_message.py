"""Messages as content: pieces for streaming, the envelope from headers, flattening.

Content is never copied whole: a str or bytes body goes out in pieces of CHUNK_SIZE, and
a ``Message`` is flattened once into one buffer.
"""

from __future__ import annotations

import copy
import email.generator
import email.message
import email.policy
import email.utils
import io
from collections.abc import Iterator, Sequence

__all__ = [
    "CHUNK_SIZE",
    "check_content",
    "content_pieces",
    "envelope_from_headers",
    "flatten",
]


# Content goes out in pieces of this size, so memory use is bounded by it, not by the size
# of the message (smtplib holds about five copies of a message while it sends it).
CHUNK_SIZE = 256 * 1024


def check_content(msg: str | bytes) -> None:
    """A str body must be ASCII (as in smtplib); found before anything is sent."""
    if isinstance(msg, str) and not msg.isascii():
        msg.encode("ascii")  # raises the UnicodeEncodeError smtplib raises


def content_pieces(msg: str | bytes) -> Iterator[bytes]:
    """*msg* in pieces of at most CHUNK_SIZE bytes, without copying it whole."""
    if len(msg) <= CHUNK_SIZE:
        yield msg.encode("ascii") if isinstance(msg, str) else bytes(msg)
        return
    if isinstance(msg, str):
        for start in range(0, len(msg), CHUNK_SIZE):
            yield msg[start : start + CHUNK_SIZE].encode("ascii")
    else:
        view = memoryview(msg)
        for start in range(0, len(view), CHUNK_SIZE):
            yield bytes(view[start : start + CHUNK_SIZE])


def envelope_from_headers(
    msg: email.message.Message,
    from_addr: str | None,
    to_addrs: str | Sequence[str] | None,
) -> tuple[str, str | Sequence[str]]:
    """The envelope smtplib's ``send_message`` takes from the headers when not given.

    RFC 5322 section 3.6.6: a resent message uses its Resent- fields; section 3.6.2:
    Sender, when present, names who sent it.
    """
    resent = msg.get_all("Resent-Date")
    if resent is None:
        prefix = ""
    elif len(resent) == 1:
        prefix = "Resent-"
    else:
        # More than one Resent- block: which one is newest cannot be told for sure.
        raise ValueError("message has more than one 'Resent-' header block")
    if from_addr is None:
        header = prefix + "Sender" if prefix + "Sender" in msg else prefix + "From"
        from_addr = email.utils.getaddresses([str(msg[header])])[0][1]
    if to_addrs is None:
        fields = [
            str(value)
            for value in (msg[prefix + "To"], msg[prefix + "Bcc"], msg[prefix + "Cc"])
            if value is not None
        ]
        to_addrs = [address for _, address in email.utils.getaddresses(fields)]
    return from_addr, to_addrs


def flatten(msg: email.message.Message, *, utf8: bool) -> bytes:
    """The message as CRLF bytes, without its Bcc and Resent-Bcc fields.

    With *utf8*, headers are written as UTF-8 (RFC 6532), for SMTPUTF8 transactions.
    """
    stripped = copy.copy(msg)
    del stripped["Bcc"]
    del stripped["Resent-Bcc"]
    buffer = io.BytesIO()
    if utf8:
        # A legacy (compat32) message has no utf8 setting: smtplib then fails with a
        # TypeError; write it with the SMTPUTF8 policy instead.
        policy = (
            email.policy.SMTPUTF8
            if isinstance(msg.policy, email.policy.Compat32)
            else msg.policy.clone(utf8=True)  # type: ignore[call-arg]
        )
        generator = email.generator.BytesGenerator(buffer, policy=policy)
    else:
        generator = email.generator.BytesGenerator(buffer)
    generator.flatten(stripped, linesep="\r\n")
    return buffer.getvalue()  # the buffer's own bytes object: no copy
