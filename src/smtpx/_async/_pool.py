"""``smtpx.AsyncPool``: ``smtpx.Pool`` for asyncio (see ``smtpx._sync._pool``).

The same decisions from ``smtpx._pool``, run with tasks: one worker task per allowed
connection, a signal (an ``asyncio.Event`` per round of changes) for the waits, the
loop's clock.  The event loop's one thread is the lock: the bookkeeping is done between
``await``s, never across one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from .._exceptions import SMTPOutcomeUnknown, SMTPServerDisconnected
from .._pool import Action, Limits, RetrySchedule, Send, Slot
from .._pool._board import Lease
from .._pool._job import Job, PoolResult, envelope_recipients, retained
from .._sync._pool import AGAIN, _Again, pool_items, reindexed, setup
from ._client import AsyncSMTP
from ._connect import open_target

__all__ = ["AsyncPool"]

_DEFAULT_RETRY = RetrySchedule()


class _Signal:
    """Wakes every task waiting for a change (a connection back, a message added)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify_all(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float | None) -> None:
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            pass


class AsyncPool:
    """``smtpx.Pool`` for asyncio: the same arguments; ``send``, ``send_many`` and
    ``close`` are coroutines, ``submit`` returns an ``asyncio.Future``.  Use it from one
    event loop (the one it first sends on).

    >>> url = "smtps://alice:s3cret@mail.example.org"
    >>> async with smtpx.AsyncPool(url) as pool:  # doctest: +SKIP
    ...     result = await pool.send(message)
    """

    def __init__(
        self,
        url: str | Iterable[str],
        *,
        max_connections: int = 4,
        max_messages: int | None = 100,
        max_age: float | None = 300.0,
        idle_timeout: float = 30.0,
        check_after: float = 10.0,
        rate: float | None = None,
        burst: int = 1,
        retry: RetrySchedule | None = _DEFAULT_RETRY,
        window: int | None = None,
        **connect_options: Any,
    ) -> None:
        limits = Limits(max_connections, max_messages, max_age, idle_timeout, check_after)
        self._targets, self._open_options, self._schedule, self._board = setup(
            url, limits, rate, burst, retry, window, connect_options
        )
        self._window = window
        self._signal: _Signal | None = None
        self._clients: dict[Slot, AsyncSMTP] = {}
        self._futures: dict[Job, asyncio.Future[PoolResult]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._count = 0
        self._closed = False
        self._opening = 0  # connections being opened (leased, not yet sending)
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ public

    def submit(
        self, message: Any, sender: str | None = None, recipients: Any = None
    ) -> asyncio.Future[PoolResult]:
        """Queue *message* and return a future of its ``PoolResult`` (call it from the
        running loop).  Bad arguments raise here."""
        found = envelope_recipients(message, recipients)
        kept = retained(message)
        if self._closed:
            raise RuntimeError("the pool is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._signal = _Signal()
        elif loop is not self._loop:
            raise RuntimeError("an AsyncPool is used from one event loop")
        future: asyncio.Future[PoolResult] = loop.create_future()
        job = Job(self._count, kept, sender, found, loop.time(), self._schedule)
        self._count += 1
        self._futures[job] = future
        self._board.add(job)
        self._start_workers()
        self._notify()
        return future

    async def send(
        self, message: Any, sender: str | None = None, recipients: Any = None
    ) -> PoolResult:
        """Send *message*; its ``PoolResult`` once every recipient is final."""
        return await self.submit(message, sender, recipients)

    async def send_many(
        self,
        items: Iterable[Any],
        progress: Callable[[int, int], object] | None = None,
    ) -> list[PoolResult]:
        """Send every item over the pool's connections (see ``Pool.send_many``)."""
        futures = [self.submit(m, s, r) for m, s, r in pool_items(items)]
        total = len(futures)
        for done, next_done in enumerate(asyncio.as_completed(futures), 1):
            await next_done
            if progress is not None:
                progress(done, total)
        return [reindexed(f.result(), i) for i, f in enumerate(futures)]

    async def close(self) -> list[PoolResult]:
        """Finish the work in flight and close every connection (see ``Pool.close``)."""
        if self._closed and not self._workers:
            return []
        self._closed = True
        pending = list(self._futures.values())
        self._resolve(self._board.close(self._now()))
        self._notify()
        workers, self._workers = self._workers, []
        if workers:
            await asyncio.gather(*workers)
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await _quit(client)
        results = [f.result() for f in pending]
        return [r for r in results if not r.ok]

    async def __aenter__(self) -> AsyncPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        hosts = ", ".join(t.endpoint.host for t in self._targets)
        state = "closed" if self._closed else f"{len(self._clients)} connection(s)"
        return f"<AsyncPool {hosts}: {state}>"

    # ----------------------------------------------------------------- workers

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _notify(self) -> None:
        if self._signal is not None:
            self._signal.notify_all()

    def _start_workers(self) -> None:
        wanted = self._board.destinations[0].policy.limits.max_connections
        while len(self._workers) < wanted:
            self._workers.append(asyncio.create_task(self._work()))

    async def _work(self) -> None:
        while True:
            retire: list[AsyncSMTP] = []
            lease = await self._lease(retire)
            for client in retire:
                await _quit(client)
            if lease is None:
                return
            if isinstance(lease, _Again):
                continue
            if isinstance(lease, Lease):
                await self._run(lease)
            else:
                job, send, error = lease
                await self._settle([(job, send, error)], None)

    async def _lease(
        self, retire: list[AsyncSMTP]
    ) -> Lease | tuple[Job, Send, BaseException] | _Again | None:
        """Wait until a send is due and a connection is free (see ``Pool._lease``)."""
        assert self._signal is not None
        while True:
            now = self._now()
            pick = self._board.pick(now, closed=self._closed, opening=self._opening)
            retire.extend(self._clients.pop(slot) for slot in pick.retire)
            if pick.done:
                return None
            if pick.lease is not None:
                self._opening += pick.lease.action is Action.OPEN
                return pick.lease
            if pick.charged is not None:
                return pick.charged
            if retire:
                return AGAIN  # close the stale connections first, then look again
            await self._signal.wait(
                None if pick.wake is None else max(0.0, pick.wake - now) + 0.001
            )

    async def _run(self, lease: Lease) -> None:
        slots = self._board.destinations[lease.dest].slots
        if lease.action is Action.OPEN:
            try:
                client = await open_target(self._targets[lease.dest], **self._open_options)
            except Exception as exc:
                self._opening -= 1
                slots.checkin(lease.slot, self._now(), usable=False)
                self._board.connect_failed(lease.dest, exc, self._now())
                self._notify()
                return
            self._opening -= 1
            self._clients[lease.slot] = client
        else:
            client = self._clients[lease.slot]
            if lease.check and not await _healthy(client):
                self._clients.pop(lease.slot, None)
                slots.checkin(lease.slot, self._now(), usable=False)
                self._notify()
                client._abort()
                return

        taken: list[tuple[Job, Send]] = []
        bucket = self._board.destinations[lease.dest].bucket
        last = self._board.spends_budget(lease.dest, slots.budget(lease.slot), self._now())
        first = self._board.take(self._now())
        if first is None:
            slots.checkin(lease.slot, self._now())
            self._notify()
            return
        first_item = first[0].item(first[1])
        taken.append(first)
        wait = bucket.take(self._now())
        if wait > 0:
            await asyncio.sleep(wait)
        budget = slots.budget(lease.slot)

        def items() -> Iterator[Any]:
            yield first_item
            while budget is None or len(taken) < budget:
                now = self._now()
                if not self._board.due(now) or bucket.available(now) < 1:
                    return
                pair = self._board.take(now)
                assert pair is not None
                item = pair[0].item(pair[1])
                taken.append(pair)
                bucket.take(now)
                yield item

        entries: list[Any]
        try:
            entries = await client.deliver_many(items(), window=self._window, quit=last)
        except Exception as exc:  # deliver_many reports per item; this is a bug guard
            lost = SMTPOutcomeUnknown(f"the batch ended with an error: {exc}")
            lost.__cause__ = exc
            entries = [lost] * len(taken)
            client._abort()
        usable = client.sock is not None and not any(
            isinstance(e, SMTPServerDisconnected | OSError) for e in entries
        )
        await self._settle(
            [(job, send, entry) for (job, send), entry in zip(taken, entries, strict=True)],
            lease.dest,
            lease.slot,
            usable,
        )

    async def _settle(
        self,
        outcomes: list[tuple[Job, Send, Any]],
        dest: int | None,
        slot: Slot | None = None,
        usable: bool = True,
    ) -> None:
        done: list[Job] = []
        close: AsyncSMTP | None = None
        now = self._now()
        for job, send, outcome in outcomes:
            if self._board.settle(job, send, outcome, now, dest):
                done.append(job)
        if slot is not None and dest is not None:
            slots = self._board.destinations[dest].slots
            if slots.checkin(slot, now, messages=len(outcomes), usable=usable) is not None:
                close = self._clients.pop(slot, None)
        self._notify()
        self._resolve(done)
        if close is not None:
            await _quit(close)

    def _resolve(self, jobs: list[Job]) -> None:
        for job in jobs:
            future = self._futures.pop(job)
            if not future.done():
                future.set_result(job.result())


async def _healthy(client: AsyncSMTP) -> bool:
    """NOOP before reusing a connection idle for a while (RFC 5321 section 4.1.1.9)."""
    try:
        code, _ = await client.noop()
    except Exception:
        return False
    return code == 250


async def _quit(client: AsyncSMTP) -> None:
    """QUIT politely; a connection already gone is just closed."""
    try:
        if client.sock is not None:
            await client.quit()
    except Exception:  # noqa: S110 - the connection is closed below either way
        pass
    finally:
        client._abort()
