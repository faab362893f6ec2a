"""Exceptions.  Each is a subclass of the standard library's class of the same name, so
``except smtplib.SMTPException`` in an existing program still catches what smtpx raises.

::

    OSError
    └── smtplib.SMTPException
        └── SMTPException
            ├── SMTPNotSupportedError
            ├── SMTPServerDisconnected
            │   ├── SMTPTimeoutError           (also a TimeoutError)
            │   ├── SMTPOutcomeUnknown         (lost after the content was sent)
            │   └── SMTPNotAttempted           (a batch's message the server never took)
            ├── SMTPMessageTooLarge            (over the server's SIZE, nothing sent)
            ├── SMTPRecipientsRefused
            ├── SMTPStateError                 (a step the session does not allow now)
            ├── SMTPPolicyError                (the security policy refused a step)
            └── SMTPResponseException
                ├── SMTPSenderRefused
                ├── SMTPDataError
                ├── SMTPConnectError
                ├── SMTPHeloError
                ├── SMTPAuthenticationError
                │   ├── SMTPServerSignatureError  (the server did not prove itself: SCRAM)
                │   └── SMTPOAuthError            (a token refused, with the server's JSON)
                └── SMTPProtocolError          (the server's reply broke the protocol)

``InsecureWarning`` (a ``UserWarning``) is issued when a program does something that works
but exposes a secret, such as ``login()`` in clear while the server offers STARTTLS.
"""

from __future__ import annotations

import smtplib
from collections.abc import Mapping

from ._protocol import EnhancedStatus, LocalProtocolError, ProtocolError, ReplyTooLong

__all__ = [
    "InsecureWarning",
    "SMTPAuthenticationError",
    "SMTPConnectError",
    "SMTPDataError",
    "SMTPException",
    "SMTPHeloError",
    "SMTPMessageTooLarge",
    "SMTPNotAttempted",
    "SMTPNotSupportedError",
    "SMTPOAuthError",
    "SMTPOutcomeUnknown",
    "SMTPPolicyError",
    "SMTPProtocolError",
    "SMTPRecipientsRefused",
    "SMTPResponseException",
    "SMTPSenderRefused",
    "SMTPServerDisconnected",
    "SMTPServerSignatureError",
    "SMTPStateError",
    "SMTPTimeoutError",
    "from_protocol_error",
]


class SMTPException(smtplib.SMTPException):
    """Base class of every exception smtpx raises for an SMTP failure."""


class SMTPNotSupportedError(SMTPException, smtplib.SMTPNotSupportedError):
    """The command or option is not supported by the server."""


class SMTPServerDisconnected(SMTPException, smtplib.SMTPServerDisconnected):
    """Not connected, or the server closed the connection unexpectedly."""


class SMTPTimeoutError(SMTPServerDisconnected, TimeoutError):
    """The server did not answer in time; the connection has been closed."""


class SMTPOutcomeUnknown(SMTPServerDisconnected):
    """The connection was lost after the whole message was sent but before the server's
    final reply: the server may or may not have taken responsibility for it.

    Distinct from a message that was not sent: resending may deliver it twice.  The
    cause (a timeout, a reset) is in ``__cause__``; ``result`` holds what is known.
    """

    result: object = None


class SMTPNotAttempted(SMTPServerDisconnected):
    """The message was not sent: the connection was lost, or the server closed it (421),
    before the server took the message.  Sending it again cannot deliver it twice.

    ``deliver_many`` reports it for the messages a lost connection left behind; the cause,
    when there is one, is in ``__cause__``.
    """

    result: object = None


