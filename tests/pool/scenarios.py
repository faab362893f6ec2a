"""The failure table of docs/pool.md, one scenario per row, run against both pools.

Each scenario takes ``make(url, **options)``, which builds a pool behind a blocking
facade (``send``, ``send_many``, ``submit(...).result()``, ``close``), so that the same
code drives ``smtpx.Pool`` and ``smtpx.AsyncPool`` (test_pool_sync.py, test_pool_async.py).
Every retry schedule is tiny and every wait bounded.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import smtpx
from smtpx import DeliveryState, RetrySchedule

from .faultserver import OK, FaultServer

#: Retries in tens of milliseconds: a test never waits for a real schedule.
TINY = RetrySchedule(first=0.05, factor=2.0, cap=0.2, max_retries=3, lifetime=5.0)
#: No test waits for a result longer than this.
LIMIT = 20.0

MESSAGE = b"Subject: pool test\r\n\r\nhello\r\n"
SENDER = "sender@example.org"


class Pending(Protocol):
    def result(self, timeout: float | None = None) -> smtpx.PoolResult: ...


class Facade(Protocol):
    pool: Any

    def send(self, message: Any, sender: Any = None, recipients: Any = None) -> Any: ...
    def submit(self, message: Any, sender: Any = None, recipients: Any = None) -> Pending: ...
    def send_many(self, items: Any, progress: Any = None) -> list[smtpx.PoolResult]: ...
    def close(self) -> list[smtpx.PoolResult]: ...


Make = Callable[..., Facade]


class SyncFacade:
    def __init__(self, url: Any, **options: Any) -> None:
        self.pool = smtpx.Pool(url, policy="compat", **options)

    def send(self, message: Any, sender: Any = None, recipients: Any = None) -> Any:
        return self.submit(message, sender, recipients).result(LIMIT)

    def submit(self, message: Any, sender: Any = None, recipients: Any = None) -> Pending:
        return self.pool.submit(message, sender, recipients)

    def send_many(self, items: Any, progress: Any = None) -> list[smtpx.PoolResult]:
        return self._bounded(lambda: self.pool.send_many(items, progress))

    def close(self) -> list[smtpx.PoolResult]:
        return self._bounded(self.pool.close)

    @staticmethod
    def _bounded(call: Callable[[], Any]) -> Any:
        box: list[Any] = []
        thread = threading.Thread(target=lambda: box.append(call()), daemon=True)
        thread.start()
        thread.join(LIMIT)
        assert box, f"no answer within {LIMIT} s"
        return box[0]


class AsyncFacade:
    """The asyncio pool on an event loop in a thread of its own."""

    def __init__(self, url: Any, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.pool = smtpx.AsyncPool(url, policy="compat", **options)

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(LIMIT)

    def send(self, message: Any, sender: Any = None, recipients: Any = None) -> Any:
        return self._run(self.pool.send(message, sender, recipients))

    def submit(self, message: Any, sender: Any = None, recipients: Any = None) -> Pending:
        async def submit() -> smtpx.PoolResult:
            result: smtpx.PoolResult = await self.pool.submit(message, sender, recipients)
            return result

        # A concurrent future, made now: readable after close() stopped the loop.
        return asyncio.run_coroutine_threadsafe(submit(), self.loop)

    def send_many(self, items: Any, progress: Any = None) -> list[smtpx.PoolResult]:
        return self._run(self.pool.send_many(items, progress))  # type: ignore[no-any-return]

    def close(self) -> list[smtpx.PoolResult]:
        try:
            return self._run(self.pool.close())  # type: ignore[no-any-return]
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(LIMIT)
            self.loop.close()


def free_port() -> int:
    """A loopback port nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def states(result: smtpx.PoolResult) -> dict[str, str]:
    return {address: fate.state.value for address, fate in result.recipients.items()}


# ------------------------------------------------------------------ the table


