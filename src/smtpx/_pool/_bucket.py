"""A token bucket: at most *rate* messages a second on average, *burst* at once.

The bucket reserves: ``take(now)`` counts the message at once and answers how long the
caller must wait before sending it, so that several threads or tasks asking together are
given distinct moments, in order, instead of all waking at the same time to race for one
token.  The clock is the caller's (``time.monotonic()`` in the drivers, a number in tests).

>>> bucket = TokenBucket(rate=2.0, burst=2)
>>> [bucket.take(now=10.0) for _ in range(4)]
[0.0, 0.0, 0.5, 1.0]
>>> bucket.take(now=12.0)  # two seconds later the debt is paid and a token is back
0.0
"""

from __future__ import annotations

import math

__all__ = ["TokenBucket"]


class TokenBucket:
    """Messages per second (*rate*) with up to *burst* sent back to back.

    *rate* ``None`` means no limit: ``take`` always answers 0.
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float | None, burst: int = 1) -> None:
        if rate is not None and not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number of messages a second: {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1: {burst!r}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)  # a new bucket is full: the first burst goes at once
        self._last: float | None = None

    def _refill(self, now: float) -> None:
        if self._last is not None and now > self._last:
            assert self.rate is not None
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        # A clock that goes backwards (it should not: the drivers use a monotonic one)
        # gives nothing back rather than minting tokens.
        if self._last is None or now > self._last:
            self._last = now

    def take(self, now: float) -> float:
        """Count one message and return the seconds to wait before sending it (0: now).

        The token is spent whatever the caller does next: a caller that gives up after
        waiting leaves the next ones a little later than needed, never earlier.
        """
        if self.rate is None:
            return 0.0
        self._refill(now)
        self._tokens -= 1.0
        if self._tokens >= 0.0:
            return 0.0
        # In debt: this message's token arrives when the debt is paid back.
        assert self._last is not None
        return (self._last - now) + (-self._tokens) / self.rate

    def available(self, now: float) -> float:
        """Tokens that ``take`` could spend at *now* without waiting (may be negative)."""
        if self.rate is None:
            return math.inf
        self._refill(now)
        return self._tokens
