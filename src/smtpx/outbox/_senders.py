"""The sending seam: ``send_batch(items) -> list[SendResult | Exception]``.

The worker hands a seam an *iterator* of ``(content, sender, recipients)`` items, one per
claimed message, and the seam must pull an item only when it is about to send it:
pulling is what records the message as "sending" in the store (the record that decides,
after a crash, between "send again" and "outcome unknown").  It returns one entry per
item pulled, in order, as ``deliver_many`` does; an item it pulled but could not send
must be reported as ``SMTPNotAttempted``, or it is held as outcome unknown.

The defaults keep one connection from ``smtpx.connect(url)`` (``aconnect`` for asyncio)
across batches, check it with NOOP before reusing it, and drop it after any loss.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from .._async._client import AsyncSMTP
from .._async._connect import aconnect
from .._exceptions import SMTPNotAttempted, SMTPOutcomeUnknown
from .._results import SendResult
from .._sync._client import SMTP
from .._sync._connect import connect

__all__ = ["AsyncConnectionSender", "AsyncSendBatch", "ConnectionSender", "SendBatch"]

Entry = SendResult | Exception
SendBatch = Callable[[Iterator[Any]], list[Entry]]
AsyncSendBatch = Callable[[Iterator[Any]], Awaitable[list[Entry]]]


def _broken(entries: list[Entry]) -> bool:
    return any(isinstance(e, (SMTPNotAttempted, SMTPOutcomeUnknown)) for e in entries)


class ConnectionSender:
    """``deliver_many`` over one connection to *url* (``smtpx.connect``'s options).

    >>> sender = ConnectionSender("smtp+starttls://mail.example.org", cafile="ca.pem")
    >>> entries = sender(iter([(b"Subject: hi\\r\\n\\nhello\\r\\n", "a@x.org", ["b@y.org"])]))
    ... # doctest: +SKIP
    >>> sender.close()
    """

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.options = options
        self._client: SMTP | None = None

    def __call__(self, items: Iterator[Any]) -> list[Entry]:
        client = self._client
        if client is not None:
            try:
                alive = client.noop()[0] == 250
            except Exception:
                alive = False
            if not alive:
                client.close()
                client = self._client = None
        if client is None:
            client = self._client = connect(self.url, **self.options)
        try:
            entries = client.deliver_many(items)
        except BaseException:
            self._client = None
            client.close()
            raise
        if _broken(entries):
            self._client = None
            client.close()
        return entries

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.quit()
            except Exception:
                client.close()


class AsyncConnectionSender:
    """``ConnectionSender`` for ``Outbox.arun``: ``aconnect`` and ``await deliver_many``."""

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.options = options
        self._client: AsyncSMTP | None = None

    async def __call__(self, items: Iterator[Any]) -> list[Entry]:
        client = self._client
        if client is not None:
            try:
                alive = (await client.noop())[0] == 250
            except Exception:
                alive = False
            if not alive:
                await client.close()
                client = self._client = None
        if client is None:
            client = self._client = await aconnect(self.url, **self.options)
        try:
            entries = await client.deliver_many(items)
        except BaseException:
            self._client = None
            await client.close()
            raise
        if _broken(entries):
            self._client = None
            await client.close()
        return entries

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.quit()
            except Exception:
                await client.close()