def deferred_one_recipient(make: Make) -> None:
    """4xx at RCPT for one recipient: only that one is sent again; the accepted one never
    gets a second copy."""
    server = FaultServer(
        rcpt=lambda a, i, seen: b"450 4.2.1 busy, later\r\n" if a == "b@x.org" and not seen else OK
    )
    with server:
        pool = make(server.url, retry=TINY)
        result = pool.send(MESSAGE, SENDER, ["a@x.org", "b@x.org"])
        pool.close()
    assert states(result) == {"a@x.org": "delivered", "b@x.org": "delivered"}
    assert len(result.attempts) == 2
    assert [d.recipients for d in server.deliveries] == [("a@x.org",), ("b@x.org",)]


def too_many_recipients(make: Make) -> None:
    """452 "too many recipients": the rest go in a further transaction at once (not a
    retry: no backoff, no retry counted)."""
    server = FaultServer(
        rcpt=lambda a, i, seen: b"452 4.5.3 Error: too many recipients\r\n" if i >= 2 else OK
    )
    slow = RetrySchedule(first=30.0, max_retries=1)  # a retry would blow the test's time
    addresses = [f"r{i}@x.org" for i in range(5)]
    with server:
        pool = make(server.url, retry=slow)
        started = time.monotonic()
        result = pool.send(MESSAGE, SENDER, addresses)
        elapsed = time.monotonic() - started
        pool.close()
    assert result.ok and result.delivered == addresses
    assert [d.recipients for d in server.deliveries] == [
        ("r0@x.org", "r1@x.org"),
        ("r2@x.org", "r3@x.org"),
        ("r4@x.org",),
    ]
    assert len(result.attempts) == 3 and elapsed < 5


def greeting_421(make: Make) -> None:
    """421 at the greeting: the message waits for its retry, a new connection takes it,
    and the destination's concurrency is halved."""
    server = FaultServer(
        greeting=lambda c: b"421 4.3.2 busy\r\n" if c == 1 else b"220 faults.example\r\n"
    )
    with server:
        pool = make(server.url, retry=TINY, max_connections=4)
        result = pool.send(MESSAGE, SENDER, ["a@x.org"])
        limit = pool.pool._board.destinations[0].concurrency.limit
        pool.close()
    assert result.ok
    first = result.attempts[0]
    assert isinstance(first, smtpx.SMTPConnectError) and first.smtp_code == 421
    assert isinstance(result.attempts[-1], smtpx.SendResult)
    assert limit == 2
    assert server.connections >= 2 and len(server.deliveries) == 1


def closing_421_midsession(make: Make) -> None:
    """421 in the middle of a batch (at the second MAIL): the messages the connection
    left behind are sent at once on a new connection, each exactly once; concurrency
    halved."""
    server = FaultServer(
        mail=lambda c, n: b"421 4.7.0 too many messages, closing\r\n" if c == 1 and n == 2 else OK
    )
    items = [(MESSAGE, SENDER, [f"r{i}@x.org"]) for i in range(6)]
    with server:
        pool = make(server.url, retry=TINY, max_connections=1)
        results = pool.send_many(items)
        limit = pool.pool._board.destinations[0].concurrency.limit
        pool.close()
    assert all(r.ok for r in results)
    assert sorted(r for d in server.deliveries for r in d.recipients) == sorted(
        f"r{i}@x.org" for i in range(6)
    )
    assert any(isinstance(a, smtpx.SMTPNotAttempted) for r in results for a in r.attempts)
    assert server.connections == 2 and limit == 1


def drop_after_content(make: Make) -> None:
    """The connection lost after the content, before the final reply: outcome unknown,
    never sent again; the messages after it in the batch were not attempted and are."""
    server = FaultServer(
        end_of_data=lambda c, n, r: None if r == ("r1@x.org",) else b"250 2.0.0 Ok\r\n"
    )
    items = [(MESSAGE, SENDER, [f"r{i}@x.org"]) for i in range(4)]
    with server:
        pool = make(server.url, retry=TINY, max_connections=1)
        results = pool.send_many(items)
        pool.close()
    assert states(results[1]) == {"r1@x.org": "outcome unknown"}
    assert results[1].unknown == ["r1@x.org"] and not results[1].ok
    assert isinstance(results[1].attempts[0], smtpx.SMTPOutcomeUnknown)
    assert len(results[1].attempts) == 1
    assert len(server.delivered_to("r1@x.org")) == 1  # the server got it once, never again
    assert all(results[i].ok for i in (0, 2, 3))
    assert all(len(server.delivered_to(f"r{i}@x.org")) == 1 for i in (0, 2, 3))


