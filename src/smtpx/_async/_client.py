"""``AsyncSMTP``: the asyncio twin of the blocking ``SMTP`` (``AsyncSMTP_SSL`` and
``AsyncLMTP`` are in ``_variants``).

This module is the asyncio driver: it connects, performs the steps flows yield (write,
read, TLS handshake, close; ``smtpx._steps``) on a ``Stream`` (``_stream``), and runs each
public method's flow, awaiting each step.  Everything else is in the policy layer, shared
with the blocking driver.
"""

from __future__ import annotations

import asyncio
import email.message
import inspect
import socket
import ssl
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Self, TypeVar

from .. import _flows, _wire
from .._clientbase import ClientBase, Response, legacy_context, split_address, tls_info
from .._exceptions import SMTPConnectError, SMTPServerDisconnected, SMTPTimeoutError
from .._plan import DeliveryOptions
from .._protocol import ProtocolError, Reply
from .._results import Recipient, SendResult
from .._steps import Close, Flow, Invoke, Read, Step, Write
from .._timeouts import Timeouts, as_timeouts
from ._serial import NESTED, Nested, Serial
from ._stream import Stream, local_hostname, open_stream

__all__ = ["AsyncSMTP"]

# The longest close() waits for the transport to finish closing (a TLS close_notify
# exchange) before cutting it: closing must not hang on a silent peer.  A client with a
# shorter command timeout waits no longer than that.
_CLOSE_TIMEOUT = 5.0
# Connection attempts to the next address start this long after the previous one
# (RFC 8305 recommends 250 ms).
_HAPPY_EYEBALLS_DELAY = 0.25


_T = TypeVar("_T")


