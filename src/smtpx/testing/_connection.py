"""aiosmtpd's SMTP and LMTP protocols with fault points: one instance per connection.

Each command goes through ``_smtp_methods``, the table aiosmtpd dispatches from; wrapping
its entries (rather than overriding each ``smtp_*`` method) gives one place where every
command is counted and may meet a fault, and keeps aiosmtpd's own handling untouched
when none fires. The greeting is reached by overriding ``_handle_client``, the content's
final reply through the handler's ``handle_DATA`` (see ``_handler``).
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from ._faults import POINTS, Fault, FaultPlan, Position

__all__ = ["FaultPoints", "FaultyLMTP", "FaultySMTP"]

_Command = Callable[[str | None], Awaitable[None]]


class FaultPoints(SMTP):
    """The fault points of one connection; mixed into aiosmtpd's SMTP and LMTP classes."""

    def __init__(self, *args: Any, faults: FaultPlan, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._faults = faults
        self._counts: Counter[str] = Counter()
        self._message = 0  # MAIL commands so far: which transaction this is
        self._recipient = 0  # RCPT commands since the last MAIL
        self._smtp_methods = {
            name: self._with_faults(name, method) if name in POINTS else method
            for name, method in self._smtp_methods.items()
        }

    def _with_faults(self, name: str, method: _Command) -> _Command:
        # functools.wraps keeps aiosmtpd's __smtp_syntax__, which HELP reads.
        @functools.wraps(method)
        async def command(arg: str | None) -> None:
            fault = await self.reach(name)
            if fault is None or fault.reply is None:
                await method(arg)
                return
            # The fault's reply stands for the command's: aiosmtpd never sees it.
            await self.push(fault.reply)
            if fault.closes:
                await self.hang_up()

        return command

    async def _handle_client(self) -> None:
        fault = await self.reach("GREETING")
        if fault is not None and fault.reply is not None:
            await self.push(fault.reply)
            await self.hang_up()
        await super()._handle_client()

    async def reach(self, point: str) -> Fault | None:
        """Count ``point``; if a fault fires there, wait its delay and carry out a drop.

        Returns the fault (whose reply, if any, the caller gives), or None.
        """
        fault = self._faults.take(point, self._count(point))
        if fault is None:
            return None
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.drop:
            await self.hang_up(abort=True)
        return fault

    def _count(self, point: str) -> Position:
        self._counts[point] += 1
        if point == "MAIL":
            self._message += 1
            self._recipient = 0
        if point == "RCPT":
            self._recipient += 1
            return Position(count=self._recipient, message=self._message)
        return Position(count=self._counts[point], message=self._message)

    async def hang_up(self, *, abort: bool = False) -> NoReturn:
        """End the connection from inside its handler task: close (after what was
        written) or abort (a cut, nothing more sent), then end the task.

        The task is cancelled, as aiosmtpd's QUIT does, and the cancellation is taken
        here, so no caller up the stack (``smtp_DATA`` pushing a status) writes again.
        """
        transport = self.transport
        if transport is not None:
            if abort:
                assert isinstance(transport, asyncio.WriteTransport)
                transport.abort()
            else:
                transport.close()
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)  # where the cancellation lands
        raise asyncio.CancelledError  # pragma: no cover - the line above raises


class FaultySMTP(FaultPoints):
    """aiosmtpd's SMTP with fault points."""


class FaultyLMTP(FaultPoints, LMTP):
    """aiosmtpd's LMTP with fault points."""
