"""smtplib's multi-step policy, written once as flows that both drivers run.

Each public method of the clients runs one of these generators (``_steps``): the smtplib
commands (``docmd``, ``ehlo``, ``mail``...), AUTH and ``login``, STARTTLS, QUIT, and the
mail-sending entry points, which plan a transaction (``_plan``), send it with the one engine
(``_engine``) and present its outcome (``_outcomes``).

smtplib's overridable method graph holds: steps call the client's own public methods
(``putcmd``, ``getreply``, ``mail``, ``rcpt``, ``data``...) through ``Invoke``, so a subclass
that overrides ``rcpt`` or a test that mocks ``ehlo`` sees the same calls as with smtplib.
The engine bypasses those methods for speed only while none of them is replaced
(``graph_intact``, the one place that decides).
"""

from __future__ import annotations

import base64
import binascii
import email.message
import operator
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import ClassVar, Protocol

from . import _engine, _outcomes
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
from ._plan import (
    Content,
    DeliveryOptions,
    Job,
    plan_delivery,
    plan_sendmail,
    sendmail_options,
)
from ._protocol import MAX_CHALLENGES, Extensions
from ._results import Recipient, SendResult
from ._steps import Flow, Invoke, StartTLS
from ._wire import Response, connection, send_step
from .auth import Mechanism, auth_exchange

__all__ = [
    "Client",
    "deliver",
    "deliver_many",
    "graph_intact",
    "own_methods",
    "sendmail",
]


class Client(_engine.Engine, Protocol):
    """What flows read and set on a client directly (no I/O happens through these)."""

    does_esmtp: bool
    esmtp_features: dict[str, str]
    helo_resp: bytes | None
    ehlo_resp: bytes | None
    user: str
    password: str
    _auth_challenge_count: int
    _data_replies: list[Response]
    _own_methods: ClassVar[tuple[object, ...]]
    _local_channel: bool
    auth_mechanism: str | None

    @property
    def _tls_active(self) -> bool: ...
    @property
    def _peer_certificate(self) -> bytes | None: ...
    @property
    def _in_transaction(self) -> bool: ...
    @property
    def _offered(self) -> Extensions: ...


# ------------------------------------------------------------------ commands


def command(client: Client, verb: str, argument: str = "") -> Flow[Response]:
    """``docmd``: one command and its reply.

    A command refused locally (CR, LF or NUL in it) inside an open transaction resets the
    transaction before the error is raised, so no half-built envelope is left behind.
    """
    try:
        yield Invoke(lambda c: c.putcmd(verb, argument))
    except ValueError:
        yield from _reset_if_in_transaction(client)
        raise
    reply: Response = yield Invoke(lambda c: c.getreply())
    return reply


def _reset_if_in_transaction(client: Client) -> Flow[None]:
    if client._in_transaction:
        yield from quiet_rset(client)


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
        code, _ = yield Invoke(lambda c: c.ehlo())
        if not 200 <= code <= 299:
            code, resp = yield Invoke(lambda c: c.helo())
            if not 200 <= code <= 299:
                raise SMTPHeloError(code, resp)


def rset(client: Client) -> Flow[Response]:
    client.command_encoding = "ascii"
    return (yield from command(client, "rset"))


def quiet_rset(client: Client) -> Flow[None]:
    """smtplib's ``_rset``: a safety reset whose disconnection shows on the next command."""
    try:
        yield Invoke(lambda c: c.rset())
    except SMTPServerDisconnected:
        pass


def mail(client: Client, sender: str, options: Sequence[str]) -> Flow[Response]:
    yield from _refuse_controls(client, sender)
    optionlist = ""
    if options and client.does_esmtp:
        if any(option.lower() == "smtputf8" for option in options):
            if not client.has_extn("smtputf8"):
                raise SMTPNotSupportedError("SMTPUTF8 not supported by server")
            client.command_encoding = "utf-8"
        optionlist = " " + " ".join(options)
    return (yield from command(client, "mail", f"from:{quoteaddr(sender)}{optionlist}"))


