"""What the blocking and the asyncio clients share: state, constants and the methods
that do no I/O (they are plain functions in both classes).
"""

from __future__ import annotations

import datetime
import ssl
import sys
import warnings
from typing import Any, ClassVar

from ._exceptions import SMTPProtocolError, SMTPServerDisconnected, SMTPStateError
from ._protocol import (
    ClientConnection,
    Command,
    DataEncoder,
    LocalProtocolError,
    RemoteProtocolError,
    Reply,
    ReplyTooLong,
)
from ._timeouts import Timeouts
from .auth import cram_md5_response, plain_response

__all__ = [
    "CRLF",
    "LMTP_PORT",
    "RECV_SIZE",
    "SMALL_WRITE",
    "SMTP_PORT",
    "SMTP_SSL_PORT",
    "ClientBase",
    "Response",
    "legacy_context",
    "redact",
]

SMTP_PORT = 25
SMTP_SSL_PORT = 465
LMTP_PORT = 2003
CRLF = "\r\n"

# One read's size.  Replies are small: 8 KiB takes a pipelined batch of 500 one-line
# replies at once.  Larger costs time: recv() allocates its whole size before it shrinks
# the result (64 KiB made small messages about 10% slower here).
RECV_SIZE = 8192
# A BDAT chunk this small goes out with its command line in one write; a larger one
# separately, so that it is not copied.
SMALL_WRITE = 64 * 1024

Response = tuple[int, bytes]


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
        self._corked: list[bytes] | None = None
        self.user = ""
        self.password = ""

    def __repr__(self) -> str:
        # Never shows user or password (STYLE: secrets stay out of reprs).
        where = f"{self._host!r}" if self.sock is not None else "not connected"
        return f"<{type(self).__name__} {where}>"

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
    def _replies_pending(self) -> int:
        return self._conn.pending if self._conn is not None else 0

    @property
    def _awaiting_final_reply(self) -> bool:
        return self._conn is not None and self._conn.awaiting_final_reply

    def _show_reply(self, reply: Reply) -> None:
        """smtplib's debug lines for one reply."""
        if self.debuglevel > 0:
            for line in reply.raw:
                self._print_debug("reply:", repr(line))
            self._print_debug(f"reply: retcode ({reply.code}); Msg: {reply.message!a}")

    def _take_replies(self, conn: ClientConnection, limit: int) -> list[Reply]:
        """Replies already received, up to *limit*; a broken reply closes the connection.
        (Closing is synchronous in both drivers here: the connection is cut.)"""
        try:
            return conn.next_replies(limit)
        except ReplyTooLong as exc:
            self._cut()
            raise SMTPProtocolError(500, str(exc)) from None
        except RemoteProtocolError as exc:
            self._cut()
            raise SMTPProtocolError(-1, str(exc)) from None

    def _cut(self) -> None:
        raise NotImplementedError

    def _encode_content(self, piece: bytes, last: bool) -> bytes:
        """Message content in wire form; the last piece brings the terminator."""
        if self._conn is None:
            raise SMTPServerDisconnected("please run connect() first")
        try:
            wire = self._conn.send_data(piece)
            return wire + self._conn.end_data() if last else wire
        except LocalProtocolError as exc:
            raise SMTPStateError(str(exc)) from None

    def _content_encoder(self) -> DataEncoder:
        if self._conn is None:
            raise SMTPServerDisconnected("please run connect() first")
        return self._conn.content_encoder()


def redact(command: Command) -> str:
    """The line as debug output shows it: SASL data replaced (STYLE: no secrets logged)."""
    if command.keyword == "AUTH":
        mechanism, _, initial = command.argument.partition(" ")
        return f"{command.verb} {mechanism} ********" if initial else command.text
    return "********"


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
