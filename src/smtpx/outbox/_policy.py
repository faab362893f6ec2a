"""When to try a deferred recipient again, and for how long: pure decisions, the clock
and the random source passed in.

The default follows Postfix, the reference for not losing mail: the first retry after
5 minutes (``minimal_backoff_time``), doubling up to about an hour
(``maximal_backoff_time`` is 4000 s), and a message given up after 5 days
(``maximal_queue_lifetime``).  Each delay is spread by +-``jitter`` so that a server that
comes back is not hit by every deferred message at the same second.

A schedule may be chosen by the reply: the most specific key that matches wins, from the
full enhanced status (``"4.2.2"``: mailbox full) to its class and subject (``"4.7"``),
the reply code (``"451"``), its first digit (``"4"``), or ``"connection"`` for a failure
with no reply at all (the server down, the connection lost before the transaction).

>>> policy = RetryPolicy(schedules={"4.2.2": Schedule(first=3600.0)}, jitter=0.0)
>>> policy.delay(1, code=452, enhanced="4.2.2", rng=random.Random(1))
3600.0
>>> policy.delay(3, code=451, enhanced="4.3.0", rng=random.Random(1))
1200.0
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["CONNECTION", "RetryPolicy", "Schedule"]

#: The key of failures without a reply: refused connection, timeout, lost connection.
CONNECTION = "connection"


@dataclass(frozen=True, slots=True)
class Schedule:
    """Delays in seconds: *first*, then each one *factor* times the previous, at most
    *maximum*.

    Examples:
        >>> [Schedule(first=300.0, factor=2.0, maximum=3600.0).delay(n) for n in (1, 2, 5, 9)]
        [300.0, 600.0, 3600.0, 3600.0]
    """

    first: float = 300.0
    factor: float = 2.0
    maximum: float = 4000.0

    def __post_init__(self) -> None:
        if self.first < 0 or self.factor < 1 or self.maximum < self.first:
            raise ValueError(f"a schedule needs 0 <= first <= maximum and factor >= 1: {self}")

    def delay(self, attempt: int) -> float:
        """The delay after the *attempt*-th failed attempt (1 for the first)."""
        if attempt < 1:
            raise ValueError("attempts are counted from 1")
        # min() before the power would overflow: factor ** 2000 is not a float.
        exponent = min(attempt - 1, 1000)
        try:
            value = self.first * self.factor**exponent
        except OverflowError:
            return self.maximum
        return min(value, self.maximum)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How the outbox retries: *default* schedule, *schedules* by reply, *jitter* (a
    fraction), *max_lifetime* (seconds from ``put`` after which pending recipients
    expire) and *resend_unknown*.

    *resend_unknown*: when the connection was lost after the content was sent, the
    server may have taken the message.  ``False`` (the default) holds the recipient as
    ``outcome_unknown`` and never sends again on its own (no duplicate, maybe a loss a
    person can see and retry); ``True`` defers it like a 4yz (no loss, maybe a
    duplicate).  A worker killed in that window is treated the same way.
    """

    default: Schedule = field(default_factory=Schedule)
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    jitter: float = 0.1
    max_lifetime: float = 5 * 86400.0
    resend_unknown: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError("jitter is a fraction in [0, 1)")
        if self.max_lifetime <= 0:
            raise ValueError("max_lifetime must be positive")

    def schedule_for(self, code: int | None, enhanced: str | None) -> Schedule:
        """The schedule for a reply (*code* None: no reply, the ``connection`` key)."""
        keys: list[str] = []
        if enhanced:
            parts = enhanced.split(".")
            keys += [".".join(parts[:n]) for n in range(len(parts), 1, -1)]
        if code is not None:
            keys += [str(code), str(code)[0]]
        else:
            keys.append(CONNECTION)
        for key in keys:
            found = self.schedules.get(key)
            if found is not None:
                return found
        return self.default

    def delay(
        self, attempt: int, *, code: int | None, enhanced: str | None, rng: random.Random
    ) -> float:
        """Seconds to wait after the *attempt*-th failure with this reply, jitter included."""
        base = self.schedule_for(code, enhanced).delay(attempt)
        if not self.jitter:
            return base
        return base * rng.uniform(1.0 - self.jitter, 1.0 + self.jitter)