def refused_5xx(make: Make) -> None:
    """5xx at RCPT: that recipient is refused, no retry; the others are delivered."""
    server = FaultServer(
        rcpt=lambda a, i, seen: b"550 5.1.1 no such user\r\n" if a == "gone@x.org" else OK
    )
    with server:
        pool = make(server.url, retry=TINY)
        result = pool.send(MESSAGE, SENDER, ["a@x.org", "gone@x.org"])
        pool.close()
    assert result.delivered == ["a@x.org"] and result.refused == ["gone@x.org"]
    fate = result.recipients["gone@x.org"]
    assert fate.state is DeliveryState.REFUSED and fate.reason.code == 550
    assert len(result.attempts) == 1
    assert [a for _, a, _ in server.rcpts].count("gone@x.org") == 1


def connection_refused(make: Make) -> None:
    """Nobody listening: retried with the schedule, then expired."""
    pool = make(f"smtp://127.0.0.1:{free_port()}", retry=TINY)
    started = time.monotonic()
    result = pool.send(MESSAGE, SENDER, ["a@x.org"])
    pool.close()
    assert result.expired == ["a@x.org"]
    assert len(result.attempts) == TINY.max_retries + 1
    assert all(isinstance(a, ConnectionRefusedError) for a in result.attempts)
    assert time.monotonic() - started < 5


def failover(make: Make) -> None:
    """Several URLs: a connection refused by the first goes to the next; the message is
    delivered by it, without an attempt charged."""
    with FaultServer() as server:
        pool = make([f"smtp://127.0.0.1:{free_port()}", server.url], retry=TINY)
        result = pool.send(MESSAGE, SENDER, ["a@x.org"])
        pool.close()
    assert result.ok and len(result.attempts) == 1
    assert len(server.deliveries) == 1


def idle_drop_noop(make: Make) -> None:
    """The server closed an idle connection: the NOOP before reuse finds it, and the
    message goes on a new connection (one attempt, nothing lost)."""
    server = FaultServer(idle_drop=lambda c, n: c == 1)
    with server:
        pool = make(server.url, retry=TINY, check_after=0.0, max_connections=1)
        first = pool.send(MESSAGE, SENDER, ["a@x.org"])
        time.sleep(0.1)
        second = pool.send(MESSAGE, SENDER, ["b@x.org"])
        pool.close()
    assert first.ok and second.ok
    assert len(second.attempts) == 1  # the dead connection cost no attempt
    assert server.connections == 2


def noop_before_reuse(make: Make) -> None:
    """A connection idle longer than check_after gets a NOOP, then carries the message."""
    with FaultServer() as server:
        pool = make(server.url, check_after=0.05, max_connections=1)
        pool.send(MESSAGE, SENDER, ["a@x.org"])
        time.sleep(0.15)
        result = pool.send(MESSAGE, SENDER, ["b@x.org"])
        pool.close()
    assert result.ok and server.noops == 1 and server.connections == 1


def rate_limit(make: Make) -> None:
    """rate=20 a second, burst 2: ten messages take at least (10 - 2) / 20 s, and no
    window of the server's arrivals is faster than the rate allows."""
    items = [(MESSAGE, SENDER, [f"r{i}@x.org"]) for i in range(10)]
    with FaultServer() as server:
        pool = make(server.url, rate=20.0, burst=2, max_connections=2)
        started = time.monotonic()
        results = pool.send_many(items)
        elapsed = time.monotonic() - started
        pool.close()
    assert all(r.ok for r in results)
    assert elapsed >= 8 / 20 - 0.02
    times = sorted(d.at for d in server.deliveries)
    for k in range(2, len(times)):  # any k + 1 arrivals span at least (k + 1 - burst) / rate
        assert times[k] - times[0] >= (k + 1 - 2) / 20 - 0.03