class SMTPMessageTooLarge(SMTPException):
    """The message is larger than the server's SIZE limit (RFC 1870); nothing was sent."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds the server's limit of {limit} bytes")
        self.size = size
        self.limit = limit


class SMTPStateError(SMTPException):
    """The program asked for a step the session does not allow now (for example a
    command while message content is being sent)."""


class SMTPPolicyError(SMTPException):
    """The security policy (``policy="strict"``) refused a step; the message names what was
    missing (TLS, a verified certificate, a mechanism safe to use...).  Nothing secret was
    sent.

    >>> raise SMTPPolicyError("TLS required: the server does not offer STARTTLS")
    Traceback (most recent call last):
    ...
    smtpx._exceptions.SMTPPolicyError: TLS required: the server does not offer STARTTLS
    """


class SMTPResponseException(SMTPException, smtplib.SMTPResponseException):
    """The server answered with an error code: ``smtp_code`` and ``smtp_error``.

    >>> error = SMTPResponseException(452, b"4.2.2 mailbox full")
    >>> error.is_transient, str(error.enhanced_status)
    (True, '4.2.2')
    """

    @property
    def enhanced_status(self) -> EnhancedStatus | None:
        """The RFC 3463 code at the start of the server's text, if it sent one."""
        text: bytes | str = self.smtp_error
        if isinstance(text, str):
            text = text.encode("utf-8", "replace")
        return EnhancedStatus.parse(text, self.smtp_code)

    @property
    def is_transient(self) -> bool:
        """A 4yz reply: the same request may succeed later (RFC 5321 section 4.2.1)."""
        return 400 <= self.smtp_code < 500

    @property
    def is_permanent(self) -> bool:
        """A 5yz reply: repeating the request will not help."""
        return 500 <= self.smtp_code < 600


class SMTPSenderRefused(SMTPResponseException, smtplib.SMTPSenderRefused):
    """The server refused the sender address (``sender``)."""


class SMTPRecipientsRefused(SMTPException, smtplib.SMTPRecipientsRefused):
    """Every recipient was refused; ``recipients`` maps each to ``(code, message)``."""


class SMTPDataError(SMTPResponseException, smtplib.SMTPDataError):
    """The server refused the message content."""


class SMTPConnectError(SMTPResponseException, smtplib.SMTPConnectError):
    """The server's greeting was not 220."""


class SMTPHeloError(SMTPResponseException, smtplib.SMTPHeloError):
    """The server refused HELO (and EHLO)."""


class SMTPAuthenticationError(SMTPResponseException, smtplib.SMTPAuthenticationError):
    """The server refused the credentials, or the AUTH exchange failed."""


class SMTPServerSignatureError(SMTPAuthenticationError):
    """The server did not prove that it knows the password: its SCRAM signature was wrong
    or missing (RFC 5802 section 3).  It may be an impostor; the connection has been
    closed (or the exchange cancelled) and nothing more should be sent to it."""


class SMTPOAuthError(SMTPAuthenticationError):
    """The server refused an OAuth 2.0 token (XOAUTH2, OAUTHBEARER).  ``details`` holds the
    JSON the server sent in its error challenge (RFC 7628 section 3.2.2), ``status`` its
    ``"status"`` member (for example ``"invalid_token"``, or Google's ``"400"``).

    >>> error = SMTPOAuthError(535, b"5.7.8 invalid credentials", {"status": "invalid_token"})
    >>> error.status, error.smtp_code
    ('invalid_token', 535)
    """

    def __init__(
        self, code: int, msg: bytes | str, details: Mapping[str, object] | None = None
    ) -> None:
        super().__init__(code, msg)
        self.details: dict[str, object] = dict(details or {})

    @property
    def status(self) -> str | None:
        status = self.details.get("status")
        return None if status is None else str(status)


class SMTPProtocolError(SMTPResponseException):
    """The server sent something that is not a valid reply (malformed, too long, or
    answering nothing); the connection has been closed."""


class InsecureWarning(UserWarning):
    """Something that works but exposes a secret, such as a password sent in clear."""


def from_protocol_error(error: ProtocolError) -> SMTPException:
    """The public exception for an error of the core: the one place they are translated
    (httpcore's ``map_exceptions``), used by both drivers at their boundary.

    A local error is a step the session does not allow now; a remote one means the server's
    bytes cannot be trusted any more, and the driver has cut the connection.
    """
    if isinstance(error, LocalProtocolError):
        return SMTPStateError(str(error))
    # smtplib gives 500 for a line over its limit, -1 for a reply it cannot read.
    return SMTPProtocolError(500 if isinstance(error, ReplyTooLong) else -1, str(error))
