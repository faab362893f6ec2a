"""The pool's bookkeeping, shared by both drivers: the messages in the pool, the sends
waiting for their moment, and the destinations (URLs) with their decisions.

The drivers hold one lock around it (a ``threading.Condition``, or the event loop's one
thread) and do the I/O and the waiting; every decision is made here, on the caller's
clock:

- ``due(now)`` / ``take(now)``: the sends due now, earliest first (a retry waits in the
  heap until its moment);
- ``settle(job, send, outcome, now, dest)``: one attempt's outcome fed to the destination
  (concurrency feedback) and to the message's plan; the sends it leaves go back in the
  heap;
- ``choose(now)``: the destination for a new connection: the first URL not marked down
  (a connection to it failed a moment ago), so that messages go to the first relay and
  fail over to the next;
- ``close(now)``: no new retry from now: what waits for a later moment is expired.

>>> board = Board([PoolPolicy()])
>>> job = Job(0, b"hi\\r\\n", "a@example.org", ["b@example.org"], now=0.0)
>>> board.add(job)
>>> board.due(now=0.0), board.open_jobs
(True, 1)
>>> taken = board.take(now=0.0)
>>> taken[1].recipients
('b@example.org',)
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Sequence

from ._fates import Outcome, Send
from ._job import Job
from ._policy import Destination, PoolPolicy
from ._slots import Action, Slot

__all__ = ["DOWN_HOLD", "Board", "Lease", "Pick"]

#: Seconds a destination whose connection failed is passed over for the next URL (and,
#: with a single URL, during which due messages are charged the failure instead of
#: connecting again at once): long enough not to hammer a server that refuses, short
#: enough that a restarted relay is used again within a few seconds.
DOWN_HOLD = 5.0


class Lease:
    """A connection a driver may use now: its destination, its slot, and what to do first
    (open it, or NOOP it when *check*)."""

    __slots__ = ("action", "check", "dest", "slot")

    def __init__(self, dest: int, slot: Slot, action: Action, check: bool) -> None:
        self.dest, self.slot, self.action, self.check = dest, slot, action, check


class Pick:
    """What ``Board.pick`` decided: a *lease* to use, or a send *charged* with the failure of
    every destination, or *done* (the pool is closed and empty), or nothing yet (look again
    at *wake*); and, in every case, the stale idle connections to *retire* first."""

    __slots__ = ("charged", "done", "lease", "retire", "wake")

    def __init__(
        self,
        retire: list[Slot],
        *,
        lease: Lease | None = None,
        charged: tuple[Job, Send, BaseException] | None = None,
        done: bool = False,
        wake: float | None = None,
    ) -> None:
        self.retire, self.lease, self.charged, self.done, self.wake = (
            retire,
            lease,
            charged,
            done,
            wake,
        )


class Board:
    """Messages, sends and destinations of one pool (see the module docstring)."""

    def __init__(
        self,
        policies: Sequence[PoolPolicy],
        rand: Callable[[], float] = random.random,
        down_hold: float = DOWN_HOLD,
    ) -> None:
        if not policies:
            raise ValueError("a pool needs at least one URL")
        self.destinations = [Destination(p) for p in policies]
        self.rand = rand
        # Never longer than the first retry's delay: a tiny schedule (tests, a caller in a
        # hurry) is not held back by the failover's own wait.
        self.down_hold = min(down_hold, policies[0].retry.first)
        self.closing = False
        self.open_jobs = 0
        self._heap: list[tuple[float, int, Job, Send]] = []
        self._order = itertools.count()
        self._down: dict[int, tuple[float, BaseException]] = {}

    # ------------------------------------------------------------------ sends

    def _push(self, job: Job, send: Send) -> None:
        heapq.heappush(self._heap, (send.at, next(self._order), job, send))

    def add(self, job: Job) -> None:
        """A new message: its first send is due at once."""
        self.open_jobs += 1
        for send in job.start():
            self._push(job, send)

    def due(self, now: float) -> bool:
        return bool(self._heap) and self._heap[0][0] <= now

    def due_count(self, now: float) -> int:
        """How many sends are due at *now* (a driver opens no more connections than
        that at once)."""
        return sum(1 for entry in self._heap if entry[0] <= now)

    def spends_budget(self, dest: int, budget: int | None, now: float) -> bool:
        """Will a batch starting now on a connection of *dest* with *budget* messages
        left spend it all?  Then QUIT goes with its last message (one round trip and one
        write fewer per recycled connection).  The busy connections share what is due,
        so it must be enough for each of them to spend a budget; and not under a rate
        limit, where a batch stops at the first message that must wait for a token."""
        destination = self.destinations[dest]
        if budget is None or destination.bucket.rate is not None:
            return False
        return self.due_count(now) >= budget * max(1, destination.slots.busy)

    def next_at(self) -> float | None:
        """When the earliest waiting send falls due (None: nothing waits)."""
        return self._heap[0][0] if self._heap else None

    def take(self, now: float) -> tuple[Job, Send] | None:
        """The earliest send due at *now*, now running; None when none is due."""
        if not self.due(now):
            return None
        _, _, job, send = heapq.heappop(self._heap)
        return job, send

    def settle(self, job: Job, send: Send, outcome: Outcome, now: float, dest: int | None) -> bool:
        """The attempt of *send* (taken with ``take``, its item made with ``job.item``)
        ended with *outcome* on destination *dest* (None: the message never reached one).
        True when the message is now done."""
        if dest is not None:
            self.destinations[dest].record(outcome, now)
        for following in job.record(send, outcome, now, self.rand):
            if self.closing and following.at > now:
                job.expire(following)
            else:
                self._push(job, following)
        if job.done:
            self.open_jobs -= 1
        return job.done

    def close(self, now: float) -> list[Job]:
        """Stop retrying: every send waiting for a later moment is expired (those due now
        are still made).  Returns the messages this finished."""
        self.closing = True
        keep: list[tuple[float, int, Job, Send]] = []
        finished: list[Job] = []
        for entry in self._heap:
            at, _, job, send = entry
            if at <= now:
                keep.append(entry)
                continue
            job.expire(send)
            if job.done:
                self.open_jobs -= 1
                finished.append(job)
        heapq.heapify(keep)
        self._heap = keep
        return finished

    # ------------------------------------------------------------ destinations

    def choose(self, now: float) -> int | None:
        """The destination for a new connection: the first not marked down; None when
        every one is down (``charge`` then settles a due send with the failure)."""
        for index in range(len(self.destinations)):
            down = self._down.get(index)
            if down is None or now >= down[0]:
                self._down.pop(index, None)
                return index
        return None

    def connect_failed(self, dest: int, error: BaseException, now: float) -> None:
        """Opening a connection to *dest* failed: its concurrency hears of it, and it is
        passed over for ``down_hold`` seconds."""
        self.destinations[dest].record(error, now)
        self._down[dest] = (now + self.down_hold, error)

    def charge(self, now: float) -> tuple[Job, Send, BaseException] | None:
        """Every destination is down: the earliest due send, to be settled with the last
        failure met (no new connection is tried until one comes back up)."""
        if not self._down:
            return None
        error = max(self._down.values(), key=lambda down: down[0])[1]
        taken = self.take(now)
        if taken is None:
            return None
        return taken[0], taken[1], error

    def pick(self, now: float, *, closed: bool, opening: int) -> Pick:
        """The one decision both drivers' workers make, under their lock: which connection
        to use now, if any.  *opening*: connections being opened by other workers (they
        will take what is due, so no more are opened than sends wait)."""
        retire: list[Slot] = []
        for dest in self.destinations:
            retire += dest.slots.sweep(now)
        if closed and not self.open_jobs:
            return Pick(retire, done=True)
        if not self.due(now):
            return Pick(retire, wake=self.wake_at(now))
        index = self.choose(now)
        candidates = range(len(self.destinations)) if index is None else (index,)
        for i in candidates:
            slots = self.destinations[i].slots
            if index is None and not slots.open:
                continue
            if not slots.idle and opening >= self.due_count(now):
                continue  # the connections being opened will take what is due
            out = slots.checkout(now)
            retire += out.close
            if out.action is Action.REUSE or (out.action is Action.OPEN and index is not None):
                assert out.slot is not None
                return Pick(retire, lease=Lease(i, out.slot, out.action, out.check))
            if out.action is Action.OPEN:
                # Down: only a connection already open may be used.
                assert out.slot is not None
                slots.checkin(out.slot, now, usable=False)
        if index is None and not any(d.slots.open for d in self.destinations):
            charged = self.charge(now)
            if charged is not None:
                charged[0].item(charged[1])
                return Pick(retire, charged=charged)
        # Every allowed connection is busy: wait for one to come back (a checkin notifies),
        # a destination to come back up, or an idle one to go stale.
        return Pick(retire, wake=self.wake_at(now, sends=False))

    def wake_at(self, now: float, sends: bool = True) -> float | None:
        """When a waiting driver must look again: a send falls due (unless *sends* is
        False: one is due already and waits for a connection), an idle connection falls
        stale, a destination comes back up."""
        first = self.next_at() if sends else None
        times = [] if first is None else [first]
        for dest in self.destinations:
            sweep = dest.slots.next_sweep(now)
            if sweep is not None:
                times.append(sweep)
        times.extend(until for until, _ in self._down.values())
        return min(times) if times else None
