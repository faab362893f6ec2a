"""A Django email backend that puts messages into the outbox instead of sending them.

``send_mail()`` and ``EmailMessage.send()`` then return as soon as the message is safe on
disk; outbox workers (``Outbox.run``, or Celery with ``CeleryOutbox``) send it.  Inside a
database transaction the put waits for the commit (``transaction.on_commit``): a message
about an order that was rolled back is never queued, and one about a committed order is
queued once the order is really there.

Settings::

    EMAIL_BACKEND = "smtpx.outbox._django.OutboxEmailBackend"
    SMTPX_OUTBOX = "/var/spool/myapp/outbox.db"   # a path, sqlite:///path, or an object
                                                  # with put_many (Outbox, CeleryOutbox)
    SMTPX_OUTBOX_DATABASE = "default"             # whose transaction to wait for

Django is imported here only.
"""

from __future__ import annotations

import email.utils
import os
import re
import threading
from collections.abc import Sequence
from typing import Any

from django import conf  # conf.settings read when used: inspecting a module-level lazy

# `settings` (doctest does) fails before Django is configured.
from django.core.exceptions import ImproperlyConfigured
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction

from ._outbox import Outbox, prepare

__all__ = ["OutboxEmailBackend"]

Item = tuple[bytes, str, list[str]]
_FORBIDDEN = re.compile(r"[\r\n\0]")


class _Outboxes(threading.local):
    """One ``Outbox`` per file, per thread and process: Django makes a backend for each
    ``send_mail``, and a SQLite connection belongs to the thread that opened it."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.by_path: dict[str, Outbox] = {}

    def get(self, path: str) -> Outbox:
        if self.pid != os.getpid():  # forked: the parent's connections are not ours
            self.pid, self.by_path = os.getpid(), {}
        outbox = self.by_path.get(path)
        if outbox is None:
            outbox = self.by_path[path] = Outbox(path)
        return outbox


_outboxes = _Outboxes()


class OutboxEmailBackend(BaseEmailBackend):  # type: ignore[misc]
    """Puts each ``EmailMessage`` into the outbox; ``send_messages`` returns how many.

    *outbox*: an ``Outbox``, ``CeleryOutbox``, anything with ``put_many``, or a path;
    default: the ``SMTPX_OUTBOX`` setting.  *using*: the database alias whose
    transaction the put waits for (``SMTPX_OUTBOX_DATABASE``, default ``"default"``).

    The message is checked and turned into bytes at once (a bad address raises here,
    in the caller's code, unless *fail_silently*); only the put waits for the commit.

    >>> from django.core.mail import send_mail
    >>> with transaction.atomic():  # doctest: +SKIP
    ...     order.save()
    ...     send_mail("Your order", "Thanks!", "shop@example.org", ["bob@example.org"])
    1
    """

    def __init__(
        self,
        fail_silently: bool = False,
        *,
        outbox: Any = None,
        using: str | None = None,
        **kwargs: Any,
    ) -> None:
        # fail_silently is this backend's own (Django 6.1 leaves it to the subclass).
        super().__init__(**kwargs)
        self.fail_silently = fail_silently
        self._outbox = (
            outbox if outbox is not None else getattr(conf.settings, "SMTPX_OUTBOX", None)
        )
        if self._outbox is None:
            raise ImproperlyConfigured(
                "OutboxEmailBackend needs the SMTPX_OUTBOX setting (the outbox's file)"
            )
        self.using = using or getattr(conf.settings, "SMTPX_OUTBOX_DATABASE", "default")

    def _target(self) -> Any:
        target = self._outbox
        if isinstance(target, (str, os.PathLike)):
            return _outboxes.get(os.fspath(target))
        if not callable(getattr(target, "put_many", None)):
            raise ImproperlyConfigured(
                f"SMTPX_OUTBOX must be a path or have put_many, not {type(target).__name__}"
            )
        return target

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        if not email_messages:
            return 0
        items: list[Item] = []
        try:
            for message in email_messages:
                item = _item(message)
                if item is not None:
                    items.append(item)
            target = self._target()
        except Exception:
            if not self.fail_silently:
                raise
            return 0
        if not items:
            return 0

        def put() -> None:
            target.put_many(items)

        # Outside a transaction (autocommit) Django runs it at once; inside one, after
        # the outermost commit, and never if it (or the savepoint around it) rolls back.
        # With fail_silently a failing put is logged by Django instead of raised.
        transaction.on_commit(put, using=self.using, robust=self.fail_silently)
        return len(items)


def _item(message: Any) -> Item | None:
    """The bytes Django's SMTP backend would send, and the envelope, checked now."""
    recipients = message.recipients()  # to + cc + bcc; Bcc is not in the headers
    if not recipients:
        return None
    sender = _address(message.from_email)
    addresses = [_address(r) for r in recipients]
    # The outbox's own flattening (CRLF, SMTPUTF8 when an address needs it) and checks
    # (CR, LF or NUL in an address) run now: the caller sees an error, not the commit.
    content = prepare(
        message.message(), sender, addresses, key=None, priority=0, not_before=None
    ).content
    return content, sender, addresses


def _address(formatted: str) -> str:
    """The bare address of ``"Name <local@domain>"`` (the envelope has no names)."""
    if not isinstance(formatted, str) or _FORBIDDEN.search(formatted):
        # Refused before parsing: a line break must never reach a command (RFC 5321
        # section 2.3.8) nor be folded away by the parser into another address.
        raise ValueError(f"an address contains CR, LF or NUL, or is not a str: {formatted!r}")
    _, address = email.utils.parseaddr(formatted)
    if not address:
        raise ValueError(f"not an email address: {formatted!r}")
    return address
