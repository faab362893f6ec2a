"""``EmailBackend``: Django's backend contract over a shared ``smtpx.Pool``.

What Django expects of a backend, and how it is met here:

- ``send_messages(messages)`` returns the number of messages sent.  A message counts as
  sent when the server accepted it for at least one recipient (smtplib's rule, which
  Django's SMTP backend inherits): a partly refused message counts, and its refused
  recipients are in ``message.smtpx_result.refused``.  A message with no recipient is
  skipped, as Django does.
- ``fail_silently``: errors from the server or the network give a count of 0 for the
  messages concerned instead of an exception.  Errors in the message itself (an invalid
  address) and in the configuration are raised either way, as Django does.
- ``open()``/``close()`` and the context manager: the pool outlives the backend, so that
  the connections are reused across calls (Django's own backend opens a connection per
  ``send_mail``).  ``open()`` attaches the backend to its pool (creating the pool: a bad
  configuration raises here), ``close()`` detaches it; the pooled connections are closed
  by the pool when idle (``idle_timeout``), or by ``close_pools()``.
- Unlike Django's SMTP backend, one failed message does not stop the others: the whole
  batch is sent, then the first failure is raised (every message has its
  ``smtpx_result`` by then).

Pools are keyed by the configuration (URLs and options), created on first use, and
forgotten in a forked child (the parent's sockets are not the child's to use).
"""

from __future__ import annotations

import atexit
import email.headerregistry
import email.policy
import inspect
import os
import smtplib
import threading
from collections.abc import Hashable, Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.utils import DNS_NAME

import smtpx

from .._url import parse_url

__all__ = ["EmailBackend", "close_pools"]

#: The options of ``smtpx.Pool`` itself (the pool's API).
POOL_OPTIONS = frozenset(
    {
        "max_connections",
        "max_messages",
        "max_age",
        "idle_timeout",
        "check_after",
        "rate",
        "burst",
        "retry",
        "window",
    }
)
#: Options of ``smtpx.connect`` that a Django setting does not already give.
CONNECT_OPTIONS = frozenset(
    {
        "token",
        "context",
        "cafile",
        "capath",
        "minimum_version",
        "server_name",
        "local_hostname",
        "source_address",
    }
)
#: Keyword arguments Django itself passes to a backend (6.1: MAILERS aliases).
DJANGO_ARGUMENTS = frozenset({"alias", "_ignore_unknown_kwargs"})
#: The setting that carries smtpx's own options when MAILERS is not used (Django 5.2).
OPTIONS_SETTING = "SMTPX_EMAIL_OPTIONS"
#: A web request must not wait minutes for a deferred recipient: no automatic retry
#: unless asked (``retry=smtpx.RetrySchedule(...)``); deferred recipients end expired.
DEFAULT_RETRY = None


