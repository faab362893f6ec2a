"""The outbox on Celery: ``put()`` stores the message, then hands its id to a Celery task
that sends it from whichever worker takes it.  See ``docs/outbox.md`` ("Celery").

Where the state lives: in the outbox's database, as for ``Outbox.run``.  The broker
carries only ``(message id, ticket)``; the content, the recipients' states, the claim
with its lease and the "sending" mark stay in the store, so the rules that make
``Outbox.run`` safe hold unchanged:

- a task sends its message only after claiming it (one ``UPDATE ... RETURNING`` under
  the write lock): two copies of a task (a broker redelivery) cannot both send;
- the "sending" mark is committed before the content goes: a task run again after its
  worker was killed finds the message in flight, waits for the lease to end, and then
  finds it queued (nothing went) or outcome unknown (something may have gone) -- never
  resends content that may have been taken;
- only deferred recipients are retried, on the outbox's ``RetryPolicy``.

Tickets: each message has one current ticket (a counter in the ``celery_dispatch``
table).  A task carries the ticket it was issued with; issuing the next task (a retry
later, a look after a lease) advances the ticket first, by compare-and-set, so however
many copies of a task the broker delivers, one follow-up is issued per step and stale
copies exit at once.  A task published and lost (the process died between the commit
and the publish, or a broker lost it) is found by ``sweep()``.

Celery is imported here only; the rest of the outbox does not need it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from celery import Celery  # type: ignore[import-untyped]
from celery.signals import worker_process_shutdown, worker_shutdown  # type: ignore[import-untyped]

from ._outbox import Outbox
from ._policy import RetryPolicy
from ._senders import ConnectionSender, SendBatch
from ._states import PENDING, State

__all__ = ["CeleryOutbox"]

#: A task scheduled further ahead than this hops: it runs early, finds the message not
#: yet due and issues the next hop.  Redis (and SQS) deliver a task again when it stayed
#: unacknowledged longer than the visibility timeout (kombu's default: one hour), and a
#: worker holds a countdown task unacknowledged until it runs; RabbitMQ closes a channel
#: whose delivery is unacknowledged past its ``consumer_timeout`` (30 minutes by
#: default).  A quarter of an hour stays below both.
DEFAULT_MAX_COUNTDOWN = 900.0
#: A configured visibility timeout caps the countdown at this share of it.
VISIBILITY_SHARE = 0.5
#: One message per task: the lease needs only cover one transaction (renewed as it goes).
DEFAULT_LEASE = 120.0
#: ``sweep()`` re-issues a task for a pending message whose task is this late (or which
#: never got one): long enough for a busy queue to reach it, short enough to notice a lost
#: task within the hour.
DEFAULT_GRACE = 1800.0
#: A task that finds the database locked (another process writing for longer than the
#: busy timeout) tries again this much later, as the same ticket.
LOCKED_RETRY = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS celery_dispatch (
    message INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    ticket INTEGER NOT NULL,
    run_at REAL NOT NULL
)
"""


class _PerProcess(threading.local):
    """A worker's own store connection and SMTP sender.  SQLite connections and sockets
    must not cross a fork (Celery's prefork pool forks after the app is imported), and a
    connection belongs to the thread that opened it (the threads pool)."""

    pid = 0
    outbox: Outbox | None = None
    sender: SendBatch | None = None


