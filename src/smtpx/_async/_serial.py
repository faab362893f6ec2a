"""One task at a time on a shared client (the lock behind ``AsyncSMTP``'s methods)."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

__all__ = ["NESTED", "Nested", "Serial"]


class _Locked(Protocol):
    _lock: asyncio.Lock
    _owner: asyncio.Task[Any] | None


class Nested:
    """The context of a call made by the task that already holds the client: nothing."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *args: object) -> None:
        return None


NESTED = Nested()


class Serial:
    """Hold the client's lock for the outermost call of a task."""

    __slots__ = ("client", "task")

    def __init__(self, client: _Locked, task: asyncio.Task[Any] | None) -> None:
        self.client = client
        self.task = task

    async def __aenter__(self) -> None:
        await self.client._lock.acquire()
        self.client._owner = self.task

    async def __aexit__(self, *args: object) -> None:
        self.client._owner = None
        self.client._lock.release()
