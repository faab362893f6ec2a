"""SASL mechanisms as pure functions: credentials and challenges in, responses out.

The blocking and asyncio clients call these from their ``auth_*`` methods; nothing here
touches the network.  Credentials are text and are encoded as UTF-8 on the wire
(RFC 4616 section 2 for PLAIN; smtplib encodes ASCII only, bpo-29750 / gh-73936).
"""

from __future__ import annotations

import hmac

__all__ = ["cram_md5_response", "plain_response"]


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
