"""``SMTP``: smtplib's class over the sans-I/O core (``SMTP_SSL`` and ``LMTP`` are in
``_variants``).

This module is the blocking driver: it connects, performs the steps flows yield (write,
read, TLS handshake, close; ``smtpx._steps``) on a socket, and runs each public method's
flow.  Everything else is in the policy layer, shared with the asyncio driver.  The module
global ``socket`` is looked up at call time because programs and CPython's own tests
replace it (``smtplib.socket = mock_socket``); ``smtpx/__init__.py`` forwards assignments
to ``smtpx.socket`` here and to ``_variants``.
"""

from __future__ import annotations

import email.message
import math
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from .. import _flows, _wire
from .._clientbase import (
    RECV_SIZE,
    SMTP_PORT,
    ClientBase,
    Response,
    default_local_hostname,
    legacy_context,
    peer_facts,
    split_address,
    tls_info,
)
from .._exceptions import SMTPConnectError, SMTPServerDisconnected, SMTPTimeoutError
from .._plan import DeliveryOptions
from .._protocol import ProtocolError, Reply
from .._results import Recipient, SendResult
from .._steps import Close, Flow, Invoke, Read, Step, Write
from .._timeouts import Timeouts

__all__ = ["SMTP", "SMTP_PORT"]


_T = TypeVar("_T")


