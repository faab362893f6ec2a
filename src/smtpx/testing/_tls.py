"""A throwaway certificate authority and the TLS contexts built on it."""

from __future__ import annotations

import ssl

import trustme

__all__ = ["ThrowawayCA"]


class ThrowawayCA:
    """A fresh CA (made with trustme) and one server certificate it signed.

    Nothing is written to disk and nothing is trusted outside the contexts
    this object builds, so a test server never touches the system trust store.

    Example:
        >>> ca = ThrowawayCA(["127.0.0.1", "localhost"])
        >>> ca.client_context().check_hostname
        True
    """

    def __init__(self, identities: list[str]) -> None:
        self._ca = trustme.CA()
        self._cert = self._ca.issue_cert(*identities)

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate in PEM form, for clients outside this process."""
        return self._ca.cert_pem.bytes()

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting the issued certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only this CA and verifies host names."""
        # PROTOCOL_TLS_CLIENT turns on CERT_REQUIRED and check_hostname; unlike
        # create_default_context() it does not load the system CAs, so the
        # test proves the throwaway CA is the one doing the vouching.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._ca.configure_trust(context)
        return context
