"""One destination's decisions together: its rate, its concurrency, its connections and
how deferred recipients are retried.

>>> dest = Destination(PoolPolicy(limits=Limits(max_connections=2), rate=1.0, burst=1))
>>> dest.bucket.take(now=0.0), dest.bucket.take(now=0.0)
(0.0, 1.0)
>>> dest.slots.checkout(now=0.0).action
<Action.OPEN: 'open'>
>>> dest.record(ConnectionRefusedError(), now=0.0)  # a throttling signal
True
>>> dest.concurrency.limit
1
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .._results import SendResult
from ._bucket import TokenBucket
from ._concurrency import DEFAULT_HOLD, Concurrency
from ._fates import Outcome, is_throttle
from ._retry import RetrySchedule
from ._slots import Limits, Slots

__all__ = ["Destination", "PoolPolicy"]


@dataclass(frozen=True, slots=True)
class PoolPolicy:
    """The settings of a destination (a relay, a URL).

    *rate* messages a second on average with *burst* back to back (None: no limit);
    *initial_concurrency*: the connections allowed at first (None: ``max_connections``);
    *hold*: seconds after a decrease of the concurrency during which other signals count
    as the same one.
    """

    limits: Limits = field(default_factory=Limits)
    rate: float | None = None
    burst: int = 1
    retry: RetrySchedule = field(default_factory=RetrySchedule)
    initial_concurrency: int | None = None
    hold: float = DEFAULT_HOLD


class Destination:
    """The mutable state of one destination: ``bucket``, ``concurrency``, ``slots``."""

    def __init__(self, policy: PoolPolicy | None = None) -> None:
        self.policy = policy = policy or PoolPolicy()
        self.bucket = TokenBucket(policy.rate, policy.burst)
        self.concurrency = Concurrency(
            policy.limits.max_connections, policy.initial_concurrency, policy.hold
        )
        self.slots = Slots(policy.limits, self.concurrency)

    def record(self, outcome: Outcome, now: float) -> bool:
        """Feed one attempt's outcome to the concurrency; True when it was a throttling
        signal.  A message the server took without one counts as a success; other
        outcomes (a refusal, a lost idle connection) change nothing."""
        if is_throttle(outcome):
            self.concurrency.throttled(now)
            return True
        if isinstance(outcome, SendResult):
            self.concurrency.succeeded(now)
        return False
