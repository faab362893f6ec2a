"""SCRAM (RFC 5802, RFC 7677): SCRAM-SHA-1, SCRAM-SHA-256 and their -PLUS variants.

The password never crosses the wire, the server stores only a salted, iterated key, and
the server proves that it knows that key too (its signature is checked: a server that
cannot show it is refused).  The -PLUS variants also bind the exchange to the TLS
connection (``tls-server-end-point``, ``_binding``).

Over SMTP the server's final message (``v=...``) comes as a last 334 challenge, answered
with an empty line, before the 235 (RFC 4954 section 4).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import ClassVar

from ._binding import TLS_SERVER_END_POINT, tls_server_end_point
from ._mechanism import ChallengeError, Mechanism, ServerSignatureError
from ._saslprep import saslprep

__all__ = [
    "MAX_SCRAM_ITERATIONS",
    "MIN_SCRAM_ITERATIONS",
    "ScramSHA1",
    "ScramSHA1Plus",
    "ScramSHA256",
    "ScramSHA256Plus",
]

#: The fewest iterations accepted from a server: RFC 5802 section 9 and RFC 7677 section
#: 4 say it "SHOULD be at least 4096".  Fewer makes a recorded exchange cheap to attack
#: offline; a subclass may lower ``min_iterations`` for a server it trusts.
MIN_SCRAM_ITERATIONS = 4096
#: The most iterations computed for a server.  The count comes from the server: without a
#: bound a hostile one could make the client hash for minutes.  OWASP's 2023 advice for
#: PBKDF2-HMAC-SHA256 is 600,000; a million take about a quarter of a second.
MAX_SCRAM_ITERATIONS = 1_000_000


def _saslname(name: str) -> str:
    # RFC 5802 section 5.1: "=" and "," are escaped in names.
    return name.replace("=", "=3D").replace(",", "=2C")


def _attributes(message: bytes, what: str) -> list[tuple[str, str]]:
    """``a=value`` pairs separated by commas (RFC 5802 section 7)."""
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        raise ChallengeError(f"the server's {what} message is not UTF-8") from None
    pairs = []
    for part in text.split(","):
        key, equals, value = part.partition("=")
        if len(key) != 1 or not equals or not key.isalpha():
            raise ChallengeError(f"the server's {what} message is malformed: {text[:100]!r}")
        pairs.append((key, value))
    return pairs


def _printable(nonce: str) -> bool:
    # RFC 5802 section 7: printable = %x21-2B / %x2D-7E (ASCII without "," and space).
    return bool(nonce) and all(0x21 <= ord(char) <= 0x7E and char != "," for char in nonce)


class _Scram(Mechanism):
    """The SCRAM client of RFC 5802 section 3, for one hash function."""

    digest: ClassVar[str]
    min_iterations: ClassVar[int] = MIN_SCRAM_ITERATIONS
    max_iterations: ClassVar[int] = MAX_SCRAM_ITERATIONS

    def __init__(
        self,
        user: str,
        password: str,
        *,
        authzid: str = "",
        binding_supported: bool = False,
        nonce: str | None = None,
    ) -> None:
        """*binding_supported*: this client could have used channel binding, but the
        server offered no -PLUS mechanism; it says so ("y", RFC 5802 section 6) so that a
        server that did offer one sees the downgrade.  *nonce* fixes the client nonce
        (for tests against published vectors only; by default a fresh random one)."""
        if nonce is not None and not _printable(nonce):
            raise ValueError("a SCRAM nonce is printable ASCII without commas")
        # RFC 5802 section 5.1: the user name is a "query" string, the password a
        # "stored" one (section 2.2).  Checked now, before anything is sent.
        self._user = _saslname(saslprep(user, allow_unassigned=True))
        self._password = saslprep(password).encode("utf-8")
        self._authzid = _saslname(saslprep(authzid, allow_unassigned=True)) if authzid else ""
        self._flag = "y" if binding_supported else "n"
        self._binding = b""
        self._fixed_nonce = nonce
        self._state = "new"
        self._nonce = ""
        self._first_bare = ""
        self._server_signature = b""

    def _gs2_header(self) -> str:
        authzid = f"a={self._authzid}" if self._authzid else ""
        return f"{self._flag},{authzid},"

    def initial_response(self) -> bytes:
        self._nonce = self._fixed_nonce or secrets.token_urlsafe(24)
        self._first_bare = f"n={self._user},r={self._nonce}"
        self._state = "first"
        return (self._gs2_header() + self._first_bare).encode("utf-8")

    def respond(self, challenge: bytes) -> bytes:
        if self._state == "first":
            return self._client_final(challenge)
        if self._state == "final":
            self._check_server_final(challenge)
            return b""
        raise ChallengeError(f"{self.name}: unexpected challenge {challenge[:100]!r}")

    def _client_final(self, server_first: bytes) -> bytes:
        attributes = _attributes(server_first, "first")
        fields = dict(attributes)
        if attributes[0][0] == "m":
            # RFC 5802 section 5.1: a mandatory extension the client does not know.
            raise ChallengeError(f"{self.name}: the server requires an unknown extension")
        nonce, salt_text, count_text = fields.get("r"), fields.get("s"), fields.get("i")
        if nonce is None or salt_text is None or count_text is None:
            raise ChallengeError(f"{self.name}: the server's first message lacks r, s or i")
        # The server appends its own part to the client's nonce; a nonce that does not
        # start with ours is a replay or a mix-up.
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise ChallengeError(f"{self.name}: the server's nonce does not extend the client's")
        if not _printable(nonce):
            raise ChallengeError(f"{self.name}: the server's nonce has invalid characters")
        try:
            salt = base64.b64decode(salt_text, validate=True)
        except binascii.Error:
            raise ChallengeError(f"{self.name}: the salt is not valid base64") from None
        if not salt:
            raise ChallengeError(f"{self.name}: the salt is empty")
        if not count_text.isascii() or not count_text.isdigit():
            raise ChallengeError(f"{self.name}: the iteration count is not a number")
        count = int(count_text)
        if not self.min_iterations <= count <= self.max_iterations:
            raise ChallengeError(
                f"{self.name}: iteration count {count} outside"
                f" {self.min_iterations}..{self.max_iterations}"
            )
        channel = base64.b64encode(self._gs2_header().encode("utf-8") + self._binding)
        without_proof = f"c={channel.decode('ascii')},r={nonce}"
        auth_message = ",".join(
            (self._first_bare, server_first.decode("utf-8"), without_proof)
        ).encode("utf-8")
        salted = hashlib.pbkdf2_hmac(self.digest, self._password, salt, count)
        client_key = hmac.digest(salted, b"Client Key", self.digest)
        stored_key = hashlib.new(self.digest, client_key).digest()
        signature = hmac.digest(stored_key, auth_message, self.digest)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", self.digest)
        self._server_signature = hmac.digest(server_key, auth_message, self.digest)
        self._state = "final"
        return f"{without_proof},p={base64.b64encode(proof).decode('ascii')}".encode()

    def _check_server_final(self, server_final: bytes) -> None:
        fields = dict(_attributes(server_final, "final"))
        if "e" in fields:
            # RFC 5802 section 7: server-error, such as "invalid-proof".
            raise ChallengeError(f"{self.name}: the server reports {fields['e'][:100]!r}")
        try:
            signature = base64.b64decode(fields.get("v", ""), validate=True)
        except binascii.Error:
            signature = b""
        if not signature or not hmac.compare_digest(signature, self._server_signature):
            raise ServerSignatureError(
                f"{self.name}: the server's signature is wrong: it does not know the password"
            )
        self._state = "done"

    def verify(self, final: bytes | None = None) -> None:
        if final is not None and self._state == "final":
            self._check_server_final(final)
        if self._state != "done":
            raise ServerSignatureError(
                f"{self.name}: the server accepted without proving that it knows the"
                " password (no server signature)"
            )


class _ScramPlus(_Scram):
    """SCRAM with ``tls-server-end-point`` channel binding (RFC 5802 section 6)."""

    requires_tls = True
    channel_binding = TLS_SERVER_END_POINT

    def __init__(
        self,
        user: str,
        password: str,
        *,
        authzid: str = "",
        peer_certificate: bytes | None = None,
        nonce: str | None = None,
    ) -> None:
        """*peer_certificate*: the server's certificate in DER; when None, the client
        passes it before the exchange (``bind``)."""
        super().__init__(user, password, authzid=authzid, nonce=nonce)
        self._flag = f"p={TLS_SERVER_END_POINT}"
        if peer_certificate is not None:
            self.bind(peer_certificate)

    def bind(self, peer_certificate: bytes | None) -> None:
        if peer_certificate is None:
            if self._binding:
                return  # given to the constructor
            raise ValueError(f"{self.name} needs a TLS connection (channel binding)")
        self._binding = tls_server_end_point(peer_certificate)

    def initial_response(self) -> bytes:
        if not self._binding:
            raise ValueError(f"{self.name} needs the server's certificate (channel binding)")
        return super().initial_response()


class ScramSHA1(_Scram):
    """SCRAM-SHA-1 (RFC 5802).

    >>> scram = ScramSHA1("user", "pencil", nonce="fyko+d2lbbFgONRv9qkxdawL")
    >>> scram.initial_response()
    b'n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL'
    """

    name = "SCRAM-SHA-1"
    digest = "sha1"


class ScramSHA256(_Scram):
    """SCRAM-SHA-256 (RFC 7677), the one to prefer.

    >>> scram = ScramSHA256("user", "pencil")
    >>> scram.initial_response().startswith(b"n,,n=user,r=")
    True
    """

    name = "SCRAM-SHA-256"
    digest = "sha256"


class ScramSHA1Plus(_ScramPlus):
    """SCRAM-SHA-1-PLUS: SCRAM-SHA-1 bound to the TLS connection."""

    name = "SCRAM-SHA-1-PLUS"
    digest = "sha1"


class ScramSHA256Plus(_ScramPlus):
    """SCRAM-SHA-256-PLUS: SCRAM-SHA-256 bound to the TLS connection."""

    name = "SCRAM-SHA-256-PLUS"
    digest = "sha256"
