"""The record of one message the sink server accepted."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage

__all__ = ["SinkMessage"]


@dataclass(frozen=True, slots=True)
class SinkMessage:
    """One message as the sink server received it.

    ``content`` holds the bytes of the DATA section exactly as they came off the
    wire, after dot-unstuffing (RFC 5321 section 4.5.2) and without the final
    ``.`` line, so line endings are CRLF if the client sent CRLF. ``rcpt_tos``
    lists the recipients the message was delivered to, in RCPT order: in LMTP
    mode a recipient refused after DATA is not in it.

    Examples:
        >>> msg = SinkMessage(
        ...     mail_from="a@example.org",
        ...     rcpt_tos=("b@example.org",),
        ...     content=b"Subject: hi\\r\\n\\r\\nbody\\r\\n",
        ... )
        >>> msg.parse()["Subject"]
        'hi'
    """

    mail_from: str
    """The reverse path from ``MAIL FROM``, without angle brackets; ``""`` for ``<>``."""
    rcpt_tos: tuple[str, ...]
    """The recipients the message was delivered to, without angle brackets."""
    content: bytes
    """The message as received, after dot-unstuffing."""
    mail_options: tuple[str, ...] = ()
    """``MAIL FROM`` parameters, upper-cased by the server, e.g. ``("SMTPUTF8",)``."""
    rcpt_options: tuple[str, ...] = ()
    """``RCPT TO`` parameters of all recipients, in order, upper-cased."""
    tls: bool = False
    """Whether the message came over TLS (STARTTLS or implicit TLS)."""
    auth_login: str | None = None
    """The user name the client authenticated as, or None."""

    def parse(self) -> EmailMessage:
        """Parse ``content`` with the modern ``email.policy.default``.

        Examples:
            >>> SinkMessage("a@x", ("b@x",), b"To: b@x\\r\\n\\r\\nhi\\r\\n").parse()["To"]
            'b@x'
        """
        parsed = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)  # guaranteed by policy.default
        return parsed
