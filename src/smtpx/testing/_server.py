"""SinkServer: an aiosmtpd SMTP/LMTP server on a loopback port, in a thread."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
import urllib.parse
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping
from types import TracebackType
from typing import Any, Self

from aiosmtpd.smtp import SMTP

from ._connection import FaultyLMTP, FaultySMTP
from ._faults import Fault, FaultPlan
from ._handler import Mailbox, RcptFilter, SinkHandler, make_authenticator, to_predicate
from ._message import SinkMessage
from ._tls import ThrowawayCA

__all__ = ["SinkServer"]

_log = logging.getLogger("smtpx.testing")

# aiosmtpd logs every session to "mail.log". Without a handler anywhere,
# logging's last-resort handler would print its warnings (an aborted AUTH,
# a dropped connection) on stderr in the middle of a test run or the demo.
# A NullHandler keeps it quiet by default; configure logging to see it.
logging.getLogger("mail.log").addHandler(logging.NullHandler())
_log.addHandler(logging.NullHandler())

_LOOPBACK = "127.0.0.1"
# The mechanisms aiosmtpd implements; both send the password as is, hence
# only after STARTTLS by default (RFC 4954 section 4 and RFC 4616 section 6).
_MECHANISMS = ("PLAIN", "LOGIN")
# How long start() and stop() wait for the server thread. Both are local
# operations that take milliseconds; the bound only turns a hang into an error.
_THREAD_TIMEOUT = 10.0
# Idle timeout per connection, as aiosmtpd's own default: RFC 5321 section
# 4.5.3.2.7 asks servers to wait at least five minutes for the next command.
_SESSION_TIMEOUT = 300.0


class SinkServer:
    """An SMTP or LMTP server on 127.0.0.1 that accepts mail and keeps it in memory.

    The server binds an ephemeral port, runs aiosmtpd on its own event loop in
    a background thread, and records every delivered message in ``messages``.
    With ``starttls=True`` it offers STARTTLS with a certificate for
    ``127.0.0.1`` and ``localhost`` from a throwaway CA made for this server;
    ``client_context()`` returns a client context that trusts that CA. With
    ``auth`` it offers AUTH PLAIN and LOGIN for exactly those credentials
    (only after STARTTLS unless ``auth_require_tls=False``).

    Args:
        starttls: offer STARTTLS.
        require_starttls: answer 530 to anything but EHLO, NOOP, STARTTLS
            and QUIT until TLS is up (RFC 3207 section 4).
        implicit_tls: speak TLS from the first byte (SMTPS, RFC 8314).
        auth: user name to password; None (the default) offers no AUTH.
        auth_require_tls: refuse AUTH with 538 until STARTTLS is done. Defaults
            to True with STARTTLS, else False (implicit TLS is TLS already).
        auth_mechanisms: the SASL mechanisms to offer, from PLAIN and LOGIN.
        smtputf8: offer SMTPUTF8 (RFC 6531). 8BITMIME is always offered.
        lmtp: speak LMTP (RFC 2033) instead of SMTP.
        refuse_at_rcpt: recipients to refuse with 550 in reply to RCPT TO.
        refuse_after_data: LMTP only: recipients to refuse with 550 in their
            own reply after the end of data, while the others get 250.
        hostname: the name in the greeting and the EHLO reply, also put in
            the certificate.
        data_size_limit: the SIZE the server advertises and enforces.
        faults: scripted faults (see ``Fault``), as ``fault()`` adds them.
        port: the loopback port to listen on; 0 (the default) picks a free one.

    Examples:
        >>> import smtplib
        >>> with SinkServer() as server:
        ...     with smtplib.SMTP(server.host, server.port, "localhost") as client:
        ...         refused = client.sendmail("a@example.org", ["b@example.org"], b"hi\\r\\n")
        ...     server.wait_for_messages(1)[0].rcpt_tos
        ('b@example.org',)
    """

    def __init__(
        self,
        *,
        starttls: bool = False,
        require_starttls: bool = False,
        implicit_tls: bool = False,
        auth: Mapping[str, str] | None = None,
        auth_require_tls: bool | None = None,
        auth_mechanisms: Collection[str] = ("PLAIN", "LOGIN"),
        smtputf8: bool = True,
        lmtp: bool = False,
        refuse_at_rcpt: RcptFilter | None = None,
        refuse_after_data: RcptFilter | None = None,
        hostname: str = "localhost",
        data_size_limit: int = 32 * 1024 * 1024,
        faults: Iterable[Fault] = (),
        port: int = 0,
    ) -> None:
        if require_starttls and not starttls:
            raise ValueError("require_starttls needs starttls=True")
        if starttls and implicit_tls:
            raise ValueError("choose one of starttls and implicit_tls")
        if refuse_after_data is not None and not lmtp:
            raise ValueError("refuse_after_data is an LMTP feature; pass lmtp=True")
        unknown = set(auth_mechanisms) - set(_MECHANISMS)
        if isinstance(auth_mechanisms, str) or unknown or not auth_mechanisms:
            raise ValueError(f"auth_mechanisms takes a non-empty subset of {_MECHANISMS}")
        uses_tls = starttls or implicit_tls
        self._starttls = starttls
        self._implicit_tls = implicit_tls
        self._lmtp = lmtp
        self._hostname = hostname
        self._mailbox = Mailbox()
        self._faults = FaultPlan(faults)
        # For url: the first user, the one a test most likely means.
        self._login = next(iter(auth.items()), None) if auth is not None else None
        self._ca = ThrowawayCA(_identities(hostname)) if uses_tls else None
        # One server context for all connections: SSLContext is thread-safe
        # and loading the key for every connection would be wasted work.
        self._tls_context = self._ca.server_context() if self._ca else None
        self._handler = SinkHandler(
            self._mailbox,
            auth_enabled=auth is not None,
            lmtp=lmtp,
            refuse_at_rcpt=to_predicate(refuse_at_rcpt, "refuse_at_rcpt"),
            refuse_after_data=to_predicate(refuse_after_data, "refuse_after_data"),
        )
        self._smtp_kwargs: dict[str, Any] = {
            "hostname": hostname,
            "enable_SMTPUTF8": smtputf8,
            "data_size_limit": data_size_limit,
            "require_starttls": require_starttls,
            # aiosmtpd sees only STARTTLS as TLS; an implicit-TLS session is TLS from the
            # first byte, so there AUTH needs no further condition.
            "auth_require_tls": starttls if auth_require_tls is None else auth_require_tls,
            "timeout": _SESSION_TIMEOUT,
        }
        if auth is not None:
            self._smtp_kwargs["authenticator"] = make_authenticator(auth)
            self._smtp_kwargs["auth_exclude_mechanism"] = [
                name for name in _MECHANISMS if name not in auth_mechanisms
            ]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        if not 0 <= port < 65536:
            raise ValueError(f"port must be 0 (a free port) or a port number, not {port}")
        self._bind_port = port
        self._port = 0
        # The connections' protocols, so stop() can cut the ones still open.
        self._protocols: weakref.WeakSet[SMTP] = weakref.WeakSet()

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Bind 127.0.0.1 (on an ephemeral port by default) and serve from a background thread.

        Examples:
            >>> server = SinkServer()
            >>> server.start()
            >>> server.port > 0
            True
            >>> server.stop()
        """
        if self._thread is not None:
            raise RuntimeError("SinkServer is already running")
        # Bind here rather than handing port=0 to asyncio: the port is known
        # before the thread starts and bind errors surface in the caller.
        sock = socket.create_server((_LOOPBACK, self._bind_port))
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_log_loop_error)
        try:
            server_tls = self._tls_context if self._implicit_tls else None
            self._server = loop.run_until_complete(
                loop.create_server(self._make_protocol, sock=sock, ssl=server_tls)
            )
        except BaseException:
            sock.close()
            loop.close()
            raise
        self._port = sock.getsockname()[1]
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name=f"smtpx-sink-server-{self._port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Close the listener, cut open connections, and join the thread.

        Calling it on a stopped server does nothing. Received messages stay
        readable after stop().
        """
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            future.result(_THREAD_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_THREAD_TIMEOUT)
            if thread.is_alive():  # pragma: no cover - a hung handler
                raise RuntimeError("SinkServer thread did not stop")
            loop.close()
            self._loop = self._thread = self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"{self.host}:{self._port}" if self._thread else "stopped"
        kind = "LMTP" if self._lmtp else "SMTP"
        return f"<SinkServer {kind} {state} messages={len(self._mailbox.snapshot())}>"

    # -- what tests read ---------------------------------------------------

    @property
    def host(self) -> str:
        """The address to connect to: always ``"127.0.0.1"``."""
        return _LOOPBACK

    @property
    def port(self) -> int:
        """The port the server listens on (0 before start())."""
        return self._port

    @property
    def hostname(self) -> str:
        """The server's own name (greeting, EHLO reply, certificate)."""
        return self._hostname

    @property
    def messages(self) -> list[SinkMessage]:
        """A snapshot of the messages received so far, oldest first."""
        return self._mailbox.snapshot()

    def clear_messages(self) -> None:
        """Forget the messages received so far."""
        self._mailbox.clear()

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[SinkMessage]:
        """Block until at least ``count`` messages arrived; return all of them.

        Raises:
            TimeoutError: fewer than ``count`` messages within ``timeout`` seconds.
        """
        return self._mailbox.wait(count, timeout)

    @property
    def url(self) -> str:
        """An ``smtpx.connect`` URL for this server, with the first ``auth`` user in it.

        ``smtps://`` with implicit TLS, ``smtp+starttls://`` with STARTTLS, ``lmtp://``
        for LMTP, else ``smtp://``. Pass ``context=server.client_context()`` for TLS;
        the plain ones need ``policy="compat"``, since the strict policy wants TLS.

        Example:
            >>> server = SinkServer(starttls=True, auth={"me@example.org": "s3cret"})
            >>> server.url
            'smtp+starttls://me%40example.org:s3cret@127.0.0.1:0'
        """
        if self._implicit_tls:
            scheme = "smtps"
        elif self._starttls:
            scheme = "smtp+starttls"
        else:
            scheme = "lmtp" if self._lmtp else "smtp"
        userinfo = ""
        if self._login is not None:
            user, password = (urllib.parse.quote(part, safe="") for part in self._login)
            userinfo = f"{user}:{password}@"
        return f"{scheme}://{userinfo}{_LOOPBACK}:{self._port}"

    # -- scripted faults -------------------------------------------------------

    def fault(self, *faults: Fault) -> None:
        """Add scripted faults; they apply to the connections' next steps, in order.

        When several faults match a point, the first added fires (one per point).

        Example:
            >>> import smtpx
            >>> from smtpx.testing import Fault
            >>> with SinkServer() as server:
            ...     server.fault(Fault(at="RCPT", nth=2, reply="452 4.5.3 Too many recipients"))
            ...     with smtpx.SMTP(server.host, server.port, "localhost") as client:
            ...         result = client.deliver(b"hi\\r\\n", "a@x.org", ["b@x.org", "c@x.org"])
            >>> [(r.address, r.status) for r in result.recipients]
            [('b@x.org', 'accepted'), ('c@x.org', 'deferred')]
        """
        self._faults.add(*faults)

    def clear_faults(self) -> None:
        """Remove every scripted fault and forget which fired."""
        self._faults.clear()

    @property
    def fired_faults(self) -> list[Fault]:
        """The faults that fired so far, in order (one entry per firing)."""
        return self._faults.fired()

    @property
    def pending_faults(self) -> list[Fault]:
        """The faults that can still fire."""
        return self._faults.pending()

    def reset(self) -> None:
        """Forget received messages and scripted faults: a clean server for the next test."""
        self._mailbox.clear()
        self._faults.clear()

    def client_context(self) -> ssl.SSLContext:
        """A new client SSLContext that trusts this server's CA and checks host names.

        Examples:
            >>> SinkServer(starttls=True).client_context().verify_mode.name
            'CERT_REQUIRED'
        """
        return self._require_ca().client_context()

    @property
    def ca_pem(self) -> bytes:
        """This server's CA certificate (PEM), for clients in other processes."""
        return self._require_ca().ca_pem

    # -- inside the server thread ----------------------------------------------

    def _require_ca(self) -> ThrowawayCA:
        if self._ca is None:
            raise RuntimeError(
                "this SinkServer has no TLS: pass starttls=True or implicit_tls=True"
            )
        return self._ca

    def _make_protocol(self) -> SMTP:
        # Called by the event loop for each new connection, in the server thread.
        cls: Callable[..., SMTP] = FaultyLMTP if self._lmtp else FaultySMTP
        protocol = cls(
            self._handler,
            loop=asyncio.get_running_loop(),
            tls_context=self._tls_context if self._starttls else None,
            faults=self._faults,
            **self._smtp_kwargs,
        )
        self._protocols.add(protocol)
        return protocol

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        sockets = []  # taken before abort(): a TLS transport answers nothing after it
        for protocol in list(self._protocols):
            transport = protocol.transport
            if isinstance(transport, asyncio.WriteTransport):
                try:
                    sock = transport.get_extra_info("socket")
                except AttributeError:  # a TLS transport whose connection is gone
                    sock = None
                if sock is not None:
                    sockets.append(sock)
                transport.abort()
        await self._server.wait_closed()
        this = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not this]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # abort() closes sockets from call_soon callbacks, and a TLS layer adds
        # one more hop; let those run so no socket outlives the loop (on a busy
        # machine ten turns of the loop were not always enough: wait for the
        # sockets themselves, briefly).
        for _ in range(200):
            await asyncio.sleep(0)
            if all(sock.fileno() == -1 for sock in sockets):
                break
            await asyncio.sleep(0.005)


def _identities(hostname: str) -> list[str]:
    names = [_LOOPBACK, "localhost"]
    if hostname not in names:
        names.append(hostname)
    return names


def _log_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # Failed handshakes and dropped peers are what a test server sees when a
    # test checks that a client refuses a bad certificate; log, don't print.
    _log.debug("event loop error: %s", context.get("message"), exc_info=context.get("exception"))
