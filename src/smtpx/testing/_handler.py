"""The aiosmtpd event handler behind SinkServer: hooks that record and refuse."""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeAlias

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

from ._connection import FaultPoints
from ._faults import Fault
from ._message import SinkMessage

__all__ = ["Mailbox", "RcptFilter", "SinkHandler", "make_authenticator", "to_predicate"]

RcptFilter: TypeAlias = Callable[[str], bool] | Collection[str]
"""Which recipients to refuse: a predicate on the address, or a set of addresses."""

# Reply texts. The enhanced codes follow RFC 3463: 5.1.1 "bad destination
# mailbox", 2.1.5 "destination address valid", 5.5.1 "invalid command".
_RCPT_REFUSED = "550 5.1.1 <{}>: recipient refused by the sink server"
_DELIVERED = "250 2.1.5 <{}> delivered"
_DATA_REFUSED = "550 5.1.1 <{}> refused by the sink server after DATA"
_NO_AUTH = "502 5.5.1 AUTH is not enabled on this sink server"


def to_predicate(spec: RcptFilter | None, name: str) -> Callable[[str], bool]:
    """Turn a refusal spec into a predicate; exact string match for collections.

    Examples:
        >>> to_predicate({"bob@example.org"}, "refuse")("bob@example.org")
        True
        >>> to_predicate(None, "refuse")("bob@example.org")
        False
    """
    if spec is None:
        return lambda _address: False
    if callable(spec):
        return spec
    if isinstance(spec, str | bytes):
        # A lone string is a Collection[str] of its characters: almost surely
        # a caller who meant {"addr"}, so say so rather than match letters.
        raise TypeError(f"{name} takes a set of addresses or a callable, not {spec!r}")
    addresses = frozenset(spec)
    return addresses.__contains__


class Mailbox:
    """The thread-safe list of received messages, with a way to wait for more.

    Examples:
        >>> box = Mailbox()
        >>> box.add(SinkMessage("a@x", ("b@x",), b"hi\\r\\n"))
        >>> [m.mail_from for m in box.wait(1, timeout=0.1)]
        ['a@x']
    """

    def __init__(self) -> None:
        self._messages: list[SinkMessage] = []
        self._changed = threading.Condition()

    def add(self, message: SinkMessage) -> None:
        with self._changed:
            self._messages.append(message)
            self._changed.notify_all()

    def snapshot(self) -> list[SinkMessage]:
        with self._changed:
            return list(self._messages)

    def clear(self) -> None:
        with self._changed:
            self._messages.clear()

    def wait(self, count: int, timeout: float) -> list[SinkMessage]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(
                    f"expected {count} message(s) within {timeout}s, got {len(self._messages)}"
                )
            return list(self._messages)


def make_authenticator(
    credentials: Mapping[str, str],
) -> Callable[[SMTP, Session, Envelope, str, Any], AuthResult]:
    """An aiosmtpd authenticator accepting exactly ``credentials`` (UTF-8, RFC 4616).

    Examples:
        >>> check = make_authenticator({"alice": "s3cret"})
        >>> check(None, None, None, "PLAIN", LoginPassword(b"alice", b"s3cret")).success
        True
    """
    table = {
        user.encode("utf-8"): password.encode("utf-8") for user, password in credentials.items()
    }

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        expected = table.get(auth_data.login)
        # compare_digest: a test server, but no reason to model a timing leak.
        if expected is None or not hmac.compare_digest(expected, auth_data.password):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8")
        return AuthResult(success=True, auth_data=login)

    return authenticate


class SinkHandler:
    """aiosmtpd hooks: refuse recipients as configured and record what arrives."""

    def __init__(
        self,
        mailbox: Mailbox,
        *,
        auth_enabled: bool,
        lmtp: bool,
        refuse_at_rcpt: Callable[[str], bool],
        refuse_after_data: Callable[[str], bool],
    ) -> None:
        self._mailbox = mailbox
        self._auth_enabled = auth_enabled
        self._lmtp = lmtp
        self._refuse_at_rcpt = refuse_at_rcpt
        self._refuse_after_data = refuse_after_data

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        # The five-argument hook takes over recording the client's name.
        session.host_name = hostname
        if self._auth_enabled:
            return responses
        # aiosmtpd always offers its built-in mechanisms; a sink without
        # credentials should not advertise an AUTH it can never grant.
        return [line for line in responses if not line[4:].upper().startswith("AUTH")]

    async def handle_AUTH(
        self, server: SMTP, session: Session, envelope: Envelope, args: list[str]
    ) -> object:
        return MISSING if self._auth_enabled else _NO_AUTH

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self._refuse_at_rcpt(address):
            return _RCPT_REFUSED.format(address)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        recipients = list(envelope.rcpt_tos)
        # The content is in: the point where a dropped connection leaves the client not
        # knowing whether the message was taken (RFC 5321 section 6.1's duplicate risk).
        if isinstance(server, FaultPoints):
            fault = await server.reach("CONTENT")
            if fault is not None and fault.reply is not None:
                return await self._faulted(server, session, envelope, fault)
        if self._lmtp:
            # RFC 2033 section 4.2: after the final dot, one reply per
            # recipient that was accepted at RCPT time, in RCPT order.
            delivered = [r for r in recipients if not self._refuse_after_data(r)]
            replies = [
                _DELIVERED.format(r) if r in delivered else _DATA_REFUSED.format(r)
                for r in recipients
            ]
        else:
            delivered = recipients
            replies = ["250 2.0.0 OK: message accepted by the sink server"]
        if delivered:
            self._mailbox.add(self._record(server, session, envelope, delivered))
        # aiosmtpd writes the status followed by CRLF, so joined replies go out
        # as separate reply lines in one write.
        return "\r\n".join(replies)

    async def _faulted(
        self, server: FaultPoints, session: Session, envelope: Envelope, fault: Fault
    ) -> str:
        assert fault.reply is not None and fault.code is not None
        recipients = list(envelope.rcpt_tos)
        # LMTP: the same reply for each recipient, so the client reads as many as it waits for.
        status = "\r\n".join([fault.reply] * (len(recipients) if self._lmtp else 1))
        if fault.code < 300 and recipients:
            self._mailbox.add(self._record(server, session, envelope, recipients))
        if fault.closes:
            await server.push(status)
            await server.hang_up()
        return status

    @staticmethod
    def _record(
        server: SMTP, session: Session, envelope: Envelope, delivered: list[str]
    ) -> SinkMessage:
        transport = server.transport
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        auth_login = session.auth_data if isinstance(session.auth_data, str) else None
        content = envelope.original_content or b""
        return SinkMessage(
            # aiosmtpd keeps the null reverse path (RFC 5321 section 4.5.5)
            # as the literal "<>"; every other address comes without brackets.
            mail_from="" if envelope.mail_from in (None, "<>") else envelope.mail_from,
            rcpt_tos=tuple(delivered),
            content=bytes(content),
            mail_options=tuple(envelope.mail_options),
            rcpt_options=tuple(envelope.rcpt_options),
            tls=tls,
            auth_login=auth_login if session.authenticated else None,
        )
