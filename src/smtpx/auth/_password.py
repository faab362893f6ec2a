"""The simple password mechanisms: PLAIN (RFC 4616), LOGIN and CRAM-MD5 (RFC 2195).

Credentials are text, sent as UTF-8 (RFC 4616 section 2; smtplib encodes ASCII only,
gh-73936).  PLAIN and LOGIN send the password itself: use them under TLS only.
"""

from __future__ import annotations

import hmac

from ._mechanism import ChallengeError, Mechanism

__all__ = ["CramMD5", "Login", "Plain", "cram_md5_response", "plain_response"]


def plain_response(user: str, password: str, authzid: str = "") -> str:
    """The PLAIN message of RFC 4616 section 2: ``authzid NUL authcid NUL passwd``.

    >>> plain_response("alice", "s3cret")
    '\\x00alice\\x00s3cret'
    """
    return f"{authzid}\0{user}\0{password}"


def cram_md5_response(user: str, password: str, challenge: bytes) -> str:
    """The CRAM-MD5 response of RFC 2195 section 2: the user, a space, and the hex
    HMAC-MD5 of the challenge keyed with the password.

    >>> cram_md5_response("tim", "tanstaaftanstaaf",
    ...                   b"<1896.697170952@postoffice.reston.mci.net>")
    'tim b913a602c7eda7a495b4e6e7334d3890'
    """
    digest = hmac.new(password.encode("utf-8"), challenge, "md5").hexdigest()
    return f"{user} {digest}"


def _no_nul(**fields: str) -> None:
    # RFC 4616 section 2: NUL separates the fields, so none may contain one (a NUL in the
    # user name would let a caller's string choose the authorization identity).
    for what, value in fields.items():
        if "\0" in value:
            raise ValueError(f"the {what} contains a NUL character")


class Plain(Mechanism):
    """PLAIN (RFC 4616): the user name and password in the initial response.

    *authzid* asks to act as another identity (empty: the user's own).

    >>> Plain("Kurt", "xipj3plmq", authzid="Ursel").initial_response()
    b'Ursel\\x00Kurt\\x00xipj3plmq'
    """

    name = "PLAIN"
    requires_tls = True

    def __init__(self, user: str, password: str, *, authzid: str = "") -> None:
        _no_nul(user=user, password=password, authzid=authzid)
        self._message = plain_response(user, password, authzid).encode("utf-8")

    def initial_response(self) -> bytes:
        return self._message

    def respond(self, challenge: bytes) -> bytes:
        # Reached only when the server sent a non-empty challenge instead of the empty
        # one after "AUTH PLAIN" (RFC 4616 has no server challenge).
        raise ChallengeError("PLAIN expects no challenge")


class Login(Mechanism):
    """LOGIN (draft-murchison-sasl-login): the user name, then the password, each in
    answer to a challenge ("Username:", "Password:"; their text is not checked, servers
    vary).  No initial response: not every server accepts one.

    >>> login = Login("alice", "s3cret")
    >>> login.initial_response(), login.respond(b"Username:"), login.respond(b"Password:")
    (None, b'alice', b's3cret')
    """

    name = "LOGIN"
    requires_tls = True

    def __init__(self, user: str, password: str) -> None:
        self._answers = (user.encode("utf-8"), password.encode("utf-8"))
        self._step = 0

    def initial_response(self) -> None:
        self._step = 0
        return None

    def respond(self, challenge: bytes) -> bytes:
        if self._step >= len(self._answers):
            raise ChallengeError("LOGIN has answered both of its challenges already")
        answer = self._answers[self._step]
        self._step += 1
        return answer


class CramMD5(Mechanism):
    """CRAM-MD5 (RFC 2195): the password keys an HMAC of the server's challenge, so it
    is not sent, but the server must store it in a reusable form; prefer SCRAM.

    >>> CramMD5("tim", "tanstaaftanstaaf").respond(
    ...     b"<1896.697170952@postoffice.reston.mci.net>")
    b'tim b913a602c7eda7a495b4e6e7334d3890'
    """

    name = "CRAM-MD5"

    def __init__(self, user: str, password: str) -> None:
        self._user = user
        self._password = password
        self._answered = False

    def initial_response(self) -> None:
        self._answered = False
        return None

    def respond(self, challenge: bytes) -> bytes:
        if self._answered:
            raise ChallengeError("CRAM-MD5 has only one challenge")
        if not challenge:
            raise ChallengeError("CRAM-MD5 needs a non-empty challenge")
        self._answered = True
        return cram_md5_response(self._user, self._password, challenge).encode("utf-8")
