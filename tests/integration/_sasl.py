"""Hand-written SASL client exchanges for the server smoke tests.

They are smtplib ``authobject`` callables (``authobject(challenge=None)``
returns the next response) written here, apart from ``smtpx.auth``, so that
the servers are proved to work before smtpx's own mechanisms are tested
against them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import ssl
import unicodedata

__all__ = ["Scram", "end_point_binding", "oauthbearer", "xoauth2"]


def _saslname(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def end_point_binding(sock: ssl.SSLSocket) -> bytes:
    """tls-server-end-point (RFC 5929 section 4.1) for a certificate signed with SHA-256."""
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).digest()


class Scram:
    """A SCRAM client (RFC 5802) as an authobject; ``verified`` after the server-final.

    ``cb_name``/``cb_data`` make it the -PLUS variant (``p=`` flag); ``flag``
    overrides the GS2 flag (``"y"`` to play a client that was downgraded).
    """

    def __init__(
        self,
        user: str,
        password: str,
        hash_name: str = "sha256",
        *,
        cb_name: str | None = None,
        cb_data: bytes = b"",
        flag: str | None = None,
    ) -> None:
        self.user = user
        self.password = unicodedata.normalize("NFKC", password)
        self.hash_name = hash_name
        self.gs2_header = f"{flag or (f'p={cb_name}' if cb_name else 'n')},,"
        self.cb_data = cb_data
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n={_saslname(user)},r={self.nonce}"
        self.step = 0
        self.verified = False
        self._server_signature = b""

    def __call__(self, challenge: bytes | None = None) -> str:
        self.step += 1
        if challenge is None:
            return self.gs2_header + self.first_bare
        text = challenge.decode("utf-8")
        if text.startswith("v="):
            if not hmac.compare_digest(base64.b64decode(text[2:]), self._server_signature):
                raise ValueError("the server signature does not verify")
            self.verified = True
            return ""
        fields = dict(part.split("=", 1) for part in text.split(","))
        if not fields["r"].startswith(self.nonce):
            raise ValueError("server nonce does not extend ours")
        salt = base64.b64decode(fields["s"])
        iterations = int(fields["i"])
        name = self.hash_name
        salted = hashlib.pbkdf2_hmac(name, self.password.encode(), salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", name)
        stored_key = hashlib.new(name, client_key).digest()
        channel = base64.b64encode(self.gs2_header.encode() + self.cb_data).decode()
        without_proof = f"c={channel},r={fields['r']}"
        auth_message = f"{self.first_bare},{text},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, name)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", name)
        self._server_signature = hmac.digest(server_key, auth_message, name)
        return f"{without_proof},p={base64.b64encode(proof).decode()}"


def xoauth2(user: str, token: str) -> str:
    """The XOAUTH2 initial response, base64-encoded, for ``AUTH XOAUTH2 <it>``."""
    return base64.b64encode(f"user={user}\x01auth=Bearer {token}\x01\x01".encode()).decode()


def oauthbearer(user: str, token: str) -> str:
    """The OAUTHBEARER (RFC 7628 section 3.1) initial response, base64-encoded."""
    gs2 = f"n,a={_saslname(user)},"
    return base64.b64encode(f"{gs2}\x01auth=Bearer {token}\x01\x01".encode()).decode()
