"""Which mechanism to use: the registry of those smtpx speaks, and a ranking by strength.

The ranking is for smtpx's modern path; ``login()`` keeps smtplib's order (CRAM-MD5,
PLAIN, LOGIN) and semantics.  Strongest first: SCRAM with channel binding, SCRAM, and
only under TLS the mechanisms that hand the server a reusable secret.  CRAM-MD5 is never
chosen (it needs the server to keep the password in a reusable form, and a recording of
it can be attacked offline); EXTERNAL only when the caller has a client certificate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ._external import External
from ._mechanism import Mechanism
from ._oauth import OAuthBearer, TokenProvider, XOAuth2
from ._password import CramMD5, Login, Plain
from ._scram import ScramSHA1, ScramSHA1Plus, ScramSHA256, ScramSHA256Plus

__all__ = ["MECHANISMS", "choose_mechanisms", "create_mechanism"]

#: Every mechanism smtpx speaks, by its registered name.
MECHANISMS: Mapping[str, type[Mechanism]] = {
    cls.name: cls
    for cls in (
        CramMD5,
        External,
        Login,
        OAuthBearer,
        Plain,
        ScramSHA1,
        ScramSHA1Plus,
        ScramSHA256,
        ScramSHA256Plus,
        XOAuth2,
    )
}

# (name, needs: "password", "token" or "certificate", needs TLS, needs channel binding),
# strongest first.
_RANKING = (
    ("EXTERNAL", "certificate", True, False),
    ("SCRAM-SHA-256-PLUS", "password", True, True),
    ("SCRAM-SHA-1-PLUS", "password", True, True),
    ("SCRAM-SHA-256", "password", False, False),
    ("SCRAM-SHA-1", "password", False, False),
    ("PLAIN", "password", True, False),
    ("LOGIN", "password", True, False),
    ("OAUTHBEARER", "token", True, False),
    ("XOAUTH2", "token", True, False),
)


def choose_mechanisms(
    offered: str | Iterable[str],
    *,
    tls: bool,
    channel_binding: bool = False,
    has_password: bool = False,
    has_token: bool = False,
    has_client_certificate: bool = False,
) -> list[str]:
    """The mechanisms to try, best first, among those the server *offered* (the EHLO
    AUTH parameter as a string, or names; any case).

    *tls*: the connection is encrypted; *channel_binding*: the client can bind to it
    (the server's certificate is known); the ``has_*`` flags: which credentials the
    caller gave.

    >>> choose_mechanisms("PLAIN LOGIN SCRAM-SHA-1 SCRAM-SHA-256", tls=True,
    ...                   has_password=True)
    ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN', 'LOGIN']
    >>> choose_mechanisms("PLAIN LOGIN", tls=False, has_password=True)
    []
    """
    names = offered.split() if isinstance(offered, str) else offered
    available = {name.upper() for name in names}
    have = {
        "password": has_password,
        "token": has_token,
        "certificate": has_client_certificate,
    }
    return [
        name
        for name, needs, needs_tls, needs_binding in _RANKING
        if name in available
        and have[needs]
        and (tls or not needs_tls)
        and (channel_binding or not needs_binding)
    ]


def create_mechanism(
    name: str,
    *,
    user: str = "",
    password: str | None = None,
    token: TokenProvider | None = None,
    authzid: str = "",
    binding_supported: bool = False,
) -> Mechanism:
    """A mechanism object for *name* from the credentials given.

    *binding_supported* (SCRAM without -PLUS): the client could have bound to TLS but the
    server offered no -PLUS mechanism (RFC 5802 section 6 "y" flag).  -PLUS mechanisms
    get the server's certificate from the client before the exchange.

    >>> create_mechanism("scram-sha-256", user="alice", password="s3cret")
    <ScramSHA256 SCRAM-SHA-256>
    """
    cls = MECHANISMS.get(name.upper())
    if cls is None:
        raise ValueError(f"smtpx does not speak the SASL mechanism {name!r}")
    if cls is External:
        return External(authzid)
    if issubclass(cls, XOAuth2 | OAuthBearer):
        if token is None:
            raise ValueError(f"{cls.name} needs a token")
        return cls(user, token)
    if password is None:
        raise ValueError(f"{cls.name} needs a password")
    if cls is Plain:
        return Plain(user, password, authzid=authzid)
    if cls in (Login, CramMD5):
        return cls(user, password)
    if cls in (ScramSHA1Plus, ScramSHA256Plus):
        return cls(user, password, authzid=authzid)
    return cls(user, password, authzid=authzid, binding_supported=binding_supported)  # type: ignore[call-arg]
