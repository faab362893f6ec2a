"""How many connections a destination gets now: a limit that backs off when the server
says it is overloaded and grows back slowly when it is not.

The rule is additive increase, multiplicative decrease (the shape TCP uses for its
congestion window, and the idea behind Postfix's per-destination concurrency feedback):

- a *throttling signal* (``421``, ``454``, ``451`` with an enhanced status ``4.7.x``, a
  connection refused or reset: see ``_fates.is_throttle``) halves the limit, never below
  1.  Connections already at work when the limit drops report their own signals a moment
  later; they describe the old concurrency, so one decrease is made per *hold* seconds;
- a success counts towards an increase: after as many successes as the current limit
  (about one round of work at this concurrency, Postfix's "1/N" positive feedback), with
  no signal for *hold* seconds, the limit grows by one, up to *maximum*.

>>> c = Concurrency(maximum=8)
>>> c.limit
8
>>> c.throttled(now=0.0); c.limit
4
>>> c.throttled(now=0.5); c.limit  # the same burst of signals: one decrease
4
>>> for _ in range(4):
...     c.succeeded(now=3.0)
>>> c.limit
5
"""

from __future__ import annotations

import math

__all__ = ["Concurrency"]

#: Seconds after a decrease during which further signals and increases are ignored: long
#: enough for the connections at work to finish the transaction they were in (a few round
#: trips), short enough to react again to a server that still refuses.
DEFAULT_HOLD = 2.0


class Concurrency:
    """The current connection limit of one destination, between 1 and *maximum*.

    *initial* is where it starts (default: *maximum*, so that a healthy server gets full
    speed at once; a pool that wants Postfix's cautious start can pass a small number).
    """

    __slots__ = ("_last_decrease", "_successes", "hold", "limit", "maximum")

    def __init__(
        self, maximum: int, initial: int | None = None, hold: float = DEFAULT_HOLD
    ) -> None:
        if maximum < 1:
            raise ValueError(f"max_connections must be at least 1: {maximum!r}")
        if initial is not None and not 1 <= initial <= maximum:
            raise ValueError(f"initial concurrency must be between 1 and {maximum}: {initial!r}")
        if not (hold >= 0 and math.isfinite(hold)):
            raise ValueError(f"hold must be a non-negative number of seconds: {hold!r}")
        self.maximum = maximum
        self.limit = maximum if initial is None else initial
        self.hold = hold
        self._successes = 0
        self._last_decrease: float | None = None

    def _holding(self, now: float) -> bool:
        return self._last_decrease is not None and now - self._last_decrease < self.hold

    def throttled(self, now: float) -> None:
        """The server sent a throttling signal: halve the limit (once per *hold*)."""
        self._successes = 0
        if self._holding(now):
            return
        self.limit = max(1, self.limit // 2)
        self._last_decrease = now

    def succeeded(self, now: float) -> None:
        """A transaction went through without a throttling signal."""
        if self._holding(now) or self.limit >= self.maximum:
            return
        self._successes += 1
        if self._successes >= self.limit:
            self.limit += 1
            self._successes = 0