class CeleryOutbox:
    """An outbox whose messages are sent by Celery tasks, one task per message.

    *app*: the Celery application (the workers import the same module, so the same
    ``CeleryOutbox`` is built there and its task registered).  *path_or_url*: the
    outbox's database, shared by the producers and every worker (see the guide on where
    it may live).  *url* and *connect_options*: each worker process keeps one connection
    (``ConnectionSender``); or *sender*: a factory called once per worker process that
    returns a sending seam.  *lease*: seconds a task holds its message.  *max_countdown*:
    the furthest ahead a task is scheduled (capped at half the broker's
    ``visibility_timeout`` when one is configured).  *grace*: see ``sweep``.
    *task_name*, *queue*: the task's name and the queue its messages go to.

    Secrets (the SMTP password) stay in the worker's code: a task carries two integers.

    >>> from celery import Celery
    >>> app = Celery("myapp", broker="redis://localhost:6379/0")  # doctest: +SKIP
    >>> mail = CeleryOutbox(app, "/var/spool/myapp/outbox.db",
    ...                     url="smtp+starttls://mail.example.org",
    ...                     username="app", password=os.environ["SMTP_PASSWORD"])
    ... # doctest: +SKIP
    >>> mail.put(message, key="reset-4711")  # stored, then a task is published
    ... # doctest: +SKIP
    17
    """

    def __init__(
        self,
        app: Any,
        path_or_url: str | os.PathLike[str],
        *,
        url: str | None = None,
        sender: Callable[[], SendBatch] | None = None,
        policy: RetryPolicy | None = None,
        lease: float = DEFAULT_LEASE,
        max_countdown: float = DEFAULT_MAX_COUNTDOWN,
        grace: float = DEFAULT_GRACE,
        task_name: str = "smtpx.outbox.send",
        queue: str | None = None,
        clock: Callable[[], float] = time.time,
        **connect_options: Any,
    ) -> None:
        if not isinstance(app, Celery):
            raise TypeError(f"app must be a celery.Celery, not {type(app).__name__}")
        if (url is None) == (sender is None):
            raise ValueError("give either a url or a sender factory")
        if lease <= 0 or max_countdown <= 0 or grace < 0:
            raise ValueError("lease and max_countdown must be positive, grace not negative")
        self.app = app
        self.path = path_or_url
        self.policy = policy if policy is not None else RetryPolicy()
        self.lease = lease
        self.max_countdown = _cap(max_countdown, app)
        self.grace = grace
        self.queue = queue
        self._url = url
        self._sender_factory = sender
        self._connect_options = connect_options
        self._clock = clock
        self._local = _PerProcess()

        # Closures, not bound methods: Celery makes a task's function its ``run``.
        def send(task: Any, message: int, ticket: int) -> str:
            try:
                return self.handle(message, ticket)
            except sqlite3.OperationalError as exc:
                # "database is locked" past the busy timeout: the same ticket, later.
                raise task.retry(exc=exc, countdown=LOCKED_RETRY) from exc

        def sweep() -> int:
            return self.sweep()

        self.task = app.task(
            name=task_name,
            bind=True,
            # This app's only: a shared task would be registered in every app made
            # later, with this outbox's database.
            shared=False,
            # The message is acknowledged after the task returns, and a task whose
            # worker process died goes back to the queue: it runs again, and the store's
            # claim and "sending" mark decide what that run may do.
            acks_late=True,
            reject_on_worker_lost=True,
            ignore_result=True,
            max_retries=None,
        )(send)
        #: Schedule it with Celery beat (e.g. every 5 minutes) as the safety net.
        self.sweep_task = app.task(name=f"{task_name}.sweep", shared=False, ignore_result=True)(
            sweep
        )
        worker_process_shutdown.connect(self._shutdown, weak=False)
        worker_shutdown.connect(self._shutdown, weak=False)

    def __repr__(self) -> str:
        return f"<CeleryOutbox {os.fspath(self.path)!r} task={self.task.name!r}>"

    # ------------------------------------------------------------- putting

    @property
    def outbox(self) -> Outbox:
        """This process's (and thread's) ``Outbox`` on the shared database: for
        ``counts``, ``list``, ``show``, ``cancel``, ``purge``."""
        local = self._local
        if local.pid != os.getpid() or local.outbox is None:
            # After a fork the parent's connection and socket are not ours to close.
            local.pid, local.sender = os.getpid(), None
            local.outbox = Outbox(self.path, policy=self.policy, clock=self._clock)
            with local.outbox._store.transaction() as db:
                db.execute(_SCHEMA)
        return local.outbox

    def put(
        self,
        message: Any,
        sender: str | None = None,
        recipients: Any = None,
        *,
        not_before: float | None = None,
        priority: int = 0,
        key: str | None = None,
    ) -> int:
        """``Outbox.put``, then a task for the message; returns its id.

        The id is returned once the message is on disk; if the process dies before the
        task is published, ``sweep`` publishes it.  The same *key* twice stores one
        message and publishes one task.
        """
        return self.put_many(
            [(message, sender, recipients)], not_before=not_before, priority=priority, keys=[key]
        )[0]

    def put_many(
        self,
        items: Iterable[Any],
        *,
        not_before: float | None = None,
        priority: int = 0,
        keys: Iterable[str | None] | None = None,
    ) -> list[int]:
        """``Outbox.put_many`` (one transaction), then one task per new message."""
        ids = self.outbox.put_many(items, not_before=not_before, priority=priority, keys=keys)
        now = self._clock()
        due = now if not_before is None else max(now, not_before)
        self._issue([(m, None, due) for m in dict.fromkeys(ids)], now)
        return ids

    def retry(self, messages: Sequence[int] | None = None, *, unknown: bool = False) -> int:
        """``Outbox.retry`` (deferred recipients due now; with *unknown*, also those whose
        outcome was unknown: they may get a second copy), and a task for each."""
        changed = self.outbox.retry(messages, unknown=unknown)
        self.sweep(grace=0.0, messages=messages)
        return changed

    # ------------------------------------------------------------- workers

    def handle(self, message: int, ticket: int) -> str:
        """What the task does (called by it with the broker's arguments); returns what it
        found or did: ``stale``, ``gone``, ``held``, ``waiting`` or the message's state
        after an attempt (``delivered``, ``deferred``, ...)."""
        outbox = self.outbox
        store = outbox._store
        now = self._clock()
        store.recover(now, outbox.policy)
        row = store.query(
            "SELECT m.state, m.next_attempt, m.lease_until, d.ticket FROM messages m"
            " LEFT JOIN celery_dispatch d ON d.message = m.id WHERE m.id = ?",
            [message],
        )
        if not row:
            return "gone"  # purged
        state, due, lease_until, current = row[0]
        if current != ticket:
            return "stale"  # another copy of this task already issued the next one
        if state == State.IN_FLIGHT.value:
            # Claimed by another copy of this task, or by a worker that died: look again
            # when its lease is over (recover() then decides: queued or outcome unknown).
            self._issue([(message, ticket, (lease_until or now) + 1.0)], now)
            return "held"
        if State(state) not in PENDING:
            return str(state)
        if due is not None and due > now:
            self._issue([(message, ticket, due)], now)
            return "waiting"
        report = outbox._send_ids([message], self._sender(), self.lease)
        after = store.query("SELECT state, next_attempt FROM messages WHERE id = ?", [message])
        if not after:
            return "gone"
        state, due = after[0]
        if State(state) in PENDING and due is not None:
            self._issue([(message, ticket, due)], self._clock())
        elif state == State.IN_FLIGHT.value and not report.attempts:
            # Claimed between our look and our claim by another copy: as above.
            self._issue([(message, ticket, now + self.lease + 1.0)], self._clock())
        return str(state)

    def sweep(self, grace: float | None = None, messages: Sequence[int] | None = None) -> int:
        """Publish a task for every pending message that has none, or whose task is more
        than *grace* seconds late (default: the ``grace`` given at construction): a
        process that died between ``put``'s commit and the publish, a broker that lost
        its tasks.  Run it now and then (``sweep_task`` from Celery beat, or cron); an
        extra task is harmless (its ticket goes stale).  Returns how many it published."""
        store = self.outbox._store
        now = self._clock()
        store.recover(now, self.policy)
        late = now - (self.grace if grace is None else grace)
        sql = (
            "SELECT m.id, m.next_attempt, d.ticket FROM messages m"
            " LEFT JOIN celery_dispatch d ON d.message = m.id"
            " WHERE m.state IN ('queued', 'deferred')"
            " AND ((d.ticket IS NULL AND m.updated <= ?) OR d.run_at <= ?)"
        )
        params: list[object] = [late, late]
        if messages is not None:
            sql += f" AND m.id IN ({','.join('?' * len(messages))})"
            params += list(messages)
        rows = store.query(sql, params)
        steps = [(m, ticket, now if due is None else due) for m, due, ticket in rows]
        return self._issue(steps, now)

    # ------------------------------------------------------------- inside

    def _sender(self) -> SendBatch:
        self.outbox  # noqa: B018 - resets the per-process state after a fork
        local = self._local
        if local.sender is None:
            if self._sender_factory is not None:
                local.sender = self._sender_factory()
            else:
                assert self._url is not None
                local.sender = ConnectionSender(self._url, **self._connect_options)
        return local.sender

    def _issue(self, steps: Sequence[tuple[int, int | None, float]], now: float) -> int:
        """Advance each message's ticket (compare-and-set on *ticket*; None: the first)
        and publish a task with the new one, to run at the step's time (or a hop towards
        it).  The ticket is committed before the publish: a task never arrives before
        its ticket, and one lost in between is the sweep's to find."""
        if not steps:
            return 0
        issued: list[tuple[int, int, float]] = []
        with self.outbox._store.transaction() as db:
            for message, ticket, at in steps:
                countdown = min(max(0.0, at - now), self.max_countdown)
                if ticket is None:
                    row = db.execute(
                        "INSERT INTO celery_dispatch (message, ticket, run_at) VALUES (?, 1, ?)"
                        " ON CONFLICT (message) DO NOTHING RETURNING ticket",
                        (message, now + countdown),
                    ).fetchone()
                else:
                    row = db.execute(
                        "UPDATE celery_dispatch SET ticket = ticket + 1, run_at = ?"
                        " WHERE message = ? AND ticket = ? RETURNING ticket",
                        (now + countdown, message, ticket),
                    ).fetchone()
                if row is not None:
                    issued.append((message, row[0], countdown))
        for message, ticket, countdown in issued:
            self._publish(message, ticket, countdown)
        return len(issued)

    def _publish(self, message: int, ticket: int, countdown: float) -> None:
        options: dict[str, Any] = {} if self.queue is None else {"queue": self.queue}
        self.task.apply_async((message, ticket), countdown=countdown, **options)

    def _shutdown(self, *args: Any, **kwargs: Any) -> None:
        """A worker stops: QUIT on this process's connection (not an inherited one)."""
        local = self._local
        sender, local.sender = local.sender, None
        close = getattr(sender, "close", None)
        if local.pid == os.getpid() and close is not None:
            close()


def _cap(max_countdown: float, app: Any) -> float:
    """*max_countdown*, at most half the broker's configured visibility timeout."""
    options = app.conf.broker_transport_options or {}
    visibility = options.get("visibility_timeout")
    if visibility is not None:
        return min(max_countdown, float(visibility) * VISIBILITY_SHARE)
    return max_countdown