def rcpt(client: Client, recip: str, options: Sequence[str]) -> Flow[Response]:
    yield from _refuse_controls(client, recip)
    optionlist = " " + " ".join(options) if options and client.does_esmtp else ""
    return (yield from command(client, "rcpt", f"to:{quoteaddr(recip)}{optionlist}"))


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
    if code != 354:
        raise SMTPDataError(code, repl)
    conn = connection(client)
    pieces = content_pieces(msg)
    previous = next(pieces, b"")
    for piece in pieces:
        encoded = conn.send_data(previous)
        previous = piece
        yield send_step(encoded)
    # The last piece and the terminator go out in one write (no small trailing segment).
    yield send_step(conn.end_data(previous))
    final: list[Response] = []
    for _ in range(conn.pending):
        reply: Response = yield Invoke(lambda c: c.getreply())
        final.append(reply)
        if reply[0] == 421:
            break  # the server is closing: no more replies will come
    client._data_replies = final
    # data() returns one (code, message): for LMTP the first failure, else the last reply.
    return next((reply for reply in final if not 200 <= reply[0] <= 299), final[-1])


# ---------------------------------------------------------------------- AUTH


def auth(
    client: Client,
    mechanism: str,
    authobject: Callable[..., str | bytes | None],
    initial_response_ok: bool,
) -> Flow[Response]:
    """RFC 4954 section 4: AUTH, with an initial response when the mechanism has one,
    then the 334 challenge loop.

    A ``smtpx.auth.Mechanism`` as *authobject* runs the whole exchange (``auth_exchange``:
    bytes both ways, the server's final word verified, channel binding from the TLS
    layer); any other callable gets smtplib's protocol.
    """
    if isinstance(authobject, Mechanism):
        if mechanism.upper() != authobject.name.upper():
            raise ValueError(
                f"AUTH {mechanism!r} with a {authobject.name} mechanism object: the names differ"
            )
        # Only a -PLUS mechanism reads the certificate (the property asks the TLS layer).
        certificate = client._peer_certificate if authobject.channel_binding else None
        code, resp = yield from auth_exchange(
            authobject, initial_response_ok=initial_response_ok, peer_certificate=certificate
        )
        if code == 235:
            client.auth_mechanism = authobject.name.upper()
        return code, resp
    mechanism = mechanism.upper()
    initial = authobject() if initial_response_ok else None
    if initial is not None:
        argument = f"{mechanism} {_b64(initial)}"
        code, resp = yield Invoke(lambda c: c.docmd("AUTH", argument))
        client._auth_challenge_count = 1
    else:
        code, resp = yield Invoke(lambda c: c.docmd("AUTH", mechanism))
        client._auth_challenge_count = 0
    while code == 334:
        client._auth_challenge_count += 1
        try:
            challenge = base64.b64decode(resp, validate=True)
        except binascii.Error:
            yield from _cancel_auth()
            raise SMTPAuthenticationError(
                code, b"server sent a challenge that is not valid base64: " + resp[:100]
            ) from None
        code, resp = yield _docmd_step(_b64(authobject(challenge)))
        if client._auth_challenge_count > MAX_CHALLENGES:
            if code == 334:
                yield from _cancel_auth()
            raise SMTPException(
                "Server AUTH mechanism infinite loop. Last response: " + repr((code, resp))
            )
    if code == 235:
        client.auth_mechanism = mechanism
    if code in (235, 503):  # 503: already authenticated
        return code, resp
    raise SMTPAuthenticationError(code, resp)


def _docmd_step(cmd: str, args: str = "") -> Invoke:
    return Invoke(lambda c: c.docmd(cmd, args))


def _auth_step(
    mechanism: str, authobject: Callable[..., str | bytes | None], initial_response_ok: bool
) -> Invoke:
    return Invoke(lambda c: c.auth(mechanism, authobject, initial_response_ok=initial_response_ok))


def _rcpt_step(recipient: str, options: Sequence[str]) -> Invoke:
    return Invoke(lambda c: c.rcpt(recipient, options))


def _b64(response: str | bytes | None) -> str:
    if response is None:
        response = ""
    raw = response if isinstance(response, bytes) else response.encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def _cancel_auth() -> Flow[None]:
    # RFC 4954 section 4: a "*" line cancels the exchange; the server answers 501.  This
    # keeps client and server in step instead of leaving the server waiting.
    try:
        yield Invoke(lambda c: c.docmd("*"))
    except SMTPServerDisconnected:
        pass


