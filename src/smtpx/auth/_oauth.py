"""OAuth 2.0 bearer tokens: OAUTHBEARER (RFC 7628) and Google's and Microsoft's XOAUTH2.

The token is given as a string or as a *token provider*: a callable returning one (for
the asyncio clients it may be a coroutine function).  ``auth_exchange`` asks the provider
at the start of every exchange, through the driver (so the asyncio client awaits it), and
hands the token to the mechanism (``use_token``).  When the server refuses a token,
running the exchange again with the same object asks the provider once more: that is
how a client retries once with a fresh token after a 535.

A refused token comes back as an error challenge carrying JSON (RFC 7628 section 3.2.2;
XOAUTH2 does the same).  The client answers it as the mechanism says (``\\x01`` for
OAUTHBEARER, an empty line for XOAUTH2), the server then sends its final 535, and the
exchange raises ``SMTPOAuthError`` with the JSON in ``details``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable

from .._exceptions import SMTPAuthenticationError, SMTPOAuthError
from ._mechanism import ChallengeError, Mechanism

__all__ = ["OAuthBearer", "TokenMechanism", "TokenProvider", "XOAuth2"]

#: A token, or a callable that returns one (a coroutine function for the asyncio clients).
TokenProvider = str | Callable[[], object]

# RFC 7628 section 3.1: the key-value pairs are separated by ^A (0x01).
_SEP = "\x01"


def _check_token(token: object) -> str:
    if not isinstance(token, str):
        raise TypeError(f"a token provider must return a str, not {type(token).__name__}")
    # RFC 6750 section 2.1: b64token is printable ASCII without spaces.  Anything else
    # (a ^A, CR, LF) would let the token rewrite the message around it.
    if not token or not all(0x21 <= ord(char) <= 0x7E for char in token):
        raise ValueError("an OAuth token is printable ASCII without spaces")
    return token


def _check_field(what: str, value: str) -> None:
    if _SEP in value or any(ord(char) < 0x20 for char in value):
        raise ValueError(f"the {what} contains a control character")


class TokenMechanism(Mechanism):
    """A mechanism that sends an OAuth 2.0 bearer token (see the module's docstring)."""

    requires_tls = True  # RFC 6750 section 5.3 and RFC 7628 section 5: a bearer token is a secret

    def __init__(self, user: str, token: TokenProvider) -> None:
        _check_field("user name", user)
        self._user = user
        self._token: str | None = None
        self.token_provider: Callable[[], object] | None = None
        if isinstance(token, str):
            self._token = _check_token(token)
        elif callable(token):
            self.token_provider = token
        else:
            raise TypeError("token must be a str or a callable that returns one")
        self._fresh = False  # a token from the provider, not yet used
        self.details: dict[str, object] | None = None  # the server's error JSON

    def use_token(self, token: object) -> None:
        """The token for the next exchange (what the provider returned)."""
        self._token = _check_token(token)
        self._fresh = True

    def _current_token(self) -> str:
        provider = self.token_provider
        if provider is not None and not self._fresh:
            # smtplib's path, or a caller driving the mechanism by hand: ask here.
            token = provider()
            if inspect.isawaitable(token):
                if inspect.iscoroutine(token):
                    token.close()  # never awaited: do not leave a warning behind
                raise TypeError(
                    "the token provider is a coroutine function: use it with the asyncio"
                    " clients, which await it"
                )
            self.use_token(token)
        self._fresh = False
        assert self._token is not None
        return self._token

    def _take_error(self, challenge: bytes) -> None:
        """Keep the JSON of an error challenge; malformed JSON is kept as its text."""
        try:
            details = json.loads(challenge.decode("utf-8"))
        except ValueError:
            details = None
        if not isinstance(details, dict):
            details = {"error": challenge[:1000].decode("utf-8", "replace")}
        self.details = details

    def error(self, code: int, message: bytes) -> SMTPAuthenticationError:
        if self.details is None:
            return SMTPAuthenticationError(code, message)
        return SMTPOAuthError(code, message, self.details)


class XOAuth2(TokenMechanism):
    """XOAUTH2, the mechanism of Gmail and Microsoft 365: ``user=...^Aauth=Bearer ...^A^A``.

    >>> XOAuth2("someuser@example.com", "ya29.vF9dft4q").initial_response()
    b'user=someuser@example.com\\x01auth=Bearer ya29.vF9dft4q\\x01\\x01'
    """

    name = "XOAUTH2"

    def initial_response(self) -> bytes:
        self.details = None
        token = self._current_token()
        return f"user={self._user}{_SEP}auth=Bearer {token}{_SEP}{_SEP}".encode()

    def respond(self, challenge: bytes) -> bytes:
        if self.details is not None:
            raise ChallengeError("XOAUTH2: a second challenge after the error")
        # Google's and Microsoft's error challenge: JSON; the client answers with an
        # empty line and the server sends its final error.
        self._take_error(challenge)
        return b""


class OAuthBearer(TokenMechanism):
    """OAUTHBEARER (RFC 7628).  *host* and *port* are the server's, as the client knows
    them (optional, section 3.1).

    >>> bearer = OAuthBearer("me@example.com", "vF9dft4q", host="mx.example.com", port=587)
    >>> bearer.initial_response().split(b"\\x01")
    [b'n,a=me@example.com,', b'host=mx.example.com', b'port=587', b'auth=Bearer vF9dft4q', b'', b'']
    """

    name = "OAUTHBEARER"

    def __init__(
        self, user: str, token: TokenProvider, *, host: str | None = None, port: int | None = None
    ) -> None:
        super().__init__(user, token)
        if host is not None:
            _check_field("host", host)
        self._host = host
        self._port = port

    def initial_response(self) -> bytes:
        self.details = None
        token = self._current_token()
        # The GS2 header (RFC 5801): no channel binding, the user as authzid, with "="
        # and "," escaped as SCRAM does.
        user = self._user.replace("=", "=3D").replace(",", "=2C")
        header = f"n,a={user}," if user else "n,,"
        pairs = []
        if self._host is not None:
            pairs.append(f"host={self._host}")
        if self._port is not None:
            pairs.append(f"port={int(self._port)}")
        pairs.append(f"auth=Bearer {token}")
        return (header + _SEP + _SEP.join(pairs) + _SEP + _SEP).encode("utf-8")

    def respond(self, challenge: bytes) -> bytes:
        if self.details is not None:
            raise ChallengeError("OAUTHBEARER: a second challenge after the error")
        # RFC 7628 section 3.2.3: the server's error challenge is answered with a single
        # ^A; the server then fails the exchange.
        self._take_error(challenge)
        return _SEP.encode()
