"""One SMTP or LMTP session run phase by phase for ``send`` and ``sendmail``: connect,
EHLO, STARTTLS, AUTH, then the messages; a failure names its phase, and the session can
stop after any phase (``--stop-after``).

The TLS modes:

====================  =============================================================
``implicit``          TLS from the first byte (RFC 8314 section 3.3, port 465)
``starttls``          STARTTLS must be offered and succeed, else the session ends
                      before anything else is sent (RFC 3207; no downgrade)
``starttls-if-offered``  STARTTLS when the server offers it; otherwise plaintext, and
                      then no password is sent (a downgrade must not reveal it)
``none``              plaintext: what the caller chose, AUTH included
====================  =============================================================
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import _login
from .._exceptions import (
    SMTPAuthenticationError,
    SMTPDataError,
    SMTPException,
    SMTPNotSupportedError,
    SMTPOutcomeUnknown,
    SMTPPolicyError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
)
from .._protocol import Reply, SessionEvent
from .._results import RecipientResult, SendResult
from .._security import Target
from .._session import secure
from .._sync import LMTP, SMTP, SMTP_SSL
from .._url import Endpoint
from ..auth import create_mechanism
from ._common import CLIError, describe

__all__ = [
    "EXIT_CODES",
    "PHASES",
    "TLS_MODES",
    "PhaseError",
    "Server",
    "Session",
    "TLSMode",
]

TLSMode = Literal["implicit", "starttls", "starttls-if-offered", "none"]
TLS_MODES: tuple[TLSMode, ...] = ("implicit", "starttls", "starttls-if-offered", "none")
Phase = Literal["connect", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "unknown"]
#: The phases ``--stop-after`` can name, in session order.
PHASES = ("connect", "ehlo", "starttls", "auth", "mail", "rcpt")

#: ``smtpx send``'s exit status for a failure in each phase (docs/cli.md has the table).
EXIT_CODES: dict[str, int] = {
    "connect": 4,
    "ehlo": 5,
    "starttls": 6,
    "auth": 7,
    "mail": 8,
    "rcpt": 9,
    "data": 10,
    "partial": 11,
    "unknown": 12,
}


class PhaseError(CLIError):
    """The session failed in *phase*; *reply* is the server's refusal when there was one."""

    def __init__(self, phase: str, message: str, reply: Reply | None = None) -> None:
        super().__init__(f"{phase}: {message}", EXIT_CODES[phase])
        self.phase = phase
        self.reply = reply


@dataclass(frozen=True, slots=True)
class Server:
    """Where to connect and how (everything the command line decided)."""

    host: str  # for a unix socket, its path
    port: int
    tls: TLSMode
    context: ssl.SSLContext
    lmtp: bool = False
    unix: bool = False
    server_name: str | None = None
    ehlo: str | None = None
    timeout: float = 30.0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    mechanism: str = "auto"

    @property
    def scheme(self) -> str:
        if self.unix:
            return "lmtp+unix"
        if self.lmtp:
            return "lmtp"
        return {"implicit": "smtps", "starttls": "smtp+starttls"}.get(self.tls, "smtp")

    @property
    def where(self) -> str:
        if self.unix:
            return self.host
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _reply_of(exc: BaseException) -> Reply | None:
    if isinstance(exc, SMTPResponseException):
        message = exc.smtp_error
        if isinstance(message, str):
            message = message.encode("utf-8", "replace")
        return Reply(exc.smtp_code, (message,) if message else ())
    return None


@contextmanager
def _phase(name: str) -> Iterator[None]:
    """Errors in this block end the session as a failure of phase *name*."""
    try:
        yield
    except PhaseError:
        raise
    except ssl.SSLError as exc:  # a handshake or certificate failure, whenever it happens
        raise PhaseError("starttls", f"TLS failed: {describe(exc)}") from None
    except SMTPOutcomeUnknown as exc:
        raise PhaseError("unknown", describe(exc)) from None
    except (SMTPException, OSError, ValueError) as exc:
        raise PhaseError(name, describe(exc), _reply_of(exc)) from None