# CRAM-MD5 first, as smtplib: it keeps the password off the wire.
_LOGIN_PREFERENCE = ("CRAM-MD5", "PLAIN", "LOGIN")


def login(client: Client, user: str, password: str, initial_response_ok: bool) -> Flow[Response]:
    yield Invoke(lambda c: c.ehlo_or_helo_if_needed())
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
            code, resp = yield _auth_step(mechanism, authobject, initial_response_ok)
        except SMTPAuthenticationError as exc:
            last_error = exc
        else:
            if code in (235, 503):
                return code, resp
    assert last_error is not None
    raise last_error


# ------------------------------------------------------------- the session


def starttls(client: Client, context: object) -> Flow[Response]:
    yield Invoke(lambda c: c.ehlo_or_helo_if_needed())
    if not client.has_extn("starttls"):
        raise SMTPNotSupportedError("STARTTLS extension not supported by server.")
    code, reply = yield Invoke(lambda c: c.docmd("STARTTLS"))
    if code != 220:
        # RFC 3207 section 4: 501 (syntax) or 454 (TLS not available for now).
        raise SMTPResponseException(code, reply)
    yield StartTLS(context)
    # RFC 3207 section 4.2: forget everything learned before TLS.
    _forget_session(client)
    return code, reply


def _forget_session(client: Client) -> None:
    client.helo_resp = client.ehlo_resp = None
    client.esmtp_features = {}
    client.does_esmtp = False


def quit(client: Client) -> Flow[Response]:
    result: Response = yield Invoke(lambda c: c.docmd("quit"))
    _forget_session(client)  # a new EHLO is needed after a later connect()
    yield Invoke(lambda c: c.close())
    return result


def exit_session(client: Client) -> Flow[None]:
    """``__exit__``: QUIT, raising if it is refused, and always close.  (No ``finally``
    that yields: a flow closed by a KeyboardInterrupt must not take another step.)"""
    try:
        code, message = yield Invoke(lambda c: c.docmd("QUIT"))
    except SMTPServerDisconnected:
        code, message = 221, b""
    except Exception:
        yield Invoke(lambda c: c.close())
        raise
    yield Invoke(lambda c: c.close())
    if code != 221:
        raise SMTPResponseException(code, message)


# ------------------------------------------------------------ sending mail


def sendmail(
    client: Client,
    from_addr: str,
    to_addrs: str | Sequence[str],
    msg: str | bytes,
    mail_options: Sequence[str],
    rcpt_options: Sequence[str],
) -> Flow[dict[str, Response]]:
    """One whole transaction, with smtplib's error policy.

    Differences (docs/compatibility.md): the envelope is checked before anything is sent;
    for LMTP each accepted recipient's own reply after the content decides its fate.
    """
    if not (greeted(client) and method_intact(client, "ehlo_or_helo_if_needed")):
        yield Invoke(lambda c: c.ehlo_or_helo_if_needed())
    job = plan_sendmail(client, from_addr, to_addrs, msg, mail_options, rcpt_options)
    if not graph_intact(client):
        options = sendmail_options(client, msg, mail_options)
        return (yield from _sendmail_step_by_step(client, job, msg, options, rcpt_options))
    (outcome,) = yield from _engine.transact(client, [job], compat=True)
    assert isinstance(outcome, _engine.Outcome)
    return _outcomes.sendmail_result(outcome, client._lmtp)


def _sendmail_step_by_step(
    client: Client,
    job: Job,
    msg: str | bytes,
    mail_options: Sequence[str],
    rcpt_options: Sequence[str],
) -> Flow[dict[str, Response]]:
    """smtplib's own sequence, through the public methods a subclass or a test replaced."""
    code, resp = yield Invoke(lambda c: c.mail(job.sender, mail_options))
    if code != 250:
        if code == 421:
            yield Invoke(lambda c: c.close())
        else:
            yield from quiet_rset(client)
        raise SMTPSenderRefused(code, resp, job.sender)
    refused: dict[str, Response] = {}
    accepted: list[str] = []
    for recipient in job.recipients:
        reply = yield _rcpt_step(recipient, rcpt_options)
        if reply[0] in (250, 251):
            accepted.append(recipient)
        else:
            refused[recipient] = reply
        if reply[0] == 421:
            yield Invoke(lambda c: c.close())
            raise SMTPRecipientsRefused(refused)
    if not accepted:
        yield from quiet_rset(client)
        raise SMTPRecipientsRefused(refused)
    code, resp = yield Invoke(lambda c: c.data(msg))
    if client._lmtp:
        finals = iter(client._data_replies)
        delivered = False
        for recipient in accepted:
            rcode, rresp = next(finals, (code, resp))
            if 200 <= rcode <= 299:
                delivered = True
            else:
                refused[recipient] = (rcode, rresp)
        if not delivered:
            raise SMTPRecipientsRefused(refused)
        return refused
    if code != 250:
        if code == 421:
            yield Invoke(lambda c: c.close())
        else:
            yield from quiet_rset(client)
        raise SMTPDataError(code, resp)
    return refused


