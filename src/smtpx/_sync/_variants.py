"""``SMTP_SSL`` (implicit TLS) and ``LMTP`` (RFC 2033, also over a unix socket).

Like ``_client``, this module looks ``socket`` up at call time: ``smtpx/__init__.py``
forwards ``smtpx.socket = mock_socket`` here too (CPython's LMTP tests rely on it).
"""

from __future__ import annotations

import socket
import ssl
import sys
from typing import Any

from .._clientbase import LMTP_PORT, SMTP_SSL_PORT, Response, legacy_context
from .._timeouts import Timeouts
from ._client import SMTP

__all__ = ["LMTP", "LMTP_PORT", "SMTP_SSL", "SMTP_SSL_PORT"]


class SMTP_SSL(SMTP):
    """SMTP over implicit TLS (RFC 8314), port 465.  Without *context* the certificate
    and host name are verified (smtplib's default context verifies nothing)."""

    default_port = SMTP_SSL_PORT
    _implicit_tls = True

    if sys.version_info >= (3, 12):

        def __init__(
            self,
            host: str = "",
            port: int = 0,
            local_hostname: str | None = None,
            *,
            timeout: float | Timeouts | None = socket._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
            source_address: tuple[str, int] | None = None,
            context: ssl.SSLContext | None = None,
        ) -> None:
            self.context = context if context is not None else ssl.create_default_context()
            SMTP.__init__(self, host, port, local_hostname, timeout, source_address)

    else:  # Python 3.11's smtplib still takes the deprecated keyfile and certfile.

        def __init__(
            self,
            host: str = "",
            port: int = 0,
            local_hostname: str | None = None,
            keyfile: str | None = None,
            certfile: str | None = None,
            timeout: float | Timeouts | None = socket._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
            source_address: tuple[str, int] | None = None,
            context: ssl.SSLContext | None = None,
        ) -> None:
            self.keyfile = keyfile
            self.certfile = certfile
            context = legacy_context(keyfile, certfile, context)
            self.context = context if context is not None else ssl.create_default_context()
            SMTP.__init__(self, host, port, local_hostname, timeout, source_address)

    def _get_socket(self, host: str, port: int, timeout: float | None) -> Any:
        plain = super()._get_socket(host, port, timeout)
        try:
            return self.context.wrap_socket(plain, server_hostname=self._server_name)
        except BaseException:
            plain.close()
            raise


class LMTP(SMTP):
    """LMTP (RFC 2033), over TCP or a unix socket (a host that starts with '/').

    Unlike smtplib, reads one reply per accepted recipient after the content
    (RFC 2033 section 4.2): ``sendmail`` returns those refused there with the others.
    """

    ehlo_msg = "lhlo"
    _lmtp = True

    def __init__(
        self,
        host: str = "",
        port: int = LMTP_PORT,
        local_hostname: str | None = None,
        source_address: tuple[str, int] | None = None,
        timeout: float | Timeouts | None = socket._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
    ) -> None:
        super().__init__(
            host,
            port,
            local_hostname=local_hostname,
            source_address=source_address,
            timeout=timeout,
        )

    def connect(
        self, host: str = "localhost", port: int = 0, source_address: Any = None
    ) -> Response:
        """Connect over TCP, or to the unix socket at *host* if it starts with '/'."""
        if not host.startswith("/"):
            return super().connect(host, port, source_address=source_address)
        if self.timeout is not None and not self.timeout:
            raise ValueError("Non-blocking socket (timeout=0) is not supported")
        self._begin_session("")
        self._report_connecting(host, None)
        try:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            timeout = self._connect_timeout()
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                self.sock.settimeout(timeout)
            self.sock.connect(host)
        except OSError as exc:
            self._report_connect_failed(host, None, exc)
            if self.sock:
                self.sock.close()
            self.sock = None
            raise
        self._report_socket()
        return self._greeting()
