"""The security policy and the TLS settings behind ``smtpx.connect``.

Two policies, one setting:

- ``"strict"`` (the default of ``connect``, ``send`` and their asyncio twins): TLS is
  required, as implicit TLS or as STARTTLS that must succeed, never a fallback to plaintext;
  the certificate and the host name are verified; no credential is sent outside TLS; a
  password goes only to mechanisms that are safe over TLS; REQUIRETLS is honoured when asked.
- ``"compat"``: what smtplib does (TLS only where the caller asks for it), with smtpx's safer
  defaults (a default context still verifies).

Every refusal raises ``SMTPPolicyError`` naming what was missing; nothing secret has been
sent by then.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from ._clientbase import ClientBase
from ._exceptions import SMTPPolicyError
from ._login import Credentials, TokenProvider
from ._results import SendResult
from ._timeouts import Timeouts
from ._url import Endpoint, parse_url

__all__ = [
    "POLICIES",
    "Policy",
    "TLSSettings",
    "Target",
    "batch_items",
    "batch_outcome",
    "check_policy",
    "prepare",
    "prepare_options",
    "verified_context",
]

Policy = Literal["compat", "strict"]
ClientT = TypeVar("ClientT", bound=ClientBase)
POLICIES: tuple[Policy, ...] = ("compat", "strict")


def check_policy(policy: str) -> Policy:
    for known in POLICIES:
        if policy == known:
            return known
    raise ValueError(f"policy must be 'strict' or 'compat', not {policy!r}")


@dataclass(frozen=True, slots=True)
class TLSSettings:
    """How to build the TLS context when the caller gives none (``context=`` wins, as in
    smtplib).  *server_name* is the name the certificate must match and SNI sends, when it
    differs from the host connected to (an address, or a relay behind a tunnel)."""

    cafile: str | None = None
    capath: str | None = None
    certfile: str | None = None  # a client certificate (SASL EXTERNAL, or a relay's ACL)
    keyfile: str | None = None
    minimum_version: ssl.TLSVersion | None = None
    server_name: str | None = None


def verified_context(
    policy: Policy, context: ssl.SSLContext | None, settings: TLSSettings
) -> ssl.SSLContext:
    """The context to use: the caller's (checked against the policy) or one built from
    *settings*, which always verifies the certificate and the host name."""
    if context is not None:
        if settings.cafile or settings.capath or settings.certfile or settings.minimum_version:
            raise ValueError("give either context= or the TLS settings that build one, not both")
        if policy == "strict":
            if context.verify_mode != ssl.CERT_REQUIRED:
                raise SMTPPolicyError(
                    "the strict policy requires certificate verification: the context "
                    "given has verify_mode other than CERT_REQUIRED"
                )
            if not context.check_hostname:
                raise SMTPPolicyError(
                    "the strict policy requires host name verification: the context "
                    "given has check_hostname off"
                )
        return context
    if settings.keyfile and not settings.certfile:
        raise ValueError("keyfile given without certfile")
    built = ssl.create_default_context(cafile=settings.cafile, capath=settings.capath)
    if settings.certfile:
        built.load_cert_chain(settings.certfile, settings.keyfile)
    if settings.minimum_version is not None:
        built.minimum_version = settings.minimum_version
    return built


@dataclass(frozen=True, slots=True)
class Target:
    """Everything ``connect(url, ...)`` decided before any I/O (shared by both drivers)."""

    endpoint: Endpoint
    policy: Policy
    context: ssl.SSLContext | None  # None: this connection never starts TLS
    credentials: Credentials
    server_name: str | None

    def client(
        self,
        kinds: tuple[Callable[..., ClientT], Callable[..., ClientT], Callable[..., ClientT]],
        timeout: float | Timeouts | None,
        local_hostname: str | None,
    ) -> ClientT:
        """A client of the right class (*kinds*: plain, implicit TLS, LMTP), not connected,
        with the policy set on it."""
        plain, implicit, lmtp = kinds
        endpoint = self.endpoint
        timeout = Timeouts() if timeout is None else timeout  # never wait forever by default
        client: ClientT
        if endpoint.tls == "implicit":
            client = implicit(local_hostname=local_hostname, timeout=timeout, context=self.context)
        else:
            client = (lmtp if endpoint.lmtp else plain)(
                local_hostname=local_hostname, timeout=timeout
            )
        client.policy = self.policy
        client._tls_server_name = self.server_name
        client._local_channel = endpoint.unix
        return client


def prepare(
    url: str,
    *,
    username: str | None,
    password: str | None,
    token: TokenProvider | None,
    policy: str,
    context: ssl.SSLContext | None,
    settings: TLSSettings,
) -> Target:
    """Check the arguments of ``connect``: a bad URL, policy, context or credential raises
    here, before the network is touched."""
    endpoint = parse_url(url)
    checked = check_policy(policy)
    if endpoint.username is not None and username is not None:
        raise ValueError("the user name is given both in the URL and as username=")
    if endpoint.password is not None and (password is not None or token is not None):
        raise ValueError("the password is given both in the URL and as an argument")
    credentials = Credentials(
        username if username is not None else endpoint.username,
        password if password is not None else endpoint.password,
        token,
    )
    # A context loads the system's CAs (tens of milliseconds): build one only for a
    # connection that will start TLS (a measured 3 round trips' worth per plain session).
    uses_tls = endpoint.tls != "none" or (checked == "strict" and not endpoint.unix)
    tls_context = verified_context(checked, context, settings) if uses_tls else context
    return Target(endpoint, checked, tls_context, credentials, settings.server_name)


#: The keyword options of ``connect`` that build its ``Target`` (``prepare``).
_TARGET_OPTIONS = ("username", "password", "token", "policy", "context")
_TLS_OPTIONS = ("cafile", "capath", "certfile", "keyfile", "minimum_version", "server_name")
#: The keyword options of ``connect`` used when the connection is opened.
OPEN_OPTIONS = ("timeout", "local_hostname", "source_address")


def prepare_options(url: str, options: dict[str, Any]) -> tuple[Target, dict[str, Any]]:
    """``prepare`` from ``connect``'s keyword *options* (a pool takes them as ``**``):
    the target, and the options for opening each connection.  An unknown option raises
    ``TypeError``, as a call of ``connect`` with it would."""
    unknown = set(options) - {*_TARGET_OPTIONS, *_TLS_OPTIONS, *OPEN_OPTIONS}
    if unknown:
        raise TypeError(f"unexpected connect option(s): {', '.join(sorted(unknown))}")
    target = prepare(
        url,
        username=options.get("username"),
        password=options.get("password"),
        token=options.get("token"),
        policy=options.get("policy", "strict"),
        context=options.get("context"),
        settings=TLSSettings(*(options.get(name) for name in _TLS_OPTIONS)),
    )
    return target, {name: options.get(name) for name in OPEN_OPTIONS}


def batch_items(message: Any, sender: str | None, recipients: Any) -> list[Any]:
    """``send``'s *message*: a list is a batch of items, anything else one message."""
    if isinstance(message, list):
        if sender is not None or recipients is not None:
            raise ValueError("a batch takes each message's sender and recipients in its items")
        return message
    return [(message, sender, recipients)]


def batch_outcome(
    message: Any, entries: list[SendResult | Exception]
) -> SendResult | list[SendResult | Exception]:
    """What ``send`` returns: a batch's entries, or one message's result (its error raised)."""
    if isinstance(message, list):
        return entries
    (entry,) = entries
    if isinstance(entry, Exception):
        raise entry
    return entry
