"""What the blocking and the asyncio clients share: smtplib's state and constants, and
every method that does no I/O (they are plain functions in both classes).

Each driver adds only its I/O: connecting, the ``Write``/``Read``/``StartTLS``/``Close``
steps, and the loop that runs a flow (``_steps``).  Every public method is one line that
runs a flow from ``_flows``, ``_wire`` or the engine.

Observers (``add_observer``, and ``set_debuglevel``'s smtplib lines) are handed to each
session's core, which reports to them; the drivers add the connection's facts here
(``_report_connecting``, ``_report_connected``, ``tls_info``).
"""

from __future__ import annotations

import datetime
import ssl
import sys
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

from ._exceptions import SMTPException, SMTPServerDisconnected, from_protocol_error
from ._log import SmtplibDebug, fan_out
from ._protocol import (
    ClientConnection,
    Connected,
    Connecting,
    ConnectionFailed,
    Extensions,
    Observer,
    ProtocolError,
    RemoteProtocolError,
    Reply,
    SessionEvent,
    TLSInfo,
)
from ._timeouts import Timeouts
from ._wire import CRLF, Response
from .auth import cram_md5_response, plain_response

__all__ = [
    "CRLF",
    "LMTP_PORT",
    "RECV_SIZE",
    "SMTP_PORT",
    "SMTP_SSL_PORT",
    "ClientBase",
    "Response",
    "default_local_hostname",
    "legacy_context",
    "peer_facts",
    "split_address",
    "tls_info",
]

SMTP_PORT = 25
SMTP_SSL_PORT = 465
LMTP_PORT = 2003

# One read's size.  Replies are small: 8 KiB takes a pipelined batch of 500 one-line
# replies at once.  Larger costs time: recv() allocates its whole size before it shrinks
# the result (64 KiB made small messages about 10% slower here).
RECV_SIZE = 8192

_EMPTY = Extensions()


class _DebugLevel:
    """``debuglevel``: reads as 0 on the class (as smtplib's class attribute); setting it
    on a client, as smtplib's users do, starts or stops its debug observer at once."""

    def __get__(self, client: ClientBase | None, owner: type | None = None) -> int:
        return 0 if client is None else client._debuglevel

    def __set__(self, client: ClientBase, value: int) -> None:
        client._debuglevel = value
        client._refresh_observers()