class EmailBackend(BaseEmailBackend):  # type: ignore[misc]  # Django ships no type hints
    """Django's email backend, sending through a shared ``smtpx.Pool``.

    The arguments are those of Django's SMTP backend (*host*, *port*, *username*,
    *password*, *use_tls*, *use_ssl*, *timeout*, *ssl_keyfile*, *ssl_certfile*,
    *fail_silently*), the ``EMAIL_*`` settings filling in what is not given (unless the
    backend comes from Django 6.1's ``MAILERS``, whose ``OPTIONS`` are the arguments), and
    smtpx's own: *url* (a server URL, or a list for failover, instead of host, port and
    TLS flags), *policy* (``"compat"``, the default: TLS only when asked, as Django does;
    ``"strict"``: TLS required and verified), the pool's options (*max_connections*,
    *max_messages*, *max_age*, *idle_timeout*, *check_after*, *rate*, *burst*, *retry*,
    *window*) and ``connect``'s (*token*, *context*, *cafile*, *capath*, *minimum_version*,
    *server_name*, *local_hostname*, *source_address*).

    In ``settings.py``, then ``send_mail`` as usual (it returns 1: one message sent)::

        EMAIL_BACKEND = "smtpx.django.EmailBackend"
        EMAIL_HOST, EMAIL_PORT, EMAIL_USE_TLS = "mail.example.org", 587, True
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool | None = None,
        fail_silently: bool = False,
        use_ssl: bool | None = None,
        timeout: float | None = None,
        ssl_keyfile: str | None = None,
        ssl_certfile: str | None = None,
        **kwargs: Any,
    ) -> None:
        alias = kwargs.get("alias")
        ignored = set(kwargs.get("_ignore_unknown_kwargs") or ())
        ours = {name: kwargs.pop(name) for name in list(kwargs) if _is_ours(name)}
        unknown = sorted(set(kwargs) - DJANGO_ARGUMENTS - ignored)
        if unknown:
            raise _config_error(f"unknown options: {', '.join(unknown)}", alias)
        super().__init__(**kwargs)
        self.fail_silently = fail_silently
        self._opened = False
        self._lock = threading.Lock()
        given = {
            "host": host,
            "port": port,
            "username": username,
            "password": password,
            "use_tls": use_tls,
            "use_ssl": use_ssl,
            "timeout": timeout,
            "ssl_keyfile": ssl_keyfile,
            "ssl_certfile": ssl_certfile,
        }
        if alias is None:
            given, ours = _with_settings(given, ours)
        try:
            self.urls, self.options = _pool_arguments(given, ours)
        except ValueError as error:
            raise _config_error(str(error), alias) from None
        self._key = _key(self.urls, self.options)

    def __repr__(self) -> str:
        # The URLs may hold a password (smtps://user:pass@host): never shown.
        shown = ", ".join(repr(parse_url(url)) for url in self.urls)
        return f"<smtpx.django.EmailBackend {shown}>"

    def open(self) -> bool | None:
        """Attach to the pool (created on first use).  True when this call opened the
        backend, False when it was open already (Django's contract)."""
        with self._lock:
            if self._opened:
                return False
            _shared_pool(self._key, self.urls, self.options)
            self._opened = True
            return True

    def close(self) -> None:
        """Detach from the pool.  Its connections stay open for the next send (closed by
        the pool when idle, or by ``close_pools()``)."""
        with self._lock:
            self._opened = False

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        """Send the messages as one batch; return how many were sent (accepted for at
        least one recipient).  Each one gets its result as ``message.smtpx_result``."""
        if not email_messages:
            return 0
        batch = []
        for message in email_messages:
            if not message.recipients():
                continue  # Django's rule: nobody to send to, nothing sent
            batch.append((message, _item(message)))
        if not batch:
            return 0
        pool = _shared_pool(self._key, self.urls, self.options)
        try:
            results = pool.send_many([item for _, item in batch])
        except (smtplib.SMTPException, OSError):
            if self.fail_silently:
                return 0
            raise
        sent = 0
        failure: BaseException | None = None
        for (message, _), result in zip(batch, results, strict=True):
            message.smtpx_result = result
            if result.delivered:
                sent += 1
            elif failure is None:
                failure = _error_of(result)
        if failure is not None and not self.fail_silently:
            raise failure
        return sent


# ----------------------------------------------------------------- configuration


def _is_ours(name: str) -> bool:
    return name in POOL_OPTIONS or name in CONNECT_OPTIONS or name in ("url", "policy")


def _config_error(message: str, alias: str | None) -> ImproperlyConfigured:
    """Django 6.1 names the MAILERS entry at fault (``InvalidMailer``); before, or for the
    ``EMAIL_*`` settings, ``ImproperlyConfigured``."""
    if alias is not None:
        try:
            from django.core.mail import InvalidMailer  # Django >= 6.1
        except ImportError:  # pragma: no cover - alias is only passed by Django >= 6.1
            pass
        else:
            error: ImproperlyConfigured = InvalidMailer(message, alias=alias)
            return error
    return ImproperlyConfigured(f"smtpx.django.EmailBackend: {message}")


def _with_settings(
    given: dict[str, Any], ours: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fill what the caller did not give from the ``EMAIL_*`` settings, as Django's SMTP
    backend does (``EMAIL_HOST`` and ``EMAIL_PORT`` also when given as false values)."""
    extra = getattr(settings, OPTIONS_SETTING, None) or {}
    if not isinstance(extra, dict):
        raise _config_error(f"the {OPTIONS_SETTING} setting must be a dict", None)
    unknown = sorted(name for name in extra if not _is_ours(name))
    if unknown:
        raise _config_error(f"unknown {OPTIONS_SETTING}: {', '.join(unknown)}", None)
    ours = {**extra, **ours}
    filled = dict(given)
    if "url" in ours:
        # The URL says where and how: EMAIL_HOST, EMAIL_PORT and the TLS flags (which
        # always have a value in Django's defaults) are not read.
        names = {
            "username": "EMAIL_HOST_USER",
            "password": "EMAIL_HOST_PASSWORD",
            "timeout": "EMAIL_TIMEOUT",
            "ssl_keyfile": "EMAIL_SSL_KEYFILE",
            "ssl_certfile": "EMAIL_SSL_CERTFILE",
        }
    else:
        filled["host"] = given["host"] or _setting("EMAIL_HOST", "localhost")
        filled["port"] = given["port"] or _setting("EMAIL_PORT", 25)
        names = {
            "username": "EMAIL_HOST_USER",
            "password": "EMAIL_HOST_PASSWORD",
            "use_tls": "EMAIL_USE_TLS",
            "use_ssl": "EMAIL_USE_SSL",
            "timeout": "EMAIL_TIMEOUT",
            "ssl_keyfile": "EMAIL_SSL_KEYFILE",
            "ssl_certfile": "EMAIL_SSL_CERTFILE",
        }
    for argument, name in names.items():
        if filled[argument] is None:
            filled[argument] = _setting(name, None)
    return filled, ours


def _setting(name: str, default: Any) -> Any:
    # Django 6.1 raises AttributeError for an EMAIL_* setting read while MAILERS is set.
    return getattr(settings, name, default)


def _pool_arguments(
    given: dict[str, Any], ours: dict[str, Any]
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The pool's URLs and keyword arguments; ``ValueError`` says what is wrong."""
    url = ours.pop("url", None)
    if url is not None:
        clashing = [name for name in ("host", "port", "use_tls", "use_ssl") if given[name]]
        if clashing:
            raise ValueError(f"give either url or {', '.join(clashing)}, not both")
        urls = (url,) if isinstance(url, str) else tuple(url)
        if not urls:
            raise ValueError("url names no server")
    else:
        urls = (_url_of(given),)
    in_url = False
    for each in urls:
        endpoint = parse_url(each)  # ValueError for a bad URL, before any connection
        in_url = in_url or endpoint.username is not None
    options: dict[str, Any] = {"policy": "compat", "retry": DEFAULT_RETRY}
    options["local_hostname"] = str(DNS_NAME)  # cached by Django: no look-up per connection
    options.update(ours)
    # Django logs in only when both are set (an empty EMAIL_HOST_USER means no AUTH).
    if given["username"] and given["password"] and not in_url:
        options["username"] = str(given["username"])
        options["password"] = str(given["password"])
    if given["timeout"] is not None:
        options["timeout"] = given["timeout"]
    if given["ssl_certfile"]:
        options["certfile"] = given["ssl_certfile"]
    if given["ssl_keyfile"]:
        if not given["ssl_certfile"]:
            raise ValueError("ssl_keyfile (EMAIL_SSL_KEYFILE) given without ssl_certfile")
        options["keyfile"] = given["ssl_keyfile"]
    if options["policy"] not in ("compat", "strict"):
        raise ValueError(f"policy must be 'compat' or 'strict', not {options['policy']!r}")
    return urls, options


def _url_of(given: dict[str, Any]) -> str:
    """Django's host, port and TLS flags as a URL: implicit TLS (``use_ssl``), STARTTLS
    that must succeed (``use_tls``), or plain SMTP."""
    if given["use_ssl"] and given["use_tls"]:
        raise ValueError("use_tls and use_ssl (EMAIL_USE_TLS, EMAIL_USE_SSL) exclude each other")
    host = given["host"]
    if not host:
        raise ValueError("no host (EMAIL_HOST, or the host or url option)")
    host = str(host)
    if any(c in host for c in "\r\n\0/@?#") or host != host.strip():
        raise ValueError(f"invalid host {host!r}")
    scheme = "smtps" if given["use_ssl"] else "smtp+starttls" if given["use_tls"] else "smtp"
    port = given["port"]
    if port is None:  # MAILERS: Django's defaults by TLS mode
        port = 465 if given["use_ssl"] else 587 if given["use_tls"] else 25
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise ValueError(f"invalid port {port!r}") from None
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address (RFC 3986 section 3.2.2)
    return f"{scheme}://{host}:{port}"


def _key(urls: tuple[str, ...], options: dict[str, Any]) -> Hashable:
    """One pool per configuration.  Objects that cannot be hashed (a list of cipher
    names...) count by identity: a settings object lives as long as the process."""
    return urls, tuple(sorted((name, _hashable(value)) for name, value in options.items()))


def _hashable(value: Any) -> Hashable:
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return value  # type: ignore[no-any-return]


# ----------------------------------------------------------------- the pools

_pools: dict[Hashable, Any] = {}
_pools_lock = threading.Lock()


def _shared_pool(key: Hashable, urls: tuple[str, ...], options: dict[str, Any]) -> Any:
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = _make_pool(urls, options)
        return pool


def _make_pool(urls: tuple[str, ...], options: dict[str, Any]) -> Any:
    return smtpx.Pool(urls[0] if len(urls) == 1 else list(urls), **options)


def close_pools() -> None:
    """Close every pool the backends opened in this process, after the messages in
    flight.  The next send opens a new one.  Runs at exit; call it in a worker's
    shutdown hook, or between tests that change the mail settings."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


def _forget_pools() -> None:
    # After fork(): the child must not write to the parent's sockets (two processes
    # interleaving commands on one SMTP session), nor close them (QUIT would end the
    # parent's session).  It opens its own.
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


atexit.register(close_pools)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


# ----------------------------------------------------------------- messages


def _item(message: Any) -> tuple[bytes, str, list[str]]:
    """``(content, sender, recipients)`` for ``send_many``: the envelope sender is
    ``from_email`` (a ``From`` in ``extra_headers`` changes only the header, as in
    Django), the recipients are To, Cc and Bcc (Bcc is not in the content)."""
    sender = _addr_spec(message.from_email)
    recipients = [_addr_spec(address) for address in message.recipients()]
    return _content(message), sender, recipients


_takes_policy: dict[type, bool] = {}


def _content(message: Any) -> bytes:
    """The message as Django's own SMTP backend serializes it: Django >= 6.0 builds an
    ``email.message.EmailMessage`` under the policy given (SMTP: CRLF line ends);
    Django 5.2 builds a compat32 ``SafeMIMEText`` flattened with CRLF."""
    kind = type(message)
    takes = _takes_policy.get(kind)
    if takes is None:
        takes = _takes_policy[kind] = "policy" in inspect.signature(kind.message).parameters
    if takes:
        data: bytes = message.message(policy=email.policy.SMTP).as_bytes()
    else:
        data = message.message().as_bytes(linesep="\r\n")
    return data


def _addr_spec(address: Any) -> str:
    """The ``local@domain`` of *address* (``"Name <local@domain>"`` or bare).  A
    non-ASCII domain is IDNA-encoded when the local part is ASCII, so that a server
    without SMTPUTF8 takes it; a non-ASCII local part needs SMTPUTF8 (sent when offered).

    ``ValueError`` for anything but one address: CR, LF and NUL are refused (a header or
    a command injected through an address).
    """
    text = str(address)  # Django allows lazy translation strings
    if any(c in text for c in "\r\n\0"):
        raise ValueError(f"invalid address {text!r}: CR, LF or NUL")
    parsed = email.headerregistry.AddressHeader.value_parser(text)
    mailboxes = parsed.all_mailboxes
    if len(mailboxes) != 1 or any(
        str(d) != "addr-spec local part with no domain" for d in parsed.all_defects
    ):
        raise ValueError(f"invalid address {text!r}: must be one address")
    mailbox = mailboxes[0]
    local, domain = mailbox.local_part, mailbox.domain
    if not local:
        raise ValueError(f"invalid address {text!r}: no local part")
    if not domain:
        return str(local)  # Django allows a local mailbox ("webmaster")
    if not domain.isascii() and local.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"invalid address {text!r}: the domain is not IDNA") from None
    # addr_spec quotes a local part that needs it ("john doe"@example.org).
    return str(email.headerregistry.Address(username=local, domain=domain).addr_spec)


# ----------------------------------------------------------------- failures


def _error_of(result: Any) -> BaseException:
    """The exception for a message no recipient accepted: its last attempt's (what
    ``deliver`` raised: ``SMTPRecipientsRefused``, ``SMTPSenderRefused``,
    ``SMTPOutcomeUnknown``, a connection error...), else one built from the fates."""
    attempts = list(getattr(result, "attempts", ()) or ())
    if attempts and isinstance(attempts[-1], BaseException):
        error: BaseException = attempts[-1]
        return error
    refused: dict[str, tuple[int, bytes]] = {}
    for address, fate in result.recipients.items():
        reason = getattr(fate, "reason", None)
        code = getattr(reason, "code", None)
        if isinstance(code, int):
            refused[address] = (code, bytes(getattr(reason, "message", b"")))
        else:
            refused[address] = (-1, str(getattr(fate, "state", "not sent")).encode())
    return smtplib.SMTPRecipientsRefused(refused)
