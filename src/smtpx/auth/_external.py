"""EXTERNAL (RFC 4422 appendix A): the client is who its TLS client certificate says.

Nothing secret is sent; the certificate is configured on the ``ssl.SSLContext`` given to
``starttls()`` or ``SMTP_SSL``.
"""

from __future__ import annotations

from ._mechanism import Mechanism

__all__ = ["External"]


class External(Mechanism):
    """EXTERNAL, with an optional authorization identity (empty: the certificate's).

    >>> External().initial_response(), External("list@example.org").initial_response()
    (b'', b'list@example.org')
    """

    name = "EXTERNAL"
    requires_tls = True  # the identity is the TLS client certificate's

    def __init__(self, authzid: str = "") -> None:
        if "\0" in authzid:
            raise ValueError("the authorization identity contains a NUL character")
        self._authzid = authzid.encode("utf-8")

    def initial_response(self) -> bytes:
        # Empty is sent as "=" on the AUTH line (RFC 4954 section 4).
        return self._authzid
