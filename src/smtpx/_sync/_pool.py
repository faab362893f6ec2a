"""``smtpx.Pool``: many messages over a few reused connections, from threads.

The decisions (which connection, when to open, recycle or check one, when to retry which
recipients, how fast) are made by ``smtpx._pool``; this module runs them with threads:
one worker per allowed connection, a condition variable for the waits (a send falling
due, a connection coming back, an idle one going stale), ``time.monotonic`` as the clock.
A worker that holds a connection feeds it every send that is due, as one ``deliver_many``
batch (pipelined across messages), until none is due or the connection's budget of
messages is spent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from types import TracebackType
from typing import Any

from .._exceptions import SMTPOutcomeUnknown, SMTPServerDisconnected
from .._pool import Action, Limits, PoolPolicy, RetrySchedule, Send, Slot
from .._pool._board import Board, Lease
from .._pool._job import NO_RETRY, Job, PoolResult, envelope_recipients, retained
from .._security import Target, prepare_options
from ._client import SMTP
from ._connect import open_target

__all__ = ["AGAIN", "Pool", "pool_items", "reindexed"]

_DEFAULT_RETRY = RetrySchedule()


def pool_items(items: Iterable[Any]) -> list[tuple[Any, Any, Any]]:
    """``send_many``'s items as ``(message, sender, recipients)`` (``deliver_many``'s
    shapes: a message, or such a tuple)."""
    out = []
    for item in items:
        if isinstance(item, tuple):
            if len(item) != 3:
                raise ValueError("an item is a message or a (message, sender, recipients) tuple")
            out.append(item)
        else:
            out.append((item, None, None))
    return out


def setup(
    url: str | Iterable[str],
    limits: Limits,
    rate: float | None,
    burst: int,
    retry: RetrySchedule | None,
    window: int | None,
    connect_options: dict[str, Any],
) -> tuple[list[Target], dict[str, Any], RetrySchedule, Board]:
    """What both pools make of their arguments, checked before any connection: each
    URL's ``Target``, the options every connection opens with, the retry schedule, and
    the board of pure decisions."""
    urls = [url] if isinstance(url, str) else list(url)
    if not urls or not all(isinstance(u, str) for u in urls):
        raise ValueError("url must be a URL or a non-empty list of URLs")
    if window is not None and window < 1:
        raise ValueError(f"window must be at least 1: {window!r}")
    prepared = [prepare_options(u, connect_options) for u in urls]
    schedule = NO_RETRY if retry is None else retry
    policy = PoolPolicy(limits=limits, rate=rate, burst=burst, retry=schedule)
    targets = [target for target, _ in prepared]
    return targets, prepared[0][1], schedule, Board([policy] * len(urls))


class _Again:
    """``_lease`` found stale connections to close before it may wait: close them (not
    under the lock: QUIT takes a round trip), then look again."""


AGAIN = _Again()


class Pool:
    """A pool of SMTP connections to one destination (or several, in failover order).

    *url*: what ``smtpx.connect`` takes, or a list of them: messages go to the first,
    and to the next when a connection to it cannot be opened.  The other keyword options
    (``username``, ``password``, ``token``, ``policy``, ``context``, ``cafile``, ...,
    ``timeout``, ``local_hostname``) are ``connect``'s, checked here before any I/O.

    Connections: at most *max_connections* at once (fewer while the server signals
    overload: ``421``, ``454``, ``451 4.7.x``, refused connections), opened on demand,
    reused, replaced after *max_messages* or *max_age* seconds, closed after
    *idle_timeout* seconds idle, checked with NOOP before reuse after *check_after*
    seconds idle.  *rate*: messages a second per destination, *burst* back to back.
    *retry*: the ``RetrySchedule`` of deferred recipients (None: no retry, a deferred
    recipient is expired after its attempt).  *window*: ``deliver_many``'s window.

    >>> url = "smtp+starttls://alice:s3cret@mail.example.org"
    >>> with smtpx.Pool(url) as pool:  # doctest: +SKIP
    ...     result = pool.send(message)
    ...     result.delivered, result.refused, result.expired
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
        self._cond = threading.Condition()
        self._clients: dict[Slot, SMTP] = {}
        self._futures: dict[Job, Future[PoolResult]] = {}
        self._workers: list[threading.Thread] = []
        self._count = 0
        self._closed = False
        self._opening = 0  # connections being opened (leased, not yet sending)

    # ------------------------------------------------------------------ public

    def submit(
        self, message: Any, sender: str | None = None, recipients: Any = None
    ) -> Future[PoolResult]:
        """Queue *message* (anything ``deliver()`` takes) and return a future of its
        ``PoolResult``.  A file or an iterable of bytes is read now (a retry sends the
        message again).  Bad arguments raise here."""
        found = envelope_recipients(message, recipients)
        kept = retained(message)
        future: Future[PoolResult] = Future()
        future.set_running_or_notify_cancel()
        with self._cond:
            if self._closed:
                raise RuntimeError("the pool is closed")
            job = Job(self._count, kept, sender, found, time.monotonic(), self._schedule)
            self._count += 1
            self._futures[job] = future
            self._board.add(job)
            self._start_workers()
            self._cond.notify_all()
        return future

    def send(self, message: Any, sender: str | None = None, recipients: Any = None) -> PoolResult:
        """Send *message* and return its ``PoolResult`` once every recipient is final
        (delivered, refused, expired after its retries, failed, or outcome unknown)."""
        return self.submit(message, sender, recipients).result()

    def send_many(
        self,
        items: Iterable[Any],
        progress: Callable[[int, int], object] | None = None,
    ) -> list[PoolResult]:
        """Send every item (a message, or ``(message, sender, recipients)``) over the
        pool's connections, several in parallel, each as ``deliver_many`` batches.
        Returns one ``PoolResult`` per item, in order (``index`` is the position);
        ``progress(done, total)`` is called in this thread as messages finish."""
        entries = pool_items(items)
        futures = []
        for message, sender, recipients in entries:
            future = self.submit(message, sender, recipients)
            futures.append(future)
        total = len(futures)
        finished = threading.Semaphore(0)
        for future in futures:
            future.add_done_callback(lambda _f: finished.release())
        results: list[PoolResult] = []
        for done in range(1, total + 1):
            finished.acquire()
            if progress is not None:
                progress(done, total)
        for index, future in enumerate(futures):
            result = future.result()
            results.append(reindexed(result, index))
        return results

    def close(self) -> list[PoolResult]:
        """Finish the work in flight and close every connection (QUIT).

        Sends due now are made; retries waiting for a later moment are not: their
        recipients end ``expired``.  Returns the results of the messages still in the
        pool when ``close`` was called that did not end with every recipient delivered
        (they are also in their futures).  Closing twice does nothing more.
        """
        with self._cond:
            if self._closed and not self._workers:
                return []
            self._closed = True
            pending = list(self._futures.values())
            finished = self._board.close(time.monotonic())
            workers = list(self._workers)
            self._cond.notify_all()
        self._resolve(finished)
        for worker in workers:
            worker.join()
        with self._cond:
            self._workers.clear()
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            _quit(client)
        results = [f.result() for f in pending]
        return [r for r in results if not r.ok]

    def __enter__(self) -> Pool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        hosts = ", ".join(t.endpoint.host for t in self._targets)
        state = "closed" if self._closed else f"{len(self._clients)} connection(s)"
        return f"<Pool {hosts}: {state}>"

    # ----------------------------------------------------------------- workers

    def _start_workers(self) -> None:
        wanted = self._board.destinations[0].policy.limits.max_connections
        while len(self._workers) < wanted:
            worker = threading.Thread(
                target=self._work, name=f"smtpx-pool-{len(self._workers) + 1}", daemon=True
            )
            self._workers.append(worker)
            worker.start()

    def _work(self) -> None:
        while True:
            retire: list[SMTP] = []
            with self._cond:
                lease = self._lease(retire)
            for client in retire:
                _quit(client)
            if lease is None:
                return
            if isinstance(lease, _Again):
                continue
            if isinstance(lease, Lease):
                self._run(lease)
            else:
                job, send, error = lease
                self._settle([(job, send, error)], None)

    def _lease(self, retire: list[SMTP]) -> Lease | tuple[Job, Send, BaseException] | _Again | None:
        """Under the lock: wait until a send is due and a connection is free for it.

        When every destination is down and none has a connection open, the earliest due
        send is returned with the failure to settle it with.  None: the pool is closed
        and empty."""
        while True:
            now = time.monotonic()
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
                return AGAIN  # close the stale connections first (not under the lock)
            self._cond.wait(None if pick.wake is None else max(0.0, pick.wake - now) + 0.001)

    def _run(self, lease: Lease) -> None:
        """Send what is due on the leased connection (opening or checking it first)."""
        slots = self._board.destinations[lease.dest].slots
        client: SMTP | None
        if lease.action is Action.OPEN:
            target = self._targets[lease.dest]
            try:
                client = open_target(target, **self._open_options)
            except Exception as exc:
                with self._cond:
                    self._opening -= 1
                    slots.checkin(lease.slot, time.monotonic(), usable=False)
                    self._board.connect_failed(lease.dest, exc, time.monotonic())
                    self._cond.notify_all()
                return
            with self._cond:
                self._opening -= 1
                self._clients[lease.slot] = client
        else:
            with self._cond:
                client = self._clients[lease.slot]
            if lease.check and not _healthy(client):
                # The server closed the idle connection (or no longer answers): open
                # another one; nothing was sent on this one.
                with self._cond:
                    self._clients.pop(lease.slot, None)
                    slots.checkin(lease.slot, time.monotonic(), usable=False)
                    self._cond.notify_all()
                client.close()
                return

        taken: list[tuple[Job, Send]] = []
        budget = slots.budget(lease.slot)
        with self._cond:
            last = self._board.spends_budget(lease.dest, budget, time.monotonic())
        entries: list[Any]
        try:
            entries = client.deliver_many(
                self._items(lease, taken, budget), window=self._window, quit=last
            )
        except Exception as exc:  # deliver_many reports per item; this is a bug guard
            lost = SMTPOutcomeUnknown(f"the batch ended with an error: {exc}")
            lost.__cause__ = exc
            entries = [lost] * len(taken)
            client.close()
        usable = client.sock is not None and not any(
            isinstance(e, SMTPServerDisconnected | OSError) for e in entries
        )
        self._settle(
            [(job, send, entry) for (job, send), entry in zip(taken, entries, strict=True)],
            lease.dest,
            lease.slot,
            usable,
        )

    def _items(
        self, lease: Lease, taken: list[tuple[Job, Send]], budget: int | None
    ) -> Iterable[Any]:
        """The batch for one connection, pulled as ``deliver_many`` goes: every send due,
        within the connection's budget and the destination's rate."""
        bucket = self._board.destinations[lease.dest].bucket
        while budget is None or len(taken) < budget:
            with self._cond:
                now = time.monotonic()
                if not self._board.due(now):
                    return
                if taken and bucket.available(now) < 1:
                    return  # the rate: the next message waits for a token, not the batch
                pair = self._board.take(now)
                assert pair is not None
                job, send = pair
                item = job.item(send)
                taken.append(pair)
                wait = bucket.take(now)
            if wait > 0:
                time.sleep(wait)
            yield item

    def _settle(
        self,
        outcomes: list[tuple[Job, Send, Any]],
        dest: int | None,
        slot: Slot | None = None,
        usable: bool = True,
    ) -> None:
        done: list[Job] = []
        close: SMTP | None = None
        with self._cond:
            now = time.monotonic()
            for job, send, outcome in outcomes:
                if self._board.settle(job, send, outcome, now, dest):
                    done.append(job)
            if slot is not None and dest is not None:
                slots = self._board.destinations[dest].slots
                if slots.checkin(slot, now, messages=len(outcomes), usable=usable) is not None:
                    close = self._clients.pop(slot, None)
            self._cond.notify_all()
        if close is not None:
            _quit(close)
        self._resolve(done)

    def _resolve(self, jobs: list[Job]) -> None:
        for job in jobs:
            with self._cond:
                future = self._futures.pop(job)
            future.set_result(job.result())


def reindexed(result: PoolResult, index: int) -> PoolResult:
    if result.index == index:
        return result
    message_id = result.message_id if isinstance(result.message_id, str) else index
    return PoolResult(message_id, result.recipients, result.attempts, index)


def _healthy(client: SMTP) -> bool:
    """NOOP before reusing a connection idle for a while (RFC 5321 section 4.1.1.9)."""
    try:
        code, _ = client.noop()
    except Exception:
        return False
    return code == 250


def _quit(client: SMTP) -> None:
    """QUIT politely; a connection already gone is just closed."""
    try:
        if client.sock is not None:
            client.quit()
    except Exception:  # noqa: S110 - the connection is closed below either way
        pass
    finally:
        client.close()
