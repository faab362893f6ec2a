"""Connections to one destination: when to reuse one, open one, wait, or close one.

The drivers hold the sockets; this module holds a ``Slot`` record per connection (a key
for the driver's own table) and decides:

- ``checkout``: reuse an idle connection (the most recently used: the others then idle
  out when traffic drops), with a NOOP first when it has been idle longer than
  *check_after* (the server may have closed it); else open one if the concurrency limit
  allows; else wait for a connection to come back;
- ``checkin``: keep the connection for the next message, or close it because it has
  sent *max_messages*, is older than *max_age*, is broken, or is over a limit that
  dropped meanwhile;
- ``sweep``: close the connections idle longer than *idle_timeout*; ``next_sweep`` says
  when the next one falls due, so that a driver's timer sleeps until then.

>>> slots = Slots(Limits(max_connections=2, check_after=10.0), Concurrency(2))
>>> first = slots.checkout(now=0.0)
>>> first.action, first.slot.id
(<Action.OPEN: 'open'>, 1)
>>> slots.checkin(first.slot, now=1.0, messages=3)
>>> again = slots.checkout(now=20.0)
>>> again.action, again.slot.id, again.check  # idle 19 s: a NOOP before reusing it
(<Action.REUSE: 'reuse'>, 1, True)
"""

from __future__ import annotations

import enum
import itertools
import math
from dataclasses import dataclass

from ._concurrency import Concurrency

__all__ = ["Action", "Checkout", "Limits", "Retire", "Slot", "Slots"]


@dataclass(frozen=True, slots=True)
class Limits:
    """The life of a destination's connections.

    - *max_connections* (4): the most open at once, the ceiling of the concurrency feedback;
    - *max_messages* (100): messages sent on a connection before it is replaced, well
      under what servers allow per session (Exim's default is 1000), so that a provider's
      per-session limit is rarely met; None for no limit;
    - *max_age* (300 s): a connection is replaced after this long, so that a DNS or
      certificate change is picked up (Postfix's client reuses a connection for 300 s);
      None for no limit;
    - *idle_timeout* (30 s): an idle connection is closed after this long; servers drop
      idle clients after a few minutes, and after 10 s when loaded (Postfix's
      ``smtpd_timeout`` under stress);
    - *check_after* (10 s): a connection idle longer than this gets a NOOP before it is
      reused, for the same reason.
    """

    max_connections: int = 4
    max_messages: int | None = 100
    max_age: float | None = 300.0
    idle_timeout: float = 30.0
    check_after: float = 10.0

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1: {self.max_connections!r}")
        if self.max_messages is not None and self.max_messages < 1:
            raise ValueError(f"max_messages must be at least 1: {self.max_messages!r}")
        for name in ("max_age", "idle_timeout", "check_after"):
            value = getattr(self, name)
            if value is not None and not (value >= 0 and not math.isnan(value)):
                raise ValueError(f"{name} must be a non-negative number of seconds: {value!r}")


class Action(enum.Enum):
    REUSE = "reuse"  # send on ``slot`` (after a NOOP when ``check``)
    OPEN = "open"  # connect, then send on the new ``slot``
    WAIT = "wait"  # every allowed connection is busy: wait for a ``checkin``


class Retire(enum.Enum):
    """Why a connection is closed."""

    IDLE = "idle"
    MAX_MESSAGES = "max_messages"
    MAX_AGE = "max_age"
    BROKEN = "broken"
    OVER_LIMIT = "over_limit"  # the concurrency limit dropped below the open connections


@dataclass(slots=True, eq=False)
class Slot:
    """One connection's record (hashable by identity: a key for the driver's socket)."""

    id: int
    opened: float  # when it was checked out to be opened
    messages: int = 0
    last_used: float = 0.0
    busy: bool = True
    retired: Retire | None = None


@dataclass(frozen=True, slots=True)
class Checkout:
    action: Action
    slot: Slot | None = None
    check: bool = False  # send NOOP first (RFC 5321 section 4.1.1.9) and reuse on 250
    close: tuple[Slot, ...] = ()  # idle connections found stale on the way: close them


