"""SASL mechanisms as pure exchanges: credentials and challenges in, responses out.

Nothing here touches the network.  Each mechanism is a ``Mechanism`` object (initial
response, respond to a challenge, verify the server's final word); ``auth_exchange`` is
the one flow that runs any of them over SMTP, in both clients; ``choose_mechanisms``
ranks what a server offers.  Credentials are text, sent as UTF-8 (RFC 4616 section 2;
smtplib encodes ASCII only, gh-73936).

>>> import smtpx
>>> from smtpx.auth import ScramSHA256
>>> with smtpx.SMTP("mail.example.org", 587) as smtp:  # doctest: +SKIP
...     smtp.starttls()
...     scram = ScramSHA256("alice", "s3cret")
...     smtp.auth(scram.name, scram)
(235, b'2.7.0 Authentication successful')

See ``docs/authentication.md``.
"""

from __future__ import annotations

from ._binding import TLS_SERVER_END_POINT, certificate_hash, tls_server_end_point
from ._choose import MECHANISMS, choose_mechanisms, create_mechanism
from ._exchange import MAX_AUTH_LINE, auth_exchange
from ._external import External
from ._mechanism import ChallengeError, Mechanism, ServerSignatureError
from ._oauth import OAuthBearer, TokenMechanism, TokenProvider, XOAuth2
from ._password import CramMD5, Login, Plain, cram_md5_response, plain_response
from ._saslprep import SASLprepError, saslprep
from ._scram import (
    MAX_SCRAM_ITERATIONS,
    MIN_SCRAM_ITERATIONS,
    ScramSHA1,
    ScramSHA1Plus,
    ScramSHA256,
    ScramSHA256Plus,
)

__all__ = [
    "MAX_AUTH_LINE",
    "MAX_SCRAM_ITERATIONS",
    "MECHANISMS",
    "MIN_SCRAM_ITERATIONS",
    "TLS_SERVER_END_POINT",
    "ChallengeError",
    "CramMD5",
    "External",
    "Login",
    "Mechanism",
    "OAuthBearer",
    "Plain",
    "SASLprepError",
    "ScramSHA1",
    "ScramSHA1Plus",
    "ScramSHA256",
    "ScramSHA256Plus",
    "ServerSignatureError",
    "TokenMechanism",
    "TokenProvider",
    "XOAuth2",
    "auth_exchange",
    "certificate_hash",
    "choose_mechanisms",
    "cram_md5_response",
    "create_mechanism",
    "plain_response",
    "saslprep",
    "tls_server_end_point",
]