class AsyncSMTP(ClientBase):
    """A connection to an SMTP server, with the API of ``smtpx.SMTP`` as coroutines.

    One difference from the blocking class: the constructor does no I/O.  ``AsyncSMTP(host,
    port)`` only stores the address; ``async with`` (which also checks for the 220 greeting,
    raising ``SMTPConnectError``) or ``await smtp.connect()`` connects, and ``connect()``
    without arguments uses the stored address.

    Tasks may share one client: each public call runs whole before the next one starts.
    A task cancelled in the middle of a command or of the message content closes the
    connection (it would be out of step with the server); later calls raise
    ``SMTPServerDisconnected``.

    >>> import smtpx
    >>> async def main() -> None:  # doctest: +SKIP
    ...     async with AsyncSMTP("localhost", 2525) as smtp:
    ...         await smtp.starttls()            # verifies the certificate by default
    ...         await smtp.login("alice", "s3cret")
    ...         await smtp.sendmail("alice@example.org", ["bob@example.org"], "Subject: hi\\n\\nhi")
    """

    #: The connection (a ``Stream``: its ``transport`` is asyncio's) while connected.
    sock: Stream | None = None

    def __init__(
        self,
        host: str = "",
        port: int = 0,
        local_hostname: str | None = None,
        timeout: float | Timeouts | None = socket._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
        source_address: tuple[str, int] | None = None,
    ) -> None:
        # The blocking default means "the socket module's default": no timeout here.
        if timeout is socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
            timeout = None
        self._init_state(host, timeout, source_address)
        self._port = port
        # Found at connect() (a DNS lookup is I/O, which the constructor does not do).
        self.local_hostname = local_hostname if local_hostname is not None else ""
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._connect_deadline: float | None = None  # loop time, while connecting

    async def __aenter__(self) -> Self:
        if self.sock is None and self._host:
            code, msg = await self.connect()
            if code != 220:
                await self.close()
                raise SMTPConnectError(code, msg)
        return self

    async def __aexit__(self, *args: object) -> None:
        await self._run(_flows.exit_session(self))

    # ------------------------------------------------------------- running flows

    def _serialized(self) -> Serial | Nested:
        """Let one task at a time use the connection.  Flows call other public methods:
        only the outermost call of a task takes the lock, so those do not deadlock."""
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            return NESTED
        return Serial(self, task)

    async def _run(self, flow: Flow[_T]) -> _T:
        """Drive a flow under the client's lock (see ``_serialized``; written out here
        rather than as ``async with``: every public call comes this way)."""
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            return await self._drive(flow)  # a flow step calling a public method
        await self._lock.acquire()
        self._owner = task
        try:
            return await self._drive(flow)
        finally:
            self._owner = None
            self._lock.release()

    async def _drive(self, flow: Flow[_T]) -> _T:
        """Perform each step, send back its result or exception (``SMTP._run``'s twin)."""
        try:
            step = next(flow)
            while True:
                try:
                    result = await self._perform(step)
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
                # Cancelled (or KeyboardInterrupt): a command or content may be half
                # written, so the session is out of step.  Cut it; the error goes on.
                self._abort()
            raise
        finally:
            flow.close()

    async def _perform(self, step: Step) -> Any:
        if isinstance(step, Write):
            return await self._write(step.data)
        if isinstance(step, Read):
            return await self._read(step.number, step.into)
        if isinstance(step, Invoke):
            result = step.call(self)
            # A method patched with a plain function (a test's mock) gives a value.
            return (await result) if inspect.isawaitable(result) else result
        if isinstance(step, Close):
            return self._abort() if step.abort else await self.close()
        return await self._start_tls(step.context)  # type: ignore[arg-type]

    # --------------------------------------------------------- the stream layer

    async def _get_socket(self, host: str, port: int, timeout: float | None) -> Stream:
        if timeout is not None and not timeout:
            raise ValueError("Non-blocking socket (timeout=0) is not supported")
        self._report_connecting(host, port)
        async with asyncio.timeout_at(self._connect_deadline):
            return await open_stream(
                host,
                port,
                local_addr=self.source_address,
                happy_eyeballs_delay=_HAPPY_EYEBALLS_DELAY,
                **self._tls_arguments(),
            )

    def _tls_arguments(self) -> dict[str, Any]:
        return {}

    async def connect(
        self, host: str | None = None, port: int | None = None, source_address: Any = None
    ) -> Response:
        """Connect to *host* ("host:port" works too; the constructor's address by default)
        and return the greeting."""
        if host is None:
            host = self._host or "localhost"
            port = self._port if port is None else port
        if source_address:
            self.source_address = source_address
        host, port = split_address(host, port or 0)
        if not port:
            port = self.default_port
        sys.audit("smtplib.connect", self, host, port)
        async with self._serialized():
            await self._begin_session(host, port)
            limit = self._start_connect_phase()
            try:
                self.sock = await self._get_socket(host, port, limit)
            except asyncio.CancelledError:
                self._abort()
                raise
            except TimeoutError as exc:
                self._connect_deadline = None
                self._report_connect_failed(host, port, exc)
                raise SMTPTimeoutError(f"timed out connecting to {host}:{port}") from exc
            except OSError as exc:
                self._report_connect_failed(host, port, exc)
                raise
            self._report_stream()
            return await self._greeting()

    def _start_connect_phase(self) -> float | None:
        """Start the connect phase's clock: connecting, TLS and the greeting share it."""
        if self.timeout is not None and not isinstance(self.timeout, Timeouts) and not self.timeout:
            raise ValueError("Non-blocking socket (timeout=0) is not supported")
        limit = as_timeouts(self.timeout).connect
        loop = asyncio.get_running_loop()
        self._connect_deadline = None if limit is None else loop.time() + limit
        return limit

    async def _greeting(self) -> Response:
        try:
            return await self.getreply()
        finally:
            self._connect_deadline = None

    def _report_stream(self) -> None:
        """The connection's facts, for observers (nothing is asked when none listens)."""
        conn, stream = self._conn, self.sock
        if conn is not None and conn.observer is not None and stream is not None:
            self._report_connected(
                stream.get_extra_info("peername"),
                stream.get_extra_info("sockname"),
                stream.get_extra_info("ssl_object"),
            )

    async def _begin_session(self, host: str, port: int) -> None:
        if self.sock is not None:
            await self.close()
        self._new_session(host)
        self._port = port
        if not self.local_hostname:
            self.local_hostname = await local_hostname()

    async def _write(self, data: bytes) -> None:
        """The ``Write`` step: the transport takes *data*; if it is full (the server reads
        slowly) wait for room within the command timeout, else cut the connection."""
        stream = self.sock
        if not stream:
            raise SMTPServerDisconnected("please run connect() first")
        sys.audit("smtplib.send", self, data)
        try:
            stream.write(data)
            if not stream.must_drain:
                return  # the transport took it: no coroutine, no timer
            limit = as_timeouts(self.timeout).command
            if limit is None:
                await stream.drain()
            else:
                async with asyncio.timeout(limit):
                    await stream.drain()
        except TimeoutError as exc:
            self._abort()  # a peer that does not read: never wait for its close
            raise SMTPTimeoutError("timed out sending to the server") from exc
        except OSError as exc:
            self._abort()
            raise SMTPServerDisconnected("Server not connected") from exc

    async def _read(self, count: int, into: list[Reply]) -> list[Reply]:
        """The ``Read`` step: *count* more replies into *into* (``SMTP._read``'s twin)."""
        conn = self._connection()
        target = len(into) + count
        deadline = None
        # Right after a write nothing is buffered (the usual case): read before looking.
        missing = self._take(conn, target, into) if conn.has_buffered else count
        while missing:
            deadline = await self._receive(deadline)
            now = self._take(conn, target, into)
            if now < missing:
                deadline = None  # each reply has its own time limit
            missing = now
        if conn.closed:
            await self.close()  # a 421: the server is closing the channel (RFC 5321 3.8)
        return into

    async def _receive(self, deadline: float | None) -> float | None:
        """One read from the server into the core.  *deadline* (loop time) is None on a
        reply's first read and is returned fixed: the timeout bounds the whole reply, not
        each read(), so a server that drips one byte at a time cannot hold the client."""
        stream, conn = self.sock, self._conn
        assert stream is not None and conn is not None
        if deadline is None:
            deadline = self._reply_deadline()
        try:
            if deadline is None:
                data = await stream.read()
            else:
                async with asyncio.timeout_at(deadline):
                    data = await stream.read()
        except TimeoutError as exc:
            self._abort()
            raise SMTPTimeoutError("timed out waiting for the server's reply") from exc
        except OSError as exc:
            self._abort()
            raise SMTPServerDisconnected(f"Connection unexpectedly closed: {exc}") from exc
        conn.receive_data(data)
        return deadline

    def _reply_deadline(self) -> float | None:
        """The loop-time deadline of the reply now awaited."""
        if self._connect_deadline is not None:
            return self._connect_deadline
        if self.timeout is None:
            return None  # the common case: no Timeouts object to build
        timeouts = as_timeouts(self.timeout)
        final = self._conn is not None and self._conn.awaiting_final_reply
        limit = timeouts.data if final else timeouts.command
        return None if limit is None else asyncio.get_running_loop().time() + limit

    async def close(self) -> None:
        """Close the connection (no QUIT).  Waits briefly for the transport to close (a TLS
        close_notify), never longer than the command timeout or 5 s."""
        stream = self._detach()
        if stream is None:
            return
        if stream.must_drain:
            stream.abort()  # unsent data the server is not reading: nothing to wait for
            return
        stream.close()
        limit = as_timeouts(self.timeout).command
        grace = _CLOSE_TIMEOUT if limit is None else min(limit, _CLOSE_TIMEOUT)
        try:
            async with asyncio.timeout(grace):
                await stream.wait_closed()
        except (OSError, TimeoutError):
            stream.abort()  # a peer that is gone or silent: nothing to wait for
        except asyncio.CancelledError:
            stream.abort()
            raise

    def _abort(self) -> None:
        """Cut the connection at once (after an error or a cancellation nothing is waited
        for: the peer may never read or answer)."""
        stream = self._detach()
        if stream is not None:
            stream.abort()

    def _detach(self) -> Stream | None:
        self.file = None
        stream, self.sock = self.sock, None
        if self._conn is not None:
            self._conn.close()
        return stream

    async def _start_tls(self, context: ssl.SSLContext | None) -> None:
        if self._conn is None or self.sock is None:
            raise SMTPServerDisconnected("please run connect() first")
        if context is None:
            # Unlike smtplib, verify the certificate and the host name by default.
            context = ssl.create_default_context()
        # Bytes that arrived in clear after the 220 may have been planted by a man in the
        # middle to be read as replies inside the encrypted session (RFC 3207 section 4.2;
        # CVE-2011-0411 for servers): Stream.start_tls drops them, as the core drops its own.
        try:
            async with asyncio.timeout(as_timeouts(self.timeout).connect):
                await self.sock.start_tls(context, server_hostname=self._server_name)
        except TimeoutError as exc:
            self._abort()  # a server that never answers the handshake: cut, do not wait
            raise SMTPTimeoutError("timed out in the TLS handshake") from exc
        except BaseException:
            self._abort()
            raise
        self.file = None
        observed = self._conn.observer is not None
        self._conn.start_tls(tls_info(self.sock.get_extra_info("ssl_object")) if observed else None)

    @property
    def _tls_active(self) -> bool:
        return self.sock is not None and self.sock.get_extra_info("ssl_object") is not None

    @property
    def _peer_certificate(self) -> bytes | None:
        """The server's certificate in DER, for channel binding (None without TLS)."""
        tls = None if self.sock is None else self.sock.get_extra_info("ssl_object")
        if tls is None:
            return None
        certificate: bytes | None = tls.getpeercert(binary_form=True)
        return certificate

    # ----------------------------------------------------------- the commands

    async def send(self, s: str | bytes) -> None:
        """Send *s* to the server as it is (str is encoded with ``command_encoding``)."""
        await self._run(_wire.send(self, s))

    async def putcmd(self, cmd: str, args: str = "") -> None:
        """Send one command line.  CR, LF or NUL in it raise ValueError, nothing is sent."""
        await self._run(_wire.putcmd(self, cmd, args))

    async def getreply(self) -> Response:
        """Read one reply: ``(code, message)``, lines of a multiline reply joined by \\n."""
        return await self._run(_wire.getreply(self))

    async def docmd(self, cmd: str, args: str = "") -> Response:
        """Send a command and return its reply."""
        return await self._run(_flows.command(self, cmd, args))

    async def helo(self, name: str = "") -> Response:
        """HELO; the name defaults to ``local_hostname``."""
        return await self._run(_flows.helo(self, name or self.local_hostname))

    async def ehlo(self, name: str = "") -> Response:
        """EHLO (LHLO for LMTP); fills ``esmtp_features`` from the reply."""
        return await self._run(_flows.ehlo(self, self.ehlo_msg, name or self.local_hostname))

    async def help(self, args: str = "") -> bytes:
        """HELP; returns the text of the reply."""
        return (await self._run(_flows.command(self, "help", args)))[1]

    async def rset(self) -> Response:
        """RSET: abort the current transaction."""
        return await self._run(_flows.rset(self))

    async def _rset(self) -> None:
        await self._run(_flows.quiet_rset(self))

    async def noop(self) -> Response:
        """NOOP."""
        return await self._run(_flows.command(self, "noop"))

    async def mail(self, sender: str, options: Sequence[str] = ()) -> Response:
        """MAIL FROM with ESMTP *options* (used only after a successful EHLO)."""
        return await self._run(_flows.mail(self, sender, options))

    async def rcpt(self, recip: str, options: Sequence[str] = ()) -> Response:
        """RCPT TO with ESMTP *options*."""
        return await self._run(_flows.rcpt(self, recip, options))

    async def data(self, msg: str | bytes) -> Response:
        """DATA and the message content, CRLF-normalized and dot-stuffed."""
        return await self._run(_flows.data(self, msg))

    async def verify(self, address: str) -> Response:
        """VRFY."""
        return await self._run(_flows.verify(self, "vrfy", address))

    vrfy = verify

    async def expn(self, address: str) -> Response:
        """EXPN."""
        return await self._run(_flows.verify(self, "expn", address))

    async def ehlo_or_helo_if_needed(self) -> None:
        """EHLO, falling back to HELO, unless one was already done this session."""
        await self._run(_flows.ehlo_or_helo_if_needed(self))

    async def auth(
        self,
        mechanism: str,
        authobject: Callable[..., str | bytes | None],
        *,
        initial_response_ok: bool = True,
    ) -> Response:
        """AUTH with *authobject(challenge)* giving each response (RFC 4954)."""
        return await self._run(_flows.auth(self, mechanism, authobject, initial_response_ok))

    async def login(
        self, user: str, password: str, *, initial_response_ok: bool = True
    ) -> Response:
        """Authenticate with the best mechanism both sides support."""
        return await self._run(_flows.login(self, user, password, initial_response_ok))

    if sys.version_info >= (3, 12):

        async def starttls(self, *, context: ssl.SSLContext | None = None) -> Response:
            """STARTTLS (RFC 3207).  Without *context* the certificate and host name are
            verified against the system's trust store."""
            return await self._run(_flows.starttls(self, context))

    else:  # Python 3.11's smtplib still takes the deprecated keyfile and certfile.

        async def starttls(
            self,
            keyfile: str | None = None,
            certfile: str | None = None,
            context: ssl.SSLContext | None = None,
        ) -> Response:
            """STARTTLS (RFC 3207).  Without *context* the certificate and host name are
            verified against the system's trust store."""
            context = legacy_context(keyfile, certfile, context)
            return await self._run(_flows.starttls(self, context))

    async def sendmail(
        self,
        from_addr: str,
        to_addrs: str | Sequence[str],
        msg: str | bytes,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> dict[str, Response]:
        """One mail transaction; returns the refused recipients (see smtplib)."""
        return await self._run(
            _flows.sendmail(self, from_addr, to_addrs, msg, mail_options, rcpt_options)
        )

    async def send_message(
        self,
        msg: email.message.Message,
        from_addr: str | None = None,
        to_addrs: str | Sequence[str] | None = None,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> dict[str, Response]:
        """Send an ``email.message.Message``; the envelope comes from its headers."""
        return await self._run(
            _flows.send_message(self, msg, from_addr, to_addrs, mail_options, rcpt_options)
        )

    async def deliver(
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
        """``SMTP.deliver`` as a coroutine (see there, and docs/sending.md)."""
        options = DeliveryOptions(ret, envid, notify, requiretls, chunking, binarymime)
        return await self._run(_flows.deliver(self, message, sender, recipients, options))

    async def deliver_many(
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
        """``SMTP.deliver_many`` as a coroutine (see there, and docs/sending.md)."""
        options = DeliveryOptions(ret, envid, notify, requiretls, chunking)
        return await self._run(_flows.deliver_many(self, items, options, window, quit))

    async def quit(self) -> Response:
        """QUIT and close."""
        return await self._run(_flows.quit(self))


AsyncSMTP._own_methods = _flows.own_methods(AsyncSMTP)  # what the engine may bypass