class ClientBase:
    """State and no-I/O methods of ``SMTP`` and ``AsyncSMTP`` (smtplib's attributes)."""

    #: smtplib's attribute: above 0, each session is printed to stderr.
    debuglevel = _DebugLevel()
    _debuglevel = 0
    _observers: tuple[tuple[Observer, bool], ...] = ()
    _dispatch: Observer | None = None  # what the core calls: None while nobody observes
    _wants_content = False
    _debug_observer: SmtplibDebug | None = None
    _implicit_tls = False  # SMTPS: reported when connecting
    _announced: object = None  # see _wire.send_step

    file: Any = None
    helo_resp: bytes | None = None
    ehlo_msg = "ehlo"
    ehlo_resp: bytes | None = None
    does_esmtp = False
    default_port = SMTP_PORT
    _lmtp = False
    _own_methods: ClassVar[tuple[object, ...]]  # _flows.own_methods, below each driver
    sock: Any = None
    #: The security policy (``smtpx._security``): ``connect(url)`` sets "strict".
    policy = "compat"
    #: The name the server's certificate must match (and SNI), when not the host's.
    _tls_server_name: str | None = None
    #: Connected over a unix socket: a local channel, which the strict policy trusts.
    _local_channel = False
    #: The SASL mechanism of the last successful login of this session.
    auth_mechanism: str | None = None

    def _init_state(self, host: str, timeout: float | Timeouts | None, source_address: Any) -> None:
        self._host = host
        self.timeout = timeout
        self.esmtp_features: dict[str, str] = {}
        self.command_encoding = "ascii"
        self.source_address = source_address
        self._auth_challenge_count = 0
        self._conn: ClientConnection | None = None
        self._data_replies: list[Response] = []
        # Cleared on a connection that refused a command pipelined after the end of a
        # message's content (Haraka's 503): see _engine.
        self._pipeline_after_content = True
        self.user = ""
        self.password = ""

    @property
    def _server_name(self) -> str:
        return self._tls_server_name or self._host

    def __repr__(self) -> str:
        # Never shows user or password (STYLE: secrets stay out of reprs).
        where = f"{self._host!r}" if self.sock is not None else "not connected"
        return f"<{type(self).__name__} {where}>"

    def _new_session(self, host: str) -> None:
        """A new connection starts from nothing: smtplib keeps the old EHLO reply across
        close() and connect(), and then skips EHLO on the new server."""
        self._host = host  # TLS verifies the host actually connected to
        self._refresh_observers()  # a subclass may set debuglevel as a class attribute
        self._conn = ClientConnection(
            lmtp=self._lmtp, observer=self._dispatch, content=self._wants_content
        )
        self.helo_resp = self.ehlo_resp = None
        self.esmtp_features = {}
        self.does_esmtp = False
        self.command_encoding = "ascii"
        self.file = None
        self._pipeline_after_content = True
        self.auth_mechanism = None

    def set_debuglevel(self, debuglevel: int) -> None:
        """1 prints each command and reply to stderr; 2 adds timestamps.

        AUTH credentials are shown as ``********`` (smtplib prints them).
        """
        self.debuglevel = debuglevel

    def add_observer(
        self, observer: Callable[[SessionEvent], None], *, content: bool | None = None
    ) -> None:
        """Call *observer* with each event of this client's sessions (``smtpx.Transcript``,
        ``smtpx.LogObserver`` or any callable taking one event), from now on.

        Secrets are already redacted in every event.  *content*: give it the bytes of
        message content too (default: its ``wants_content`` attribute, else False).
        Events come on the thread or task that runs the session; one that raises is
        logged and ignored.  Add it before ``connect()`` to see the greeting.

        >>> import smtpx
        >>> client, transcript = smtpx.SMTP(), smtpx.Transcript()
        >>> client.add_observer(transcript)
        >>> client.remove_observer(transcript)
        """
        if content is None:
            content = bool(getattr(observer, "wants_content", False))
        self._observers = (*self._observers, (observer, content))
        self._refresh_observers()

    def remove_observer(self, observer: Callable[[SessionEvent], None]) -> None:
        """Stop calling *observer* (ValueError if it was not added)."""
        kept = tuple(entry for entry in self._observers if entry[0] is not observer)
        if len(kept) == len(self._observers):
            raise ValueError(f"{observer!r} is not an observer of this client")
        self._observers = kept
        self._refresh_observers()

    def _refresh_observers(self) -> None:
        """Work out what the core calls: nothing at all while nobody observes."""
        observers = [observer for observer, _ in self._observers]
        content = any(wants for _, wants in self._observers)
        if self.debuglevel > 0:
            if self._debug_observer is None:
                self._debug_observer = SmtplibDebug(self._print_debug)
            observers.insert(0, self._debug_observer)
            content = True
        self._dispatch = fan_out(observers) if observers else None
        self._wants_content = content
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.observe(self._dispatch, content=content)

    def _report_connecting(self, host: str, port: int | None) -> None:
        conn = self._conn
        if conn is not None and conn.observer is not None:
            event = Connecting(host, port, self.source_address, self._implicit_tls, conn.elapsed())
            conn.emit(event)

    def _report_connect_failed(self, host: str, port: int | None, error: BaseException) -> None:
        conn = self._conn
        if conn is not None and conn.observer is not None:
            conn.emit(ConnectionFailed(host, port, str(error) or repr(error), conn.elapsed()))

    def _report_connected(self, peer: Any, local: Any, ssl_object: Any) -> None:
        conn = self._conn
        if conn is not None and conn.observer is not None:
            tls = tls_info(ssl_object) if ssl_object is not None else None
            conn.emit(Connected(peer, local, tls, conn.elapsed()))

    def _print_debug(self, *args: object) -> None:
        if self.debuglevel > 1:
            print(datetime.datetime.now().time(), *args, file=sys.stderr)
        else:
            print(*args, file=sys.stderr)

    def has_extn(self, opt: str) -> bool:
        """Did the server offer the service extension *opt*?"""
        return opt.lower() in self.esmtp_features

    def auth_cram_md5(self, challenge: bytes | None = None) -> str | None:
        """CRAM-MD5 (RFC 2195), from ``self.user`` and ``self.password``."""
        if challenge is None:
            return None  # CRAM-MD5 has no initial response
        return cram_md5_response(self.user, self.password, challenge)

    def auth_plain(self, challenge: bytes | None = None) -> str:
        """PLAIN (RFC 4616), from ``self.user`` and ``self.password``."""
        return plain_response(self.user, self.password)

    def auth_login(self, challenge: bytes | None = None) -> str:
        """LOGIN: the user name first, then the password."""
        if challenge is None or self._auth_challenge_count < 2:
            return self.user
        return self.password

    @property
    def _in_transaction(self) -> bool:
        return self._conn is not None and self._conn.in_transaction

    @property
    def _offered(self) -> Extensions:
        """What the server's last EHLO reply offered, as the core read it."""
        return self._conn.extensions if self._conn is not None else _EMPTY

    def _abort(self) -> None:
        raise NotImplementedError

    def _connection(self) -> ClientConnection:
        conn = self._conn
        if conn is None or not self.sock:
            raise SMTPServerDisconnected("please run connect() first")
        return conn

    def _take(self, conn: ClientConnection, target: int, into: list[Reply]) -> int:
        """The no-I/O half of the ``Read`` step: move complete replies from the core into
        *into*, up to *target* in all; returns how many are still missing (0 after a 421:
        nothing more will come).  A connection that ended first raises."""
        batch = conn.next_replies(target - len(into))
        if batch:
            into += batch
            return 0 if conn.closed else target - len(into)
        if conn.closed or conn.peer_closed:
            self._abort()
            raise SMTPServerDisconnected("Connection unexpectedly closed")
        return target - len(into)

    def _protocol_error(self, error: ProtocolError) -> SMTPException:
        """A core error, translated at the driver's boundary; after the server's bytes
        broke the protocol the connection is cut (it cannot be trusted any more)."""
        if isinstance(error, RemoteProtocolError):
            self._abort()
        return from_protocol_error(error)


