"""What the blocking and the asyncio clients share: smtplib's state and constants, and
every method that does no I/O (they are plain functions in both classes).

Each driver adds only its I/O: connecting, the ``Write``/``Read``/``StartTLS``/``Close``
steps, and the loop that runs a flow (``_steps``).  Every public method is one line that
runs a flow from ``_flows``, ``_wire`` or the engine.
"""

from __future__ import annotations

import datetime
import ssl
import sys
import warnings
from typing import Any, ClassVar

from ._exceptions import SMTPException, SMTPServerDisconnected, from_protocol_error
from ._protocol import ClientConnection, Extensions, ProtocolError, RemoteProtocolError, Reply
from ._timeouts import Timeouts
from ._wire import CRLF, Response, show_reply
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
    "split_address",
]

SMTP_PORT = 25
SMTP_SSL_PORT = 465
LMTP_PORT = 2003

# One read's size.  Replies are small: 8 KiB takes a pipelined batch of 500 one-line
# replies at once.  Larger costs time: recv() allocates its whole size before it shrinks
# the result (64 KiB made small messages about 10% slower here).
RECV_SIZE = 8192

_EMPTY = Extensions()


class ClientBase:
    """State and no-I/O methods of ``SMTP`` and ``AsyncSMTP`` (smtplib's attributes)."""

    debuglevel = 0

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
        self._redacted: str | None = None
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
        self._conn = ClientConnection(lmtp=self._lmtp)
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
            if self.debuglevel > 0:
                for reply in batch:
                    show_reply(self, reply)
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
