"""What ``deliver()`` takes and gives back: recipients with their DSN options, and a
result for every recipient.

>>> from smtpx import Recipient
>>> Recipient("bob@example.org", notify=["failure", "delay"]).rcpt_parameters()
['NOTIFY=FAILURE,DELAY']
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ._protocol import EnhancedStatus, Reply

__all__ = ["Recipient", "RecipientResult", "SendResult", "xtext"]

Status = Literal["accepted", "deferred", "refused"]

# RFC 3461 section 4.1: NEVER alone, or any of the three.
_NOTIFY = frozenset({"SUCCESS", "FAILURE", "DELAY"})


def xtext(text: str) -> str:
    """RFC 3461 section 4: printable ASCII but '+' and '=' as is, others as +HH.

    >>> xtext("a+b=c d")
    'a+2Bb+3Dc+20d'
    """
    out = []
    for byte in text.encode("utf-8"):
        if 0x21 <= byte <= 0x7E and byte not in (0x2B, 0x3D):
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)


def _utf8_unitext(text: str) -> str:
    """RFC 6533 section 3: UTF-8 kept, but '+', '=', '\\', controls and space escaped."""
    return "".join(
        f"\\x{{{ord(c):X}}}" if c in "+=\\ " or ord(c) < 0x21 or ord(c) == 0x7F else c for c in text
    )


@dataclass(frozen=True, slots=True)
class Recipient:
    """A recipient and its Delivery Status Notification options (RFC 3461).

    *notify* is ``["NEVER"]`` or any of ``SUCCESS``, ``FAILURE``, ``DELAY``; *orcpt* is the
    original recipient address to report (sent as ``ORCPT=rfc822;...``, or ``utf-8;...``
    for an internationalized address, RFC 6533).
    """

    address: str
    notify: tuple[str, ...] | None = None
    orcpt: str | None = None

    def __init__(
        self, address: str, notify: Iterable[str] | None = None, orcpt: str | None = None
    ) -> None:
        object.__setattr__(self, "address", address)
        if notify is not None:
            values = tuple(
                n.strip().upper() for n in ([notify] if isinstance(notify, str) else notify)
            )
            if values != ("NEVER",) and (not values or not set(values) <= _NOTIFY):
                raise ValueError(
                    f"NOTIFY must be NEVER alone or any of SUCCESS, FAILURE, DELAY: {values}"
                )
            notify = values
        object.__setattr__(self, "notify", notify)
        object.__setattr__(self, "orcpt", orcpt)

    @property
    def uses_dsn(self) -> bool:
        return self.notify is not None or self.orcpt is not None

    def rcpt_parameters(self) -> list[str]:
        """The RCPT parameters these options give (RFC 3461 sections 4.1 and 4.2)."""
        params = []
        if self.notify is not None:
            params.append("NOTIFY=" + ",".join(self.notify))
        if self.orcpt is not None:
            if self.orcpt.isascii():
                params.append("ORCPT=rfc822;" + xtext(self.orcpt))
            else:
                params.append("ORCPT=utf-8;" + _utf8_unitext(self.orcpt))
        return params


def _status(code: int) -> Status:
    if 200 <= code < 300:
        return "accepted"
    return "deferred" if 400 <= code < 500 else "refused"


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """What happened to one recipient.

    ``reply`` is the reply to its RCPT; for LMTP, ``data_reply`` is its own reply after
    the content (RFC 2033 section 4.2), which decides its fate.
    """

    address: str
    reply: Reply
    data_reply: Reply | None = None

    @property
    def final_reply(self) -> Reply:
        return self.data_reply if self.data_reply is not None else self.reply

    @property
    def status(self) -> Status:
        """``accepted`` (2yz), ``deferred`` (4yz: try again later) or ``refused`` (5yz)."""
        return _status(self.final_reply.code)

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

    @property
    def code(self) -> int:
        return self.final_reply.code

    @property
    def text(self) -> str:
        return self.final_reply.message.decode("utf-8", "replace")

    @property
    def enhanced_status(self) -> EnhancedStatus | None:
        return self.final_reply.enhanced_status


_QUEUE_ID = re.compile(rb"(?:queued as|id=)\s*([A-Za-z0-9._-]+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one ``deliver()``: every recipient, and the server's final reply.

    For LMTP ``reply`` is the last of the per-recipient replies.
    """

    recipients: tuple[RecipientResult, ...]
    reply: Reply

    @property
    def accepted(self) -> tuple[RecipientResult, ...]:
        return tuple(r for r in self.recipients if r.status == "accepted")

    @property
    def deferred(self) -> tuple[RecipientResult, ...]:
        return tuple(r for r in self.recipients if r.status == "deferred")

    @property
    def refused(self) -> tuple[RecipientResult, ...]:
        return tuple(r for r in self.recipients if r.status == "refused")

    @property
    def queue_id(self) -> str | None:
        """The queue id in the final reply, when the server names one ("queued as X")."""
        found = _QUEUE_ID.search(self.reply.message)
        return found.group(1).decode("ascii") if found else None

    def as_smtplib_dict(self) -> dict[str, tuple[int, bytes]]:
        """The recipients not accepted, in the shape ``sendmail`` returns."""
        return {r.address: r.final_reply.as_tuple() for r in self.recipients if not r.accepted}
