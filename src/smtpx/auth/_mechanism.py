"""The interface every SASL mechanism implements: pure steps, no I/O.

A mechanism turns the server's challenges into the client's responses (RFC 4422 section 3).
``auth_exchange`` (``_exchange``) drives any mechanism over SMTP: it base64-encodes and
decodes, counts challenges, and cancels with ``*`` when ``respond`` refuses a challenge.
The same object also works as smtplib's ``authobject`` (``__call__``), so code written for
``smtplib.SMTP.auth`` can use it unchanged.
"""

from __future__ import annotations

from typing import ClassVar

from .._exceptions import SMTPAuthenticationError

__all__ = ["ChallengeError", "Mechanism", "ServerSignatureError"]


class ChallengeError(ValueError):
    """The server's challenge cannot be answered (malformed, unexpected, or a server-side
    error the mechanism reports).  ``auth_exchange`` cancels the exchange with ``*``."""


class ServerSignatureError(ChallengeError):
    """The server did not prove it knows the password (a wrong or missing SCRAM server
    signature); ``auth_exchange`` raises ``SMTPServerSignatureError`` for it."""


class Mechanism:
    """One SASL mechanism: subclass it to plug in your own.

    An exchange begins with ``initial_response()`` (which also resets the object, so one
    object can be used for a later exchange), then ``respond()`` answers each challenge,
    and ``verify()`` is called once the server has said yes.  Raise ``ChallengeError`` (a
    ``ValueError``) from ``respond`` or ``verify`` for a challenge you cannot answer.

    >>> class Anonymous(Mechanism):
    ...     name = "ANONYMOUS"
    ...     def initial_response(self) -> bytes:
    ...         return b"trace@example.org"   # RFC 4505
    >>> Anonymous()()   # as smtplib's authobject: a str
    'trace@example.org'

    Pass it to ``SMTP.auth``: ``smtp.auth(mechanism.name, mechanism)``; smtpx then runs
    the whole exchange (``auth_exchange``), and smtplib's own ``auth`` can use it too.
    """

    #: The registered name (RFC 4422 section 3.1: up to 20 of A-Z, 0-9, "-" and "_").
    name: ClassVar[str] = ""
    #: True when the mechanism sends something an eavesdropper could reuse (a password,
    #: a bearer token), or identifies the client by its TLS certificate: use it under TLS.
    requires_tls: ClassVar[bool] = False
    #: The channel binding type (RFC 5056) the mechanism needs, or None.
    channel_binding: ClassVar[str | None] = None

    def initial_response(self) -> bytes | None:
        """Begin an exchange: the client's first message, or None when the server speaks
        first (CRAM-MD5, LOGIN).  ``b""`` is an empty initial response."""
        return None

    def respond(self, challenge: bytes) -> bytes:
        """The response to one decoded challenge."""
        raise ChallengeError(f"{self.name or type(self).__name__} expects no challenge")

    def verify(self, final: bytes | None = None) -> None:
        """The server said the exchange succeeded.  *final* is the additional data it
        sent with its success, or None: SMTP has none (RFC 4954 section 4 sends it as a
        last 334 challenge, which ``respond`` has taken).  Mechanisms that authenticate
        the server (SCRAM) raise ``ServerSignatureError`` if it never proved itself."""

    def bind(self, peer_certificate: bytes | None) -> None:
        """Called before the exchange for a mechanism with a ``channel_binding``: the
        server's certificate (DER) from the TLS layer, or None without TLS."""

    def error(self, code: int, message: bytes) -> SMTPAuthenticationError:
        """The exception for a refused exchange (OAuth mechanisms add the server's JSON)."""
        return SMTPAuthenticationError(code, message)

    def __call__(self, challenge: bytes | None = None) -> str | None:
        """smtplib's ``authobject`` protocol: called with no argument for the initial
        response, then with each decoded challenge; returns text (UTF-8 of the bytes).

        smtplib never shows an ``authobject`` the server's success, so ``verify`` is not
        called on that path; ``smtpx`` runs the whole exchange instead.
        """
        if challenge is None:
            self._smtplib_begun = True
            data = self.initial_response()
        elif not getattr(self, "_smtplib_begun", False):
            # smtplib with initial_response_ok=False: the first call has the (empty)
            # first challenge; a client-first mechanism sends its initial response then.
            self._smtplib_begun = True
            data = self.initial_response()
            if data is None:
                data = self.respond(challenge)
        else:
            data = self.respond(challenge)
        return None if data is None else data.decode("utf-8")

    def __repr__(self) -> str:
        # Never shows credentials (STYLE: secrets stay out of reprs).
        return f"<{type(self).__name__} {self.name}>"
