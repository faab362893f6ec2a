"""When to try a deferred message again: exponential backoff with jitter, bounded in
attempts and in time.

The defaults suit a library that sends notifications from an application, not an MTA:

- RFC 5321 section 4.5.4.1 asks an MTA to wait at least 30 minutes between retries and to
  keep trying for 4 to 5 days, and Postfix starts at about 5 minutes, doubling to about
  an hour.  That is right for a queue on disk.  A pool holds its messages in the memory
  of a running process (a web worker, a task), where someone waits for the outcome.  Its
  4yz replies come mostly from a submission server or a provider's API relay (rate
  limits, a busy moment, greylisting), which clear in seconds to minutes.
- So the first retry comes after **30 s**, then 60, 120, 240, 480 s, capped at **10
  minutes**; greylisting (commonly 1 to 5 minutes, Postgrey's default is 300 s) is
  passed by the fifth retry.  After **8 retries** or **1 hour** since the first attempt,
  whichever comes first, the recipients still deferred are *expired* and reported: a
  program that needs MTA-like persistence hands them to a durable queue or a relay.
- Each delay is shortened by up to 20 % at random (*jitter*), so that messages deferred
  together (a provider's limit hit by a whole batch) do not all come back in the same
  second.  The jitter only shortens: the cap stays a true maximum.

>>> schedule = RetrySchedule()
>>> [schedule.base_delay(n) for n in range(1, 8)]
[30.0, 60.0, 120.0, 240.0, 480.0, 600.0, 600.0]
>>> schedule.delay(1, rand=0.5)  # 30 s shortened by half of the 20 % jitter
27.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["RetrySchedule"]


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Backoff for deferred recipients: retry *n* (from 1) waits
    ``min(cap, first * factor ** (n - 1))``, shortened by up to *jitter* of itself.

    At most *max_retries* retries, and none that would start more than *lifetime* seconds
    after the message's first attempt.
    """

    first: float = 30.0
    factor: float = 2.0
    cap: float = 600.0
    max_retries: int = 8
    lifetime: float = 3600.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        for name in ("first", "cap", "lifetime"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number of seconds: {value!r}")
        if not (self.factor >= 1 and math.isfinite(self.factor)):
            raise ValueError(f"factor must be at least 1: {self.factor!r}")
        if self.cap < self.first:
            raise ValueError(f"cap ({self.cap!r}) must not be less than first ({self.first!r})")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must not be negative: {self.max_retries!r}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1): {self.jitter!r}")

    def base_delay(self, retry: int) -> float:
        """The delay before retry number *retry* (1 for the first), before jitter."""
        if retry < 1:
            raise ValueError(f"retries are numbered from 1: {retry!r}")
        if self.factor == 1:
            return self.first
        # Past this many doublings the cap is reached: stop before factor ** n overflows.
        steps = math.ceil(math.log(self.cap / self.first, self.factor)) + 1
        return min(self.cap, self.first * self.factor ** min(retry - 1, steps))

    def delay(self, retry: int, rand: float) -> float:
        """The delay with jitter; *rand* is a number in [0, 1) from the caller's source."""
        if not 0 <= rand < 1:
            raise ValueError(f"rand must be in [0, 1): {rand!r}")
        return self.base_delay(retry) * (1 - self.jitter * rand)