def recycled_after_max_messages(make: Make) -> None:
    """max_messages=3: a connection is replaced (QUIT) after three messages."""
    items = [(MESSAGE, SENDER, [f"r{i}@x.org"]) for i in range(7)]
    with FaultServer() as server:
        pool = make(server.url, max_messages=3, max_connections=1)
        results = pool.send_many(items)
        pool.close()
    assert all(r.ok for r in results)
    per_conn: dict[int, int] = {}
    for d in server.deliveries:
        per_conn[d.conn] = per_conn.get(d.conn, 0) + 1
    assert sorted(per_conn.values()) == [1, 3, 3]
    assert server.quits == 3  # two recycled, the last at close


def no_retry(make: Make) -> None:
    """retry=None: a deferred recipient is expired after its one attempt."""
    server = FaultServer(rcpt=lambda a, i, seen: b"451 4.3.0 try later\r\n")
    with server:
        pool = make(server.url, retry=None)
        result = pool.send(MESSAGE, SENDER, ["a@x.org"])
        pool.close()
    assert result.expired == ["a@x.org"] and len(result.attempts) == 1
    assert result.recipients["a@x.org"].reason.code == 451


def idle_connections_closed(make: Make) -> None:
    """idle_timeout: an idle connection is closed (QUIT) by the sweep."""
    with FaultServer() as server:
        pool = make(server.url, idle_timeout=0.1)
        pool.send(MESSAGE, SENDER, ["a@x.org"])
        deadline = time.monotonic() + 5
        while server.quits == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        quits = server.quits
        pool.close()
    assert quits == 1


def close_expires_waiting_retries(make: Make) -> None:
    """close() finishes what is in flight; a retry waiting for later is not made: its
    recipient ends expired, and close() reports the message."""
    server = FaultServer(rcpt=lambda a, i, seen: b"450 4.2.1 later\r\n" if a == "b@x.org" else OK)
    with server:
        pool = make(server.url, retry=RetrySchedule(first=60.0))
        pending = pool.submit(MESSAGE, SENDER, ["a@x.org", "b@x.org"])
        deadline = time.monotonic() + 5
        while len(server.rcpts) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        started = time.monotonic()
        reported = pool.close()
        took = time.monotonic() - started
    result = pending.result(LIMIT)
    assert states(result) == {"a@x.org": "delivered", "b@x.org": "expired"}
    assert [r.message_id for r in reported] == [result.message_id]
    assert took < 5


def parallel_connections(make: Make) -> None:
    """send_many spreads the messages over several connections, each message once, and
    reports progress."""
    items = [(MESSAGE, SENDER, [f"r{i}@x.org"]) for i in range(60)]
    seen: list[tuple[int, int]] = []
    server = FaultServer(end_of_data=lambda c, n, r: time.sleep(0.005) or b"250 2.0.0 Ok\r\n")
    with server:
        pool = make(server.url, max_connections=3)
        results = pool.send_many(items, progress=lambda done, total: seen.append((done, total)))
        pool.close()
    assert [r.index for r in results] == list(range(60))
    assert all(r.ok for r in results)
    assert sorted(r for d in server.deliveries for r in d.recipients) == sorted(
        f"r{i}@x.org" for i in range(60)
    )
    assert server.most_open >= 2 and server.connections <= 3
    assert seen == [(i, 60) for i in range(1, 61)]


SCENARIOS = [
    deferred_one_recipient,
    too_many_recipients,
    greeting_421,
    closing_421_midsession,
    drop_after_content,
    refused_5xx,
    connection_refused,
    failover,
    idle_drop_noop,
    noop_before_reuse,
    rate_limit,
    recycled_after_max_messages,
    no_retry,
    idle_connections_closed,
    close_expires_waiting_retries,
    parallel_connections,
]