class SMTP(ClientBase):
    """A connection to an SMTP server, with the API of ``smtplib.SMTP``.

    >>> import smtpx
    >>> with smtpx.SMTP("localhost", 2525) as smtp:  # doctest: +SKIP
    ...     smtp.starttls()            # verifies the certificate by default
    ...     smtp.login("alice", "s3cret")
    ...     smtp.sendmail("alice@example.org", ["bob@example.org"], "Subject: hi\\n\\nhello")
    {}
    """

    def __init__(
        self,
        host: str = "",
        port: int = 0,
        local_hostname: str | None = None,
        timeout: float | Timeouts | None = socket._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
        source_address: tuple[str, int] | None = None,
    ) -> None:
        self._init_state(host, timeout, source_address)
        self._connect_deadline: float | None = None  # while connecting, with Timeouts
        if host:
            code, msg = self.connect(host, port)
            if code != 220:
                self.close()
                raise SMTPConnectError(code, msg)
        if local_hostname is not None:
            self.local_hostname = local_hostname
        else:
            self.local_hostname = default_local_hostname(socket)

    def __enter__(self) -> SMTP:
        return self

    def __exit__(self, *args: object) -> None:
        self._run(_flows.exit_session(self))

    # ------------------------------------------------------------- running flows

    def _run(self, flow: Flow[_T]) -> _T:
        """Drive a flow: perform each step, send back its result or exception."""
        try:
            step = next(flow)
            while True:
                try:
                    result = self._perform(step)
                except Exception as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        except ProtocolError as exc:
            raise self._protocol_error(exc) from None
        except BaseException as exc:
            if not isinstance(exc, Exception):
                # KeyboardInterrupt, SystemExit: a command or content may be half written,
                # so the session is out of step.  Cut it and let the signal go on as itself.
                self._abort()
            raise
        finally:
            flow.close()

    def _perform(self, step: Step) -> Any:
        if isinstance(step, Write):
            return self._write(step.data)
        if isinstance(step, Read):
            return self._read(step.number, step.into)
        if isinstance(step, Invoke):
            return step.call(self)
        if isinstance(step, Close):
            return self._abort() if step.abort else self.close()
        return self._start_tls(step.context)  # type: ignore[arg-type]

    # --------------------------------------------------------- the socket layer

    def _get_socket(self, host: str, port: int, timeout: float | None) -> Any:
        if timeout is not None and not timeout:
            raise ValueError("Non-blocking socket (timeout=0) is not supported")
        self._report_connecting(host, port)
        return socket.create_connection((host, port), timeout, self.source_address)

    def connect(
        self, host: str = "localhost", port: int = 0, source_address: Any = None
    ) -> Response:
        """Connect to *host* ("host:port" works too) and return the greeting."""
        if source_address:
            self.source_address = source_address
        host, port = split_address(host, port)
        if not port:
            port = self.default_port
        sys.audit("smtplib.connect", self, host, port)
        self._begin_session(host)
        try:
            self.sock = self._get_socket(host, port, self._connect_timeout())
        except OSError as exc:
            self._report_connect_failed(host, port, exc)
            raise
        _no_delay(self.sock)
        self._report_socket()
        return self._greeting()

    @property
    def _timeouts(self) -> Timeouts | None:
        return self.timeout if isinstance(self.timeout, Timeouts) else None

    def _connect_timeout(self) -> Any:
        timeouts = self._timeouts
        if timeouts is None:
            return self.timeout
        if timeouts.connect is not None:
            self._connect_deadline = time.monotonic() + timeouts.connect
        return timeouts.connect

    def _greeting(self) -> Response:
        # With Timeouts, the greeting shares the connect phase's deadline; afterwards the
        # socket's own timeout is the command timeout (it bounds each write).
        try:
            return self.getreply()
        finally:
            self._connect_deadline = None
            timeouts = self._timeouts
            if timeouts is not None and self.sock:
                self.sock.settimeout(timeouts.command)

    def _report_socket(self) -> None:
        """The connection's facts, for observers (nothing is asked when none listens)."""
        conn = self._conn
        if conn is not None and conn.observer is not None:
            sock = self.sock
            tls = sock if isinstance(sock, ssl.SSLSocket) else None
            self._report_connected(*peer_facts(sock), tls)

    def _begin_session(self, host: str) -> None:
        if self.sock is not None:
            self.close()
        self._new_session(host)

    def _write(self, data: bytes) -> None:
        """The ``Write`` step: all of *data*, or the connection is closed."""
        if not self.sock:
            raise SMTPServerDisconnected("please run connect() first")
        sys.audit("smtplib.send", self, data)
        try:
            self.sock.sendall(data)
        except TimeoutError as exc:
            self._abort()
            raise SMTPTimeoutError("timed out sending to the server") from exc
        except OSError as exc:
            self._abort()
            raise SMTPServerDisconnected("Server not connected") from exc

    def _read(self, count: int, into: list[Reply]) -> list[Reply]:
        """The ``Read`` step: *count* more replies into *into*."""
        conn = self._connection()
        target = len(into) + count
        deadline = None
        # Right after a write nothing is buffered (the usual case): read before looking.
        missing = self._take(conn, target, into) if conn.has_buffered else count
        while missing:
            deadline = self._receive(deadline)
            now = self._take(conn, target, into)
            if now < missing:
                deadline = None  # each reply has its own time limit
            missing = now
        if conn.closed:
            self.close()  # a 421: the server is closing the channel (RFC 5321 section 3.8)
        return into

    def _receive(self, deadline: float | None) -> float:
        """One read from the server into the core.  *deadline* is None on a reply's first
        read and is returned fixed: the timeout bounds the whole reply, not each recv(), so
        a server that drips one byte at a time cannot hold the client longer."""
        sock, conn = self.sock, self._conn
        assert conn is not None
        try:
            if deadline is None:
                deadline = self._reply_deadline()
            if deadline is None:
                timeout = sock.gettimeout()
                deadline = math.inf if timeout is None else time.monotonic() + timeout
                data = sock.recv(RECV_SIZE)
            else:
                data = _recv_before(sock, deadline)
        except TimeoutError as exc:
            self._abort()
            raise SMTPTimeoutError("timed out waiting for the server's reply") from exc
        except OSError as exc:
            self._abort()
            raise SMTPServerDisconnected(f"Connection unexpectedly closed: {exc}") from exc
        conn.receive_data(data)
        return deadline

    def _reply_deadline(self) -> float | None:
        """The deadline for this reply under ``Timeouts``; None: the socket's timeout."""
        timeouts = self._timeouts
        if timeouts is None:
            return None
        if self._connect_deadline is not None:
            return self._connect_deadline
        final = self._conn is not None and self._conn.awaiting_final_reply
        limit = timeouts.data if final else timeouts.command
        return math.inf if limit is None else time.monotonic() + limit

    def close(self) -> None:
        """Close the connection (no QUIT)."""
        try:
            file, self.file = self.file, None
            if file:
                file.close()
        finally:
            sock, self.sock = self.sock, None
            if self._conn is not None:
                self._conn.close()
            if sock:
                sock.close()

    def _abort(self) -> None:
        # A blocking close never waits for the peer: it is the same as close().
        self.close()

    def _start_tls(self, context: ssl.SSLContext | None) -> None:
        if self._conn is None:
            raise SMTPServerDisconnected("please run connect() first")
        if context is None:
            # Unlike smtplib, verify the certificate and the host name by default.
            context = ssl.create_default_context()
        timeouts = self._timeouts
        try:
            if timeouts is not None:
                self.sock.settimeout(timeouts.connect)  # the handshake is the connect phase
            self.sock = context.wrap_socket(self.sock, server_hostname=self._server_name)
            if timeouts is not None:
                self.sock.settimeout(timeouts.command)
        except TimeoutError as exc:
            self._abort()
            raise SMTPTimeoutError("timed out in the TLS handshake") from exc
        except BaseException:
            self._abort()
            raise
        self.file = None
        observed = self._conn.observer is not None
        self._conn.start_tls(tls_info(self.sock) if observed else None)

    @property
    def _tls_active(self) -> bool:
        return isinstance(self.sock, ssl.SSLSocket)

    @property
    def _peer_certificate(self) -> bytes | None:
        """The server's certificate in DER, for channel binding (None without TLS)."""
        if not isinstance(self.sock, ssl.SSLSocket):
            return None
        return self.sock.getpeercert(binary_form=True)

    # ----------------------------------------------------------- the commands

    def send(self, s: str | bytes) -> None:
        """Send *s* to the server as it is (str is encoded with ``command_encoding``)."""
        self._run(_wire.send(self, s))

    def putcmd(self, cmd: str, args: str = "") -> None:
        """Send one command line.  CR, LF or NUL in it raise ValueError, nothing is sent."""
        self._run(_wire.putcmd(self, cmd, args))

    def getreply(self) -> Response:
        """Read one reply: ``(code, message)``, lines of a multiline reply joined by \\n."""
        return self._run(_wire.getreply(self))

    def docmd(self, cmd: str, args: str = "") -> Response:
        """Send a command and return its reply."""
        return self._run(_flows.command(self, cmd, args))

    def helo(self, name: str = "") -> Response:
        """HELO; the name defaults to ``local_hostname``."""
        return self._run(_flows.helo(self, name or self.local_hostname))

    def ehlo(self, name: str = "") -> Response:
        """EHLO (LHLO for LMTP); fills ``esmtp_features`` from the reply."""
        return self._run(_flows.ehlo(self, self.ehlo_msg, name or self.local_hostname))

    def help(self, args: str = "") -> bytes:
        """HELP; returns the text of the reply."""
        return self._run(_flows.command(self, "help", args))[1]

    def rset(self) -> Response:
        """RSET: abort the current transaction."""
        return self._run(_flows.rset(self))

    def _rset(self) -> None:
        self._run(_flows.quiet_rset(self))

    def noop(self) -> Response:
        """NOOP."""
        return self._run(_flows.command(self, "noop"))

    def mail(self, sender: str, options: Sequence[str] = ()) -> Response:
        """MAIL FROM with ESMTP *options* (used only after a successful EHLO)."""
        return self._run(_flows.mail(self, sender, options))

    def rcpt(self, recip: str, options: Sequence[str] = ()) -> Response:
        """RCPT TO with ESMTP *options*."""
        return self._run(_flows.rcpt(self, recip, options))

    def data(self, msg: str | bytes) -> Response:
        """DATA and the message content, CRLF-normalized and dot-stuffed."""
        return self._run(_flows.data(self, msg))

    def verify(self, address: str) -> Response:
        """VRFY."""
        return self._run(_flows.verify(self, "vrfy", address))

    vrfy = verify

    def expn(self, address: str) -> Response:
        """EXPN."""
        return self._run(_flows.verify(self, "expn", address))

    def ehlo_or_helo_if_needed(self) -> None:
        """EHLO, falling back to HELO, unless one was already done this session."""
        self._run(_flows.ehlo_or_helo_if_needed(self))

    def auth(
        self,
        mechanism: str,
        authobject: Callable[..., str | bytes | None],
        *,
        initial_response_ok: bool = True,
    ) -> Response:
        """AUTH with *authobject(challenge)* giving each response (RFC 4954)."""
        return self._run(_flows.auth(self, mechanism, authobject, initial_response_ok))

    def login(self, user: str, password: str, *, initial_response_ok: bool = True) -> Response:
        """Authenticate with the best mechanism both sides support."""
        return self._run(_flows.login(self, user, password, initial_response_ok))

    if sys.version_info >= (3, 12):

        def starttls(self, *, context: ssl.SSLContext | None = None) -> Response:
            """STARTTLS (RFC 3207).  Without *context* the certificate and host name are
            verified against the system's trust store."""
            return self._run(_flows.starttls(self, context))

    else:  # Python 3.11's smtplib still takes the deprecated keyfile and certfile.

        def starttls(
            self,
            keyfile: str | None = None,
            certfile: str | None = None,
            context: ssl.SSLContext | None = None,
        ) -> Response:
            """STARTTLS (RFC 3207).  Without *context* the certificate and host name are
            verified against the system's trust store."""
            context = legacy_context(keyfile, certfile, context)
            return self._run(_flows.starttls(self, context))

    def sendmail(
        self,
        from_addr: str,
        to_addrs: str | Sequence[str],
        msg: str | bytes,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> dict[str, Response]:
        """One mail transaction; returns the refused recipients (see smtplib)."""
        return self._run(
            _flows.sendmail(self, from_addr, to_addrs, msg, mail_options, rcpt_options)
        )

    def send_message(
        self,
        msg: email.message.Message,
        from_addr: str | None = None,
        to_addrs: str | Sequence[str] | None = None,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> dict[str, Response]:
        """Send an ``email.message.Message``; the envelope comes from its headers."""
        return self._run(
            _flows.send_message(self, msg, from_addr, to_addrs, mail_options, rcpt_options)
        )

    def deliver(
        self,
        message: Any,
        sender: str | None = None,
        recipients: str | Recipient | Iterable[str | Recipient] | None = None,
        *,
        ret: str | None = None,
        envid: str | None = None,
        notify: Sequence[str] | None = None,
        requiretls: bool = False,
        chunking: bool | None = None,
        binarymime: bool = False,
    ) -> SendResult:
        """Send one message and report on every recipient (smtpx's own API).

        *message* is an ``email.message.Message`` (envelope from its headers unless
        given, Bcc removed), ``str``, ``bytes``, a binary file or an iterable of bytes
        (streamed, never read whole).  *recipients* may hold ``smtpx.Recipient`` objects
        with their DSN options.  Options: *ret* (``"FULL"``/``"HDRS"``), *envid* and
        *notify* (RFC 3461), *requiretls* (RFC 8689, needs TLS and the server's offer),
        *chunking* (BDAT: None uses it when offered), *binarymime* (RFC 3030).

        PIPELINING, SIZE, SMTPUTF8 and 8BITMIME are used automatically; with CHUNKING a
        message up to 256 KiB goes out with its envelope in one write (one round trip).
        Returns a ``SendResult``; refused recipients are in it, not raised, unless none was
        accepted (``SMTPRecipientsRefused``).  A connection lost after the content was
        sent raises ``SMTPOutcomeUnknown``.  Every exception carries ``.result`` when
        recipients were already answered.
        """
        options = DeliveryOptions(ret, envid, notify, requiretls, chunking, binarymime)
        return self._run(_flows.deliver(self, message, sender, recipients, options))

    def deliver_many(
        self,
        items: Iterable[Any],
        *,
        window: int | None = None,
        quit: bool = False,
        ret: str | None = None,
        envid: str | None = None,
        notify: Sequence[str] | None = None,
        requiretls: bool = False,
        chunking: bool | None = None,
    ) -> list[SendResult | Exception]:
        """Send a batch of messages over this connection, pipelined across transactions.

        *items* is any iterable, consumed as the batch goes: each item is a message
        (``email.message.Message``, envelope from its headers) or a ``(message, sender,
        recipients)`` tuple.  Returns one entry per item, in order: its ``SendResult``, or
        the exception ``deliver()`` would have raised for it.  One refused message never
        stops the others.  If the connection is lost or closed (421) midway, each message
        it left behind is reported as ``SMTPNotAttempted`` (never taken: safe to send
        again) or ``SMTPOutcomeUnknown`` (sent, no final reply); none is sent twice.

        *window*: transactions in flight at once with CHUNKING (default 8).  *quit*: this
        is the session's last batch: QUIT goes with the last message and the connection is
        closed.  The other options apply to every message (see ``deliver``).
        """
        options = DeliveryOptions(ret, envid, notify, requiretls, chunking)
        return self._run(_flows.deliver_many(self, items, options, window, quit))

    def quit(self) -> Response:
        """QUIT and close."""
        return self._run(_flows.quit(self))


SMTP._own_methods = _flows.own_methods(SMTP)  # what the engine may bypass


def _recv_before(sock: Any, deadline: float) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("timed out")
    if deadline == math.inf:
        return sock.recv(RECV_SIZE)  # type: ignore[no-any-return]
    previous = sock.gettimeout()
    sock.settimeout(remaining)
    try:
        return sock.recv(RECV_SIZE)  # type: ignore[no-any-return]
    finally:
        sock.settimeout(previous)


def _no_delay(sock: Any) -> None:
    """Send each write at once (TCP_NODELAY), as asyncio does for its sockets.

    The engine writes whole pipelined groups, so there is nothing for Nagle's algorithm to
    coalesce; what it would do is hold a second small write until the server ACKs the
    first, which the server does with its next reply, a round trip later (measured with
    bench/rtt.py: a batch with CHUNKING at 0.46 round trips per message instead of 0.3).
    A socket that is not TCP (a unix socket, a test's mock) is left as it is.
    """
    setsockopt = getattr(sock, "setsockopt", None)
    if setsockopt is None or getattr(sock, "family", None) not in (
        socket.AF_INET,
        socket.AF_INET6,
    ):
        return
    try:
        setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass  # the connection may already be gone: the greeting's read will say so
