"""Multi-step policy, written once, as generators that both drivers run.

A flow yields ``Call`` steps (a method of the client to call, with its arguments) and
receives each call's result back, like httpx's ``Auth.auth_flow``.  The blocking driver
runs a flow with plain calls, the asyncio driver awaits each one; the policy (smtplib's
sendmail error rules, the login fallback, the AUTH challenge loop) lives only here.

Steps name the client's own public methods (``putcmd``, ``getreply``, ``mail``, ``rcpt``,
``data``...) rather than bytes, so smtplib's overridable method graph still holds:
a subclass that overrides ``rcpt`` or a test that mocks ``sendmail`` sees the same calls
as with smtplib.
"""

from __future__ import annotations

import base64
import binascii
import email.message
import operator
import warnings
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple, Protocol, TypeVar

from ._addresses import addr_only, check_envelope, quoteaddr
from ._exceptions import (
    InsecureWarning,
    SMTPAuthenticationError,
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from ._message import check_content, content_pieces, envelope_from_headers, flatten
from ._protocol import MAX_CHALLENGES, DataEncoder, Extensions, normalized_size

__all__ = ["Call", "Client", "Flow"]

Response = tuple[int, bytes]
_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


class Call(NamedTuple):
    """One step of a flow: call ``client.<method>(*args, **kwargs)``.  (A named tuple:
    a transaction makes several, and they cost less to create than a dataclass.)"""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = _NO_KWARGS


T = TypeVar("T")
#: A flow yields ``Call`` steps, is sent each step's result, and returns a ``T``.
Flow = Generator[Call, Any, T]


class Client(Protocol):
    """What flows read and set on a client directly (no I/O happens through these)."""

    debuglevel: int
    does_esmtp: bool
    esmtp_features: dict[str, str]
    helo_resp: bytes | None
    ehlo_resp: bytes | None
    command_encoding: str
    user: str
    password: str
    _auth_challenge_count: int
    _data_replies: list[Response]
    _own_methods: ClassVar[tuple[object, ...]]

    def has_extn(self, opt: str) -> bool: ...
    def _encode_content(self, piece: bytes, last: bool) -> bytes: ...
    def _content_encoder(self) -> DataEncoder: ...
    def _print_debug(self, *args: object) -> None: ...
    @property
    def _tls_active(self) -> bool: ...
    @property
    def _in_transaction(self) -> bool: ...
    @property
    def _replies_pending(self) -> int: ...
    @property
    def _awaiting_final_reply(self) -> bool: ...


def command(client: Client, verb: str, argument: str = "") -> Flow[Response]:
    """``docmd``: one command and its reply.

    A command refused locally (CR, LF or NUL in it) inside an open transaction resets the
    transaction before the error is raised, so no half-built envelope is left behind.
    """
    try:
        yield Call("putcmd", (verb, argument))
    except ValueError:
        yield from _reset_if_in_transaction(client)
        raise
    reply: Response = yield Call("getreply")
    return reply


def _reset_if_in_transaction(client: Client) -> Flow[None]:
    if client._in_transaction:
        yield Call("_rset")


def _refuse_controls(client: Client, *texts: str) -> Flow[None]:
    """Addresses are checked as given, before ``quoteaddr``: its parser would quietly
    drop what follows a line break, and the caller's mistake would go unseen."""
    try:
        check_envelope(texts, (), "utf-8")
    except ValueError:
        yield from _reset_if_in_transaction(client)
        raise


def helo(client: Client, name: str) -> Flow[Response]:
    code, msg = yield from command(client, "helo", name)
    client.helo_resp = msg
    return code, msg


def ehlo(client: Client, verb: str, name: str) -> Flow[Response]:
    client.esmtp_features = {}
    code, msg = yield from command(client, verb, name)
    client.ehlo_resp = msg
    if code != 250:
        return code, msg
    client.does_esmtp = True
    # Parsed from the returned text (as smtplib does) so that an overridden getreply
    # still drives the feature table.
    client.esmtp_features = Extensions.from_ehlo_lines(msg.split(b"\n")).as_dict()
    return code, msg


def ehlo_or_helo_if_needed(client: Client) -> Flow[None]:
    if client.helo_resp is None and client.ehlo_resp is None:
        code, _ = yield Call("ehlo")
        if not 200 <= code <= 299:
            code, resp = yield Call("helo")
            if not 200 <= code <= 299:
                raise SMTPHeloError(code, resp)


def rset(client: Client) -> Flow[Response]:
    client.command_encoding = "ascii"
    return (yield from command(client, "rset"))


def quiet_rset(client: Client) -> Flow[None]:
    """smtplib's ``_rset``: a safety reset whose disconnection shows on the next command."""
    try:
        yield Call("rset")
    except SMTPServerDisconnected:
        pass


def mail(client: Client, sender: str, options: Sequence[str]) -> Flow[Response]:
    yield from _refuse_controls(client, sender)
    return (yield from command(client, "mail", mail_argument(client, sender, options)))


def mail_argument(client: Client, sender: str, options: Sequence[str]) -> str:
    optionlist = ""
    if options and client.does_esmtp:
        if any(option.lower() == "smtputf8" for option in options):
            if not client.has_extn("smtputf8"):
                raise SMTPNotSupportedError("SMTPUTF8 not supported by server")
            client.command_encoding = "utf-8"
        optionlist = " " + " ".join(options)
    return f"from:{quoteaddr(sender)}{optionlist}"


def rcpt(client: Client, recip: str, options: Sequence[str]) -> Flow[Response]:
    yield from _refuse_controls(client, recip)
    return (yield from command(client, "rcpt", rcpt_argument(client, recip, options)))


def rcpt_argument(client: Client, recip: str, options: Sequence[str]) -> str:
    optionlist = " " + " ".join(options) if options and client.does_esmtp else ""
    return f"to:{quoteaddr(recip)}{optionlist}"


def verify(client: Client, verb: str, address: str) -> Flow[Response]:
    yield from _refuse_controls(client, address)
    return (yield from command(client, verb, addr_only(address)))


def data(client: Client, msg: str | bytes) -> Flow[Response]:
    """DATA, the content, and the final reply: one, or for LMTP one per accepted recipient
    (RFC 2033 section 4.2), which are kept in ``_data_replies`` for sendmail.

    Bytes get the same CRLF normalization and dot-stuffing as str (smtplib sends bytes
    "as is", bare LFs and all).
    """
    check_content(msg)
    code, repl = yield from command(client, "data")
    if client.debuglevel > 0:
        client._print_debug("data:", (code, repl))
    if code != 354:
        raise SMTPDataError(code, repl)
    return (yield from _send_content(client, msg))


def _send_content(client: Client, msg: str | bytes) -> Flow[Response]:
    """After a 354: the content, streamed in pieces, then the final reply or replies."""
    yield from stream_data(client, content_pieces(msg))
    return (yield from final_replies(client))


def stream_data(client: Client, pieces: Iterator[bytes], write: str = "send") -> Flow[None]:
    """The content after a 354, piece by piece, and the terminator.  *write* is the
    method that sends each piece: ``send``, or ``_write`` where ``send`` is bypassed."""
    previous = next(pieces, b"")
    for piece in pieces:
        yield Call(write, (client._encode_content(previous, False),))
        previous = piece
    # The last piece and the terminator go out in one write (no small trailing segment).
    yield Call(write, (client._encode_content(previous, True),))


def final_replies(client: Client) -> Flow[Response]:
    """The reply after the content: one, or for LMTP one per accepted recipient, kept in
    ``_data_replies``; returns the first failure, or the last reply."""
    final: list[Response] = []
    for _ in range(client._replies_pending):
        reply = yield Call("getreply")
        if client.debuglevel > 0:
            client._print_debug("data:", reply)
        final.append(reply)
        if reply[0] == 421:
            break  # the server is closing: no more replies will come
    return _final_outcome(client, final)


def _final_replies_at_once(client: Client) -> Flow[Response]:
    """``final_replies`` in one step, for a transaction that bypasses ``getreply``."""
    final: list[Response] = yield Call("_read_replies", (client._replies_pending,))
    if client.debuglevel > 0:
        for reply in final:
            client._print_debug("data:", reply)
    return _final_outcome(client, final)


def _final_outcome(client: Client, final: list[Response]) -> Response:
    client._data_replies = final
    # data() returns one (code, message): for LMTP the first failure, else the last reply.
    for reply in final:
        if not 200 <= reply[0] <= 299:
            return reply
    return final[-1]


def auth(
    client: Client,
    mechanism: str,
    authobject: Callable[..., str | bytes | None],
    initial_response_ok: bool,
) -> Flow[Response]:
    """RFC 4954 section 4: AUTH, with an initial response when the mechanism has one,
    then the 334 challenge loop."""
    mechanism = mechanism.upper()
    initial = authobject() if initial_response_ok else None
    if initial is not None:
        code, resp = yield Call("docmd", ("AUTH", f"{mechanism} {_b64(initial)}"))
        client._auth_challenge_count = 1
    else:
        code, resp = yield Call("docmd", ("AUTH", mechanism))
        client._auth_challenge_count = 0
    while code == 334:
        client._auth_challenge_count += 1
        try:
            challenge = base64.b64decode(resp, validate=True)
        except binascii.Error:
            yield from _cancel_auth(client)
            raise SMTPAuthenticationError(
                code, b"server sent a challenge that is not valid base64: " + resp[:100]
            ) from None
        code, resp = yield Call("docmd", (_b64(authobject(challenge)),))
        if client._auth_challenge_count > MAX_CHALLENGES:
            if code == 334:
                yield from _cancel_auth(client)
            raise SMTPException(
                "Server AUTH mechanism infinite loop. Last response: " + repr((code, resp))
            )
    if code in (235, 503):  # 503: already authenticated
        return code, resp
    raise SMTPAuthenticationError(code, resp)


def _b64(response: str | bytes | None) -> str:
    if response is None:
        response = ""
    raw = response if isinstance(response, bytes) else response.encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def _cancel_auth(client: Client) -> Flow[None]:
    # RFC 4954 section 4: a "*" line cancels the exchange; the server answers 501.  This
    # keeps client and server in step instead of leaving the server waiting.
    try:
        yield Call("docmd", ("*",))
    except SMTPServerDisconnected:
        pass


# CRAM-MD5 first, as smtplib: it keeps the password off the wire.
_LOGIN_PREFERENCE = ("CRAM-MD5", "PLAIN", "LOGIN")


def login(client: Client, user: str, password: str, initial_response_ok: bool) -> Flow[Response]:
    yield Call("ehlo_or_helo_if_needed")
    if not client.has_extn("auth"):
        raise SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    if not client._tls_active and client.has_extn("starttls"):
        warnings.warn(
            "login() sends credentials over an unencrypted connection although the server"
            " offers STARTTLS; call starttls() first",
            InsecureWarning,
            stacklevel=4,
        )
    advertised = client.esmtp_features["auth"].upper().split()
    mechanisms = [m for m in _LOGIN_PREFERENCE if m in advertised]
    if not mechanisms:
        raise SMTPException("No suitable authentication method found.")
    client.user, client.password = user, password
    last_error: SMTPAuthenticationError | None = None
    # Some servers advertise mechanisms they do not support: try each in turn.
    for mechanism in mechanisms:
        authobject = getattr(client, "auth_" + mechanism.lower().replace("-", "_"))
        try:
            code, resp = yield Call(
                "auth", (mechanism, authobject), {"initial_response_ok": initial_response_ok}
            )
        except SMTPAuthenticationError as exc:
            last_error = exc
        else:
            if code in (235, 503):
                return code, resp
    assert last_error is not None
    raise last_error


def starttls(client: Client, context: object) -> Flow[Response]:
    yield Call("ehlo_or_helo_if_needed")
    if not client.has_extn("starttls"):
        raise SMTPNotSupportedError("STARTTLS extension not supported by server.")
    code, reply = yield Call("docmd", ("STARTTLS",))
    if code != 220:
        # RFC 3207 section 4: 501 (syntax) or 454 (TLS not available for now).
        raise SMTPResponseException(code, reply)
    yield Call("_start_tls", (context,))
    # RFC 3207 section 4.2: forget everything learned before TLS.
    _forget_session(client)
    return code, reply


def _forget_session(client: Client) -> None:
    client.helo_resp = client.ehlo_resp = None
    client.esmtp_features = {}
    client.does_esmtp = False


def quit(client: Client) -> Flow[Response]:
    result: Response = yield Call("docmd", ("quit",))
    _forget_session(client)  # a new EHLO is needed after a later connect()
    yield Call("close")
    return result


def exit_session(client: Client) -> Flow[None]:
    """``__exit__``: QUIT, raising if it is refused, and always close."""
    try:
        code, message = yield Call("docmd", ("QUIT",))
        if code != 221:
            raise SMTPResponseException(code, message)
    except SMTPServerDisconnected:
        pass
    finally:
        yield Call("close")


def sendmail(
    client: Client,
    from_addr: str,
    to_addrs: str | Sequence[str],
    msg: str | bytes,
    mail_options: Sequence[str],
    rcpt_options: Sequence[str],
    lmtp: bool,
) -> Flow[dict[str, Response]]:
    """One whole transaction, with smtplib's error policy.

    Differences (docs/compatibility.md): the envelope is checked before anything is sent;
    for LMTP each accepted recipient's own reply after the content decides its fate.
    """
    if not (greeted(client) and method_intact(client, "ehlo_or_helo_if_needed")):
        yield Call("ehlo_or_helo_if_needed")
    recipients = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
    smtputf8 = bool(mail_options) and any(option.lower() == "smtputf8" for option in mail_options)
    check_envelope(
        [from_addr, *recipients], [*mail_options, *rcpt_options], "utf-8" if smtputf8 else "ascii"
    )
    check_content(msg)  # the message is streamed as it is, never copied whole
    esmtp_opts: list[str] = []
    if client.does_esmtp:
        if client.has_extn("size"):
            esmtp_opts.append(f"size={normalized_size(msg)}")
        esmtp_opts.extend(mail_options)
    if client.has_extn("pipelining") and graph_intact(client):
        accepted, refused, code, resp = yield from _pipelined_transaction(
            client, from_addr, recipients, msg, esmtp_opts, rcpt_options
        )
    else:
        code, resp = yield Call("mail", (from_addr, esmtp_opts))
        if code != 250:
            yield Call("close" if code == 421 else "_rset")
            raise SMTPSenderRefused(code, resp, from_addr)
        refused, accepted = {}, []
        for recipient in recipients:
            reply = yield Call("rcpt", (recipient, rcpt_options))
            if _tally(recipient, reply, accepted, refused):
                yield Call("close")
                raise SMTPRecipientsRefused(refused)
        if not accepted:
            yield Call("_rset")
            raise SMTPRecipientsRefused(refused)
        code, resp = yield Call("data", (msg,))
    if code == 250 and not lmtp:
        return refused  # delivered (the common case, without a generator for the rest)
    return (yield from _judge_delivery(client, accepted, refused, code, resp, lmtp))


def _tally(
    recipient: str, reply: Response, accepted: list[str], refused: dict[str, Response]
) -> bool:
    """One RCPT reply, smtplib's way: 250 and 251 accept.  True for a 421, which ends
    the transaction at once (the caller closes and raises).  A plain function, not a
    flow: it runs once per recipient of a fan-out."""
    if reply[0] in (250, 251):
        accepted.append(recipient)
    else:
        refused[recipient] = reply
    return reply[0] == 421


def _judge_delivery(
    client: Client,
    accepted: list[str],
    refused: dict[str, Response],
    code: int,
    resp: bytes,
    lmtp: bool,
) -> Flow[dict[str, Response]]:
    if lmtp:
        # RFC 2033 section 4.2: one reply per accepted recipient, in RCPT order.
        delivered = False
        for recipient, (rcode, rresp) in zip(accepted, client._data_replies, strict=False):
            if 200 <= rcode <= 299:
                delivered = True
            else:
                refused[recipient] = (rcode, rresp)
        for recipient in accepted[len(client._data_replies) :]:
            refused[recipient] = (code, resp)  # no reply of its own: the connection ended
        if not delivered:
            raise SMTPRecipientsRefused(refused)
        return refused
    if code != 250:
        yield Call("close" if code == 421 else "_rset")
        raise SMTPDataError(code, resp)
    return refused


# The methods a pipelined transaction bypasses.  If a subclass or a test replaced any of
# them, the transaction goes step by step so that the replacement is still called.
_PIPELINE_BYPASSES = ("mail", "rcpt", "data", "putcmd", "getreply", "send")
# ... and the one sendmail skips once the session is greeted.
_WATCHED = (*_PIPELINE_BYPASSES, "ehlo_or_helo_if_needed")
_watched_methods = operator.attrgetter(*_WATCHED)
_bypassed_methods = operator.attrgetter(*_PIPELINE_BYPASSES)


def own_methods(driver: type) -> tuple[object, ...]:
    """The driver's watched methods as defined, taken once below each driver class.  A
    snapshot, not the class itself: a patch on the class (``mock.patch.object(smtpx.SMTP,
    "rcpt")``) must be seen as a replacement too."""
    return tuple(_watched_methods(driver))


def greeted(client: Client) -> bool:
    """EHLO or HELO was answered this session (``ehlo_or_helo_if_needed`` would do nothing)."""
    return client.helo_resp is not None or client.ehlo_resp is not None


def method_intact(client: Client, name: str) -> bool:
    """*name* is the driver's own method: neither overridden, patched on the class, nor
    replaced on the instance."""
    own = client._own_methods[_WATCHED.index(name)]
    return name not in vars(client) and getattr(type(client), name) is own


def graph_intact(client: Client) -> bool:
    # Checked on every call, not cached: tests patch methods on the class at run time.
    # One attrgetter fetches all the names (this runs once per message).
    own = client._own_methods[: len(_PIPELINE_BYPASSES)]
    replaced_here = not vars(client).keys().isdisjoint(_PIPELINE_BYPASSES)
    return not replaced_here and _bypassed_methods(type(client)) == own


def _pipelined_transaction(
    client: Client,
    from_addr: str,
    recipients: list[str],
    content: str | bytes,
    esmtp_opts: Sequence[str],
    rcpt_options: Sequence[str],
) -> Flow[tuple[list[str], dict[str, Response], int, bytes]]:
    """RFC 2920: MAIL, every RCPT and DATA in one write, replies read in order.

    Exactly smtplib's outcomes (the same dict, the same exceptions), with every reply
    read so the session stays in step.  Returns the accepted and refused recipients and
    the final reply.
    """
    commands = [("mail", mail_argument(client, from_addr, esmtp_opts))]
    commands += [("rcpt", rcpt_argument(client, r, rcpt_options)) for r in recipients]
    commands.append(("data", ""))
    replies: list[Response] = yield Call("_exchange", (commands,))
    code, resp = replies[0]
    if code != 250:
        yield from _end_refused(replies)
        raise SMTPSenderRefused(code, resp, from_addr)
    refused: dict[str, Response] = {}
    accepted: list[str] = []
    for recipient, reply in zip(recipients, replies[1:], strict=False):
        if _tally(recipient, reply, accepted, refused):
            yield Call("close")
            raise SMTPRecipientsRefused(refused)
    if not accepted:
        yield from _end_refused(replies)
        raise SMTPRecipientsRefused(refused)
    code, resp = replies[-1]
    if client.debuglevel > 0:
        client._print_debug("data:", (code, resp))
    if code != 354:
        raise SMTPDataError(code, resp)
    yield from stream_data(client, content_pieces(content), "_write")
    code, resp = yield from _final_replies_at_once(client)
    return accepted, refused, code, resp


def _end_refused(replies: list[Response]) -> Flow[None]:
    """After a refused MAIL or every RCPT refused, with all replies read: reset, as
    smtplib does; close instead after a 421, or if the server took DATA anyway (end the
    session rather than send content that could be delivered to someone)."""
    if replies[-1][0] in (421, 354):
        yield Call("close")
    else:
        yield Call("_rset")


def send_message(
    client: Client,
    msg: email.message.Message,
    from_addr: str | None,
    to_addrs: str | Sequence[str] | None,
    mail_options: Sequence[str],
    rcpt_options: Sequence[str],
) -> Flow[dict[str, Response]]:
    """Envelope from the headers (RFC 5322 section 3.6.6 for Resent-*), Bcc removed."""
    yield Call("ehlo_or_helo_if_needed")
    from_addr, to_addrs = envelope_from_headers(msg, from_addr, to_addrs)
    envelope = [from_addr, *([to_addrs] if isinstance(to_addrs, str) else to_addrs)]
    international = not all(address.isascii() for address in envelope)
    if international and not client.has_extn("smtputf8"):
        raise SMTPNotSupportedError(
            "One or more source or delivery addresses require internationalized email"
            " support, but the server does not advertise the required SMTPUTF8 capability"
        )
    if international:
        mail_options = (*mail_options, "SMTPUTF8", "BODY=8BITMIME")
    flat = flatten(msg, utf8=international)
    refused: dict[str, Response] = yield Call(
        "sendmail", (from_addr, to_addrs, flat, mail_options, rcpt_options)
    )
    return refused
