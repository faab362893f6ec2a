"""``smtpx.aconnect(url)`` and ``smtpx.asend(message, url=...)``: ``connect`` and ``send``
(``smtpx._sync._connect``) for the asyncio classes."""

from __future__ import annotations

import ssl
from typing import Any

from .._compose import message_from_options
from .._exceptions import SMTPConnectError
from .._results import SendResult
from .._security import Target, TLSSettings, batch_items, batch_outcome, prepare
from .._session import TokenProvider, open_session
from .._timeouts import Timeouts
from ._client import AsyncSMTP
from ._variants import AsyncLMTP, AsyncSMTP_SSL

__all__ = ["aconnect", "asend", "open_target"]


async def aconnect(
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
) -> AsyncSMTP:
    """``smtpx.connect`` for asyncio: a connected, secured, logged-in ``AsyncSMTP``
    (``AsyncSMTP_SSL``, ``AsyncLMTP``).  *token* may be a coroutine function.

    >>> url = "smtps://alice:s3cret@mail.example.org"
    >>> async with await smtpx.aconnect(url) as smtp:  # doctest: +SKIP
    ...     await smtp.deliver(message)
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
    return await open_target(target, timeout, local_hostname, source_address)


async def open_target(
    target: Target,
    timeout: float | Timeouts | None,
    local_hostname: str | None,
    source_address: tuple[str, int] | None,
) -> AsyncSMTP:
    """``smtpx._sync._connect.open_target`` for asyncio."""
    client = target.client((AsyncSMTP, AsyncSMTP_SSL, AsyncLMTP), timeout, local_hostname)
    endpoint = target.endpoint
    try:
        code, message = await client.connect(endpoint.host, endpoint.port, source_address)
        if code != 220:
            raise SMTPConnectError(code, message)
        await client._run(
            open_session(client, target.endpoint, target.policy, target.context, target.credentials)
        )
    except BaseException:
        client._abort()
        raise
    return client


async def asend(
    message: Any = None,
    *,
    url: str,
    sender: str | None = None,
    recipients: Any = None,
    **options: Any,
) -> SendResult | list[SendResult | Exception]:
    """``smtpx.send`` for asyncio (see there): connect, send one message or a batch, QUIT;
    without *message*, one composed from the ``smtpx.compose`` keywords."""
    message, options = message_from_options(message, sender, options)
    items = batch_items(message, sender, recipients)
    async with await aconnect(url, **options) as client:
        return batch_outcome(message, await client.deliver_many(items, quit=True))
