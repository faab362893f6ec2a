"""``smtpx.connect(url)`` and ``smtpx.send(message, url=...)``: a secured, logged-in client
in one call, under the strict policy by default (``smtpx._security``, ``smtpx._session``)."""

from __future__ import annotations

import ssl
from typing import Any

from .._compose import message_from_options
from .._exceptions import SMTPConnectError
from .._results import SendResult
from .._security import Target, TLSSettings, batch_items, batch_outcome, prepare
from .._session import TokenProvider, open_session
from .._timeouts import Timeouts
from ._client import SMTP
from ._variants import LMTP, SMTP_SSL

__all__ = ["connect", "open_target", "send"]


def connect(
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    token: TokenProvider | None = None,
    policy: str = "strict",
    context: ssl.SSLContext | None = None,
    cafile: str | None = None,
    capath: str | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    minimum_version: ssl.TLSVersion | None = None,
    server_name: str | None = None,
    timeout: float | Timeouts | None = None,
    local_hostname: str | None = None,
    source_address: tuple[str, int] | None = None,
) -> SMTP:
    """Connect to the server *url* names, secure the connection and log in.

    *url*: ``smtps://user:pass@host:465`` (implicit TLS), ``smtp+starttls://host:587``,
    ``smtp://host:25``, ``lmtp://host:24`` or ``lmtp+unix:///path`` (see ``smtpx._url``);
    the user name and password may come from the URL (percent-encoded) or as arguments, or
    a *token* (OAuth2: a string, or a function that returns a fresh one).

    *policy*: ``"strict"`` (TLS required, certificate and host name verified, credentials
    only over TLS and never to a weaker mechanism after a refusal) or ``"compat"``
    (smtplib's behaviour); a refusal raises ``SMTPPolicyError``.  TLS: *context*
    (smtplib's name), or *cafile*/*capath*, a client certificate *certfile*/*keyfile*,
    *minimum_version*, and *server_name* when the certificate names another host.
    *timeout*: a number or a ``Timeouts`` (default ``Timeouts()``).

    Returns the connected client (``SMTP_SSL`` for smtps, ``LMTP`` for lmtp), ready to
    send; use it as a context manager to QUIT at the end.

    >>> url = "smtp+starttls://alice:s3cret@mail.example.org"
    >>> with smtpx.connect(url) as smtp:  # doctest: +SKIP
    ...     smtp.deliver(message)
    """
    target = prepare(
        url,
        username=username,
        password=password,
        token=token,
        policy=policy,
        context=context,
        settings=TLSSettings(cafile, capath, certfile, keyfile, minimum_version, server_name),
    )
    return open_target(target, timeout, local_hostname, source_address)


def open_target(
    target: Target,
    timeout: float | Timeouts | None,
    local_hostname: str | None,
    source_address: tuple[str, int] | None,
) -> SMTP:
    """Connect to *target* (``prepare``'s), secure the session and log in (``connect``
    after its checks; the pool opens each connection this way)."""
    client = target.client((SMTP, SMTP_SSL, LMTP), timeout, local_hostname)
    endpoint = target.endpoint
    try:
        code, message = client.connect(endpoint.host, endpoint.port, source_address)
        if code != 220:
            raise SMTPConnectError(code, message)
        client._run(
            open_session(client, target.endpoint, target.policy, target.context, target.credentials)
        )
    except BaseException:
        client._abort()
        raise
    return client


def send(
    message: Any = None,
    *,
    url: str,
    sender: str | None = None,
    recipients: Any = None,
    **options: Any,
) -> SendResult | list[SendResult | Exception]:
    """Connect (as ``connect`` does, with the same keyword *options*), send, and QUIT.

    *message*: one message (anything ``deliver()`` takes; *sender* and *recipients* as
    there) returns its ``SendResult`` and raises what ``deliver()`` raises; a list of
    messages or ``(message, sender, recipients)`` tuples is sent as one ``deliver_many``
    batch and returns its entries.  QUIT goes in the same write as the last message where
    the server allows it (one round trip fewer).

    Without *message*, the keywords of ``smtpx.compose`` (*to*, *cc*, *bcc*, *subject*,
    *text*, *html*, *attachments*...) build one, with *sender* as its From:

    >>> smtpx.send(url="smtp+starttls://alice:s3cret@mail.example.org",  # doctest: +SKIP
    ...            sender="alice@example.org", to="bob@example.org",
    ...            subject="Report", text="Attached.", attachments=["report.pdf"])
    SendResult(...)
    """
    message, options = message_from_options(message, sender, options)
    items = batch_items(message, sender, recipients)
    with connect(url, **options) as client:
        return batch_outcome(message, client.deliver_many(items, quit=True))