class Session:
    """A session with *server*: ``open()`` runs connect, EHLO, STARTTLS and AUTH (up to
    *stop_after*), then ``deliver``/``deliver_many`` send and ``close`` says QUIT."""

    def __init__(self, server: Server, observers: Sequence[Callable[[SessionEvent], None]] = ()):
        self.server = server
        self.observers = observers
        self.client: SMTP | None = None
        self.authenticated = False

    # -- opening -------------------------------------------------------------------------

    def open(self, stop_after: str | None = None) -> bool:
        """Connect and prepare the session; False when *stop_after* ended it early."""
        server = self.server
        scheme_tls: Literal["implicit", "none"] = "implicit" if server.tls == "implicit" else "none"
        endpoint = Endpoint(server.scheme, server.host, server.port, scheme_tls, server.lmtp)
        policy: Literal["strict", "compat"] = (
            "strict" if server.context.verify_mode == ssl.CERT_REQUIRED else "compat"
        )
        target = Target(endpoint, policy, server.context, _login.Credentials(), server.server_name)
        client = target.client((SMTP, SMTP_SSL, LMTP), server.timeout, server.ehlo)
        for observer in self.observers:
            client.add_observer(observer)
        self.client = client
        with _phase("connect"):
            code, message = client.connect(server.host, server.port)
            if code != 220:
                raise PhaseError(
                    "connect",
                    f"the server's greeting is {code} {message.decode('utf-8', 'replace')}",
                    Reply(code, (message,)),
                )
        if stop_after == "connect":
            return False
        with _phase("ehlo"):
            client.ehlo_or_helo_if_needed()
        if stop_after == "ehlo":
            return False
        self._starttls(client)
        if stop_after == "starttls":
            return False
        if server.username is not None:
            self._login(client)
        return stop_after != "auth"

    def _starttls(self, client: SMTP) -> None:
        server = self.server
        if server.tls == "starttls":
            endpoint = Endpoint("smtp+starttls", server.host, server.port, "starttls", False)
            with _phase("starttls"):
                try:
                    client._run(secure(client, endpoint, "strict", server.context))
                except SMTPPolicyError as exc:
                    raise PhaseError("starttls", str(exc)) from None
        elif server.tls == "starttls-if-offered" and client.has_extn("starttls"):
            with _phase("starttls"):
                client.starttls(context=server.context)
        else:
            return
        with _phase("ehlo"):
            client.ehlo()  # RFC 3207 section 4.2: forget what was learnt before TLS

    def _login(self, client: SMTP) -> None:
        server = self.server
        secure_channel = client._tls_active or server.unix
        if not secure_channel and server.tls != "none":
            raise PhaseError(
                "auth",
                "the server offered no STARTTLS: the password is not sent in the clear "
                "(--tls none sends it anyway)",
            )
        user, password = server.username or "", server.password
        with _phase("auth"):
            try:
                if server.mechanism == "auto":
                    policy = "strict" if secure_channel else "compat"
                    credentials = _login.Credentials(user, password)
                    client._run(_login.login(client, credentials, policy))
                else:
                    if not client.has_extn("auth"):
                        raise SMTPNotSupportedError("the server does not offer AUTH (RFC 4954)")
                    name = server.mechanism.upper()
                    mechanism = create_mechanism(
                        name, user=user, password=password, binding_supported=client._tls_active
                    )
                    client.auth(name, mechanism)
            except SMTPAuthenticationError as exc:
                raise PhaseError("auth", describe(exc), _reply_of(exc)) from None
            except SMTPPolicyError as exc:
                raise PhaseError("auth", str(exc)) from None
        self.authenticated = True

    # -- the envelope alone (--stop-after mail|rcpt) ---------------------------------------

    def envelope_only(
        self, sender: str, recipients: Sequence[str], stop_after: str
    ) -> list[RecipientResult]:
        """MAIL FROM (and RCPT TO for each recipient when *stop_after* is ``rcpt``), then
        RSET: what the server would say, without sending a message."""
        client = self._client()
        results: list[RecipientResult] = []
        with _phase("mail"):
            code, message = client.mail(sender)
            if code != 250:
                client.rset()
                raise PhaseError(
                    "mail", f"{code} {message.decode('utf-8', 'replace')}", Reply(code, (message,))
                )
        if stop_after == "rcpt":
            with _phase("rcpt"):
                for address in recipients:
                    code, message = client.rcpt(address)
                    results.append(RecipientResult(address, Reply(code, (message,))))
        with _phase("rcpt" if stop_after == "rcpt" else "mail"):
            client.rset()
        return results

    # -- messages --------------------------------------------------------------------------

    def deliver(self, message: Any, sender: str | None, recipients: Any, **dsn: Any) -> SendResult:
        client = self._client()
        with _phase("data"):
            try:
                return client.deliver(message, sender, recipients, **dsn)
            except SMTPSenderRefused as exc:
                raise PhaseError("mail", describe(exc), _reply_of(exc)) from None
            except SMTPRecipientsRefused as exc:
                raise PhaseError("rcpt", describe(exc)) from None
            except SMTPDataError as exc:
                raise PhaseError("data", describe(exc), _reply_of(exc)) from None

    def deliver_many(self, items: Iterable[Any], **dsn: Any) -> list[SendResult | Exception]:
        client = self._client()
        with _phase("data"):
            return client.deliver_many(items, quit=True, **dsn)

    def close(self) -> None:
        """QUIT if the session is still open, then close (never raises)."""
        client = self.client
        if client is None:
            return
        try:
            if client.sock is not None:
                client.quit()
        except (SMTPException, OSError):
            pass
        finally:
            client.close()

    def _client(self) -> SMTP:
        assert self.client is not None, "open() first"
        return self.client


def phase_of(exc: BaseException) -> str:
    """The phase a batch entry's exception failed in."""
    if isinstance(exc, SMTPSenderRefused):
        return "mail"
    if isinstance(exc, SMTPRecipientsRefused):
        return "rcpt"
    if isinstance(exc, SMTPOutcomeUnknown):
        return "unknown"
    return "data"