class Slots:
    """The connections of one destination, within ``concurrency.limit``."""

    def __init__(self, limits: Limits, concurrency: Concurrency | None = None) -> None:
        self.limits = limits
        self.concurrency = concurrency or Concurrency(limits.max_connections)
        if self.concurrency.maximum > limits.max_connections:
            raise ValueError("the concurrency's maximum exceeds max_connections")
        self._busy: set[Slot] = set()
        self._idle: list[Slot] = []  # the most recently used last
        self._ids = itertools.count(1)

    @property
    def open(self) -> int:
        """Connections open or being opened."""
        return len(self._busy) + len(self._idle)

    @property
    def busy(self) -> int:
        return len(self._busy)

    @property
    def idle(self) -> int:
        return len(self._idle)

    def _stale(self, slot: Slot, now: float) -> Retire | None:
        limits = self.limits
        if limits.max_messages is not None and slot.messages >= limits.max_messages:
            return Retire.MAX_MESSAGES
        if limits.max_age is not None and now - slot.opened >= limits.max_age:
            return Retire.MAX_AGE
        if now - slot.last_used >= limits.idle_timeout:
            return Retire.IDLE
        return None

    def checkout(self, now: float) -> Checkout:
        """A connection to send on now, or ``WAIT``."""
        closed: list[Slot] = []
        limit = self.concurrency.limit
        while self._idle and len(self._busy) < limit:
            slot = self._idle.pop()
            why = self._stale(slot, now)
            if why is not None or self.open + 1 > limit:
                slot.retired = why or Retire.OVER_LIMIT
                closed.append(slot)
                continue
            slot.busy = True
            self._busy.add(slot)
            check = now - slot.last_used >= self.limits.check_after
            return Checkout(Action.REUSE, slot, check, tuple(closed))
        if self.open < limit:
            slot = Slot(next(self._ids), opened=now, last_used=now)
            self._busy.add(slot)
            return Checkout(Action.OPEN, slot, close=tuple(closed))
        return Checkout(Action.WAIT, close=tuple(closed))

    def checkin(
        self, slot: Slot, now: float, messages: int = 0, usable: bool = True
    ) -> Retire | None:
        """*slot* is back after sending *messages*; None to keep it, or why to close it.

        *usable* False: the connection failed to open, was lost, or failed its NOOP.
        """
        if slot not in self._busy:
            raise ValueError(f"connection {slot.id} is not checked out")
        self._busy.discard(slot)
        slot.busy = False
        slot.messages += messages
        slot.last_used = max(slot.last_used, now)
        why = Retire.BROKEN if not usable else self._stale(slot, now)
        if why is None and self.open + 1 > self.concurrency.limit:
            why = Retire.OVER_LIMIT
        if why is not None:
            slot.retired = why
            return why
        self._idle.append(slot)
        return None

    def budget(self, slot: Slot) -> int | None:
        """Messages *slot* may still send before it is recycled (None: no limit), for a
        driver that hands a connection a batch."""
        if self.limits.max_messages is None:
            return None
        return max(0, self.limits.max_messages - slot.messages)

    def sweep(self, now: float) -> list[Slot]:
        """Remove the idle connections that are stale or over the limit: close them."""
        keep: list[Slot] = []
        gone: list[Slot] = []
        room = self.concurrency.limit - len(self._busy)
        for slot in reversed(self._idle):  # the most recent first: they are kept
            why = self._stale(slot, now)
            if why is None and room <= 0:
                why = Retire.OVER_LIMIT
            if why is None:
                keep.append(slot)
                room -= 1
            else:
                slot.retired = why
                gone.append(slot)
        keep.reverse()
        self._idle = keep
        return gone

    def next_sweep(self, now: float) -> float | None:
        """When the next idle connection falls stale (None: none is idle)."""
        times = []
        for slot in self._idle:
            due = slot.last_used + self.limits.idle_timeout
            if self.limits.max_age is not None:
                due = min(due, slot.opened + self.limits.max_age)
            times.append(due)
        return max(now, min(times)) if times else None
