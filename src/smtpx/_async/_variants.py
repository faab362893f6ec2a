"""``AsyncSMTP_SSL`` (implicit TLS) and ``AsyncLMTP`` (RFC 2033, also over a unix socket)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
from typing import Any

from .._clientbase import LMTP_PORT, SMTP_SSL_PORT, Response, legacy_context
from .._timeouts import Timeouts
from ._client import AsyncSMTP
from ._stream import open_unix_stream

__all__ = ["AsyncLMTP", "AsyncSMTP_SSL"]


class AsyncSMTP_SSL(AsyncSMTP):
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
            AsyncSMTP.__init__(self, host, port, local_hostname, timeout, source_address)

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
            AsyncSMTP.__init__(self, host, port, local_hostname, timeout, source_address)

    def _tls_arguments(self) -> dict[str, Any]:
        return {"ssl": self.context, "server_hostname": self._server_name}


class AsyncLMTP(AsyncSMTP):
    """LMTP (RFC 2033), over TCP or a unix socket (a host that starts with '/').

    Reads one reply per accepted recipient after the content (RFC 2033 section 4.2):
    ``sendmail`` returns those refused there with the others.
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

    async def connect(
        self, host: str | None = None, port: int | None = None, source_address: Any = None
    ) -> Response:
        """Connect over TCP, or to the unix socket at *host* if it starts with '/'."""
        if host is None:
            host = self._host or "localhost"
            port = self._port if port is None else port
        if not host.startswith("/"):
            return await super().connect(host, port, source_address=source_address)
        async with self._serialized():
            await self._begin_session(host, port or 0)
            self._report_connecting(host, None)
            self._start_connect_phase()
            try:
                async with asyncio.timeout_at(self._connect_deadline):
                    self.sock = await open_unix_stream(host)
            except asyncio.CancelledError:
                self._abort()
                raise
            except OSError as exc:
                self._report_connect_failed(host, None, exc)
                self._abort()
                raise
            self._report_stream()
            return await self._greeting()