def split_address(host: str, port: int) -> tuple[str, int]:
    """smtplib's ``connect`` address: "host:port" in one string works too."""
    if not port and host.find(":") == host.rfind(":"):
        colon = host.rfind(":")
        if colon >= 0:
            host, port_text = host[:colon], host[colon + 1 :]
            try:
                port = int(port_text)
            except ValueError:
                raise OSError("nonnumeric port") from None
    return host, port


def legacy_context(
    keyfile: str | None, certfile: str | None, context: ssl.SSLContext | None
) -> ssl.SSLContext | None:
    """Python 3.11's keyfile/certfile arguments: a client certificate, in a context that
    still verifies the server (smtplib's would not)."""
    if context is not None and (keyfile is not None or certfile is not None):
        raise ValueError("context and keyfile/certfile arguments are mutually exclusive")
    if keyfile is None and certfile is None:
        return context
    warnings.warn(
        "keyfile and certfile are deprecated, use a custom context instead",
        DeprecationWarning,
        stacklevel=3,
    )
    context = ssl.create_default_context()
    if certfile is not None:
        context.load_cert_chain(certfile, keyfile)
    return context


def default_local_hostname(sockets: Any) -> str:
    """The default EHLO name: the FQDN, or failing that an address literal (RFC 5321
    section 4.1.4).  *sockets* is the ``socket`` module as the driver sees it: programs and
    CPython's tests replace ``smtplib.socket``, and the lookup must go through theirs."""
    fqdn: str = sockets.getfqdn()
    if "." in fqdn:
        return fqdn
    address = "127.0.0.1"
    try:
        address = sockets.gethostbyname(sockets.gethostname())
    except sockets.gaierror:
        pass
    return f"[{address}]"


# The names of certificate subject fields as they are usually written (RFC 4514).
_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
}


def tls_info(ssl_object: Any) -> TLSInfo | None:
    """What an ``ssl.SSLSocket`` or ``ssl.SSLObject`` tells of its session (None when it
    tells nothing: a test's stand-in)."""
    try:
        version = ssl_object.version()
        cipher = ssl_object.cipher()
        cert = ssl_object.getpeercert()  # {} when the certificate was not verified
    except (AttributeError, ValueError, OSError):
        return None
    subject = None
    if cert:
        subject = ",".join(
            f"{_SHORT_NAMES.get(key, key)}={value}"
            for rdn in cert.get("subject", ())
            for key, value in rdn
        )
    name, bits = (cipher[0], cipher[2]) if cipher else (None, None)
    return TLSInfo(version, name, bits, subject or None)


def peer_facts(sock: Any) -> tuple[Any, Any]:
    """A socket's peer and local addresses; None for what it cannot tell (a test's mock
    socket may not know them)."""
    facts = []
    for name in ("getpeername", "getsockname"):
        try:
            facts.append(getattr(sock, name)())
        except (AttributeError, OSError, TypeError):
            facts.append(None)
    return facts[0], facts[1]
