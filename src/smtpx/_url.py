"""Server URLs: ``smtps://user:pass@host:465`` and friends, parsed into an ``Endpoint``.

=====================  ===============================================  ============
scheme                 connection                                       default port
=====================  ===============================================  ============
``smtps``              implicit TLS (RFC 8314 section 3.3)              465
``smtp+starttls``      STARTTLS, which must succeed (RFC 3207)          587
``smtp``               plain; the strict policy still requires TLS      25
``lmtp``               LMTP over TCP (RFC 2033)                         24
``lmtp+unix``          LMTP over a unix socket: ``lmtp+unix:///path``   (none)
=====================  ===============================================  ============

The user name and password are percent-decoded as UTF-8 (``p%40ss`` is ``p@ss``), so any
character can be given.  Nothing else goes in a URL: options are arguments of ``connect``.
An ``Endpoint``'s repr never shows the password.

>>> endpoint = parse_url("smtp+starttls://alice:s%C3%A9cret@mail.example.org")
>>> endpoint.host, endpoint.port, endpoint.tls, endpoint.password
('mail.example.org', 587, 'starttls', 'sécret')
>>> endpoint
Endpoint('smtp+starttls://alice:***@mail.example.org:587')
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["SCHEMES", "Endpoint", "parse_url"]

TLSMode = Literal["implicit", "starttls", "none"]

#: scheme -> (TLS mode, LMTP, default port)
SCHEMES: dict[str, tuple[TLSMode, bool, int]] = {
    "smtps": ("implicit", False, 465),
    "smtp+starttls": ("starttls", False, 587),
    "smtp": ("none", False, 25),
    "lmtp": ("none", True, 24),
    "lmtp+unix": ("none", True, 0),
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to connect, from a URL."""

    scheme: str
    host: str  # a host name or address; for lmtp+unix, the socket's path
    port: int
    tls: TLSMode
    lmtp: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def unix(self) -> bool:
        return self.scheme == "lmtp+unix"

    def __repr__(self) -> str:
        # The password never appears: URLs end up in logs and tracebacks.
        user = ""
        if self.username is not None:
            user = urllib.parse.quote(self.username, safe="")
            user += ":***@" if self.password is not None else "@"
        if self.unix:
            return f"Endpoint('{self.scheme}://{user}{self.host}')"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"Endpoint('{self.scheme}://{user}{host}:{self.port}')"


def parse_url(url: str) -> Endpoint:
    """Parse a server URL; ``ValueError`` names what is wrong with it."""
    if not isinstance(url, str):
        raise TypeError(f"the server URL must be a str, not {type(url).__name__}")
    if any(c in url for c in "\r\n\0"):
        raise ValueError("the server URL contains CR, LF or NUL")
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        known = ", ".join(f"{name}://" for name in SCHEMES)
        raise ValueError(f"unknown server URL scheme in {_shown(url)!r}: use one of {known}")
    tls, lmtp, default_port = SCHEMES[scheme]
    parts = urllib.parse.urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError(
            f"the server URL {_shown(url)!r} has a query or fragment: "
            "options are arguments of connect(), not parts of the URL"
        )
    username = _decoded(parts.username)
    password = _decoded(parts.password)
    if scheme == "lmtp+unix":
        if parts.netloc.rpartition("@")[2] or not parts.path.startswith("/"):
            raise ValueError("an lmtp+unix URL names an absolute socket path: lmtp+unix:///path")
        return Endpoint(scheme, urllib.parse.unquote(parts.path), 0, tls, lmtp, username, password)
    if parts.path not in ("", "/"):
        raise ValueError(f"the server URL {_shown(url)!r} has a path; it takes none")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"the server URL {_shown(url)!r} has an invalid port") from None
    host = parts.hostname
    if not host:
        raise ValueError(f"the server URL {_shown(url)!r} names no host")
    return Endpoint(scheme, host, port or default_port, tls, lmtp, username, password)


def _decoded(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return urllib.parse.unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise ValueError("the user name or password in the URL is not UTF-8") from None


def _shown(url: str) -> str:
    """*url* without its password, for error messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.partition(':')[0]}:***@{hostpart}"