def send_message(
    client: Client,
    msg: email.message.Message,
    from_addr: str | None,
    to_addrs: str | Sequence[str] | None,
    mail_options: Sequence[str],
    rcpt_options: Sequence[str],
) -> Flow[dict[str, Response]]:
    """Envelope from the headers (RFC 5322 section 3.6.6 for Resent-*), Bcc removed."""
    yield Invoke(lambda c: c.ehlo_or_helo_if_needed())
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
    sender, recipients = from_addr, to_addrs
    refused: dict[str, Response] = yield Invoke(
        lambda c: c.sendmail(sender, recipients, flat, mail_options, rcpt_options)
    )
    return refused


Item = Content | tuple[Content, str | None, str | Recipient | Iterable[str | Recipient] | None]


def deliver(
    client: Client,
    message: Content,
    sender: str | None,
    recipients: str | Recipient | Iterable[str | Recipient] | None,
    options: DeliveryOptions,
) -> Flow[SendResult]:
    """One message, with a result for every recipient (see ``SMTP.deliver``)."""
    yield Invoke(lambda c: c.ehlo_or_helo_if_needed())
    job = plan_delivery(client, message, sender, recipients, options)
    (outcome,) = yield from _engine.transact(client, [job], graph=not graph_intact(client))
    assert isinstance(outcome, _engine.Outcome)
    result = _outcomes.entry(outcome, client._lmtp, single=True)
    if isinstance(result, Exception):
        raise result
    return result


def deliver_many(
    client: Client,
    items: Iterable[Item],
    options: DeliveryOptions,
    window: int | None,
    quit: bool,
) -> Flow[list[SendResult | Exception]]:
    """A batch (see ``SMTP.deliver_many``): every item planned when the engine reaches it,
    one entry per item, in order."""
    yield Invoke(lambda c: c.ehlo_or_helo_if_needed())
    window = _engine.DEFAULT_WINDOW if window is None else window
    if window < 1:
        raise ValueError("window must be at least 1")

    iterator = iter(items)
    failed: list[Exception] = []

    def jobs() -> Iterator[Job | BaseException]:
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                return
            except Exception as exc:
                # The caller's iterable failed: end the batch there, so that what is in
                # flight is settled and the session stays in step; then raise it.
                failed.append(exc)
                return
            try:
                if isinstance(item, tuple):
                    message, sender, recipients = item
                    yield plan_delivery(client, message, sender, recipients, options)
                else:
                    yield plan_delivery(client, item, None, None, options)
            except (SMTPException, ValueError, TypeError, UnicodeError) as exc:
                yield exc  # this item cannot be sent; the others still can

    outcomes = yield from _engine.transact(
        client, jobs(), window=window, quit=quit, graph=not graph_intact(client)
    )
    if failed:
        raise failed[0]
    return [
        _outcomes.entry(o, client._lmtp) if isinstance(o, _engine.Outcome) else _as_exc(o)
        for o in outcomes
    ]


def _as_exc(error: BaseException) -> Exception:
    assert isinstance(error, Exception)
    return error


# -------------------------------------------------------- smtplib's method graph

# The methods a transaction bypasses.  If a subclass or a test replaced any of them, the
# transaction goes step by step so that the replacement is still called.
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
    """No method a transaction bypasses was replaced.  Checked on every call, not cached:
    tests patch methods on the class at run time."""
    own = client._own_methods[: len(_PIPELINE_BYPASSES)]
    replaced_here = not vars(client).keys().isdisjoint(_PIPELINE_BYPASSES)
    return not replaced_here and _bypassed_methods(type(client)) == own
