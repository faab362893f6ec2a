"""``smtpx outbox PATH ACTION``: the durable outbox's status, list, show, retry, cancel,
purge and worker (the commands live with the outbox, in ``smtpx.outbox._commands``)."""

from __future__ import annotations

from ..outbox._commands import register, run

__all__ = ["register", "run"]
