"""The pool's decisions, as pure code: no sockets, no threads, no sleeping, no clock.

Every function that depends on time takes ``now`` (seconds, from the driver's
``time.monotonic()``), and the only randomness (retry jitter) comes from a callable the
caller passes, so that the tests run on a fake clock and a fixed sequence.  The blocking
and asyncio pools (``_sync/_pool.py``, ``_async/_pool.py``) do the waiting and the I/O.

What is decided here, and why
=============================

*Rate* (``TokenBucket``): messages a second per destination, with a burst.  Providers
publish limits per second or per minute; a bucket spends a token per message and refills
at the rate, so a quiet period allows a short burst and the long-run rate never exceeds
the limit.  ``take(now)`` reserves a moment for the message and returns how long to wait.

*Concurrency* (``Concurrency``): how many connections a destination gets now.  Postfix
adapts the number of parallel deliveries to a destination: it grows slowly while
deliveries succeed and shrinks when connections fail, so a struggling server gets fewer
clients.  Here the same idea reacts to the replies by which servers ask a client to slow
down: ``421`` (closing), ``454``, ``451`` with an enhanced status ``4.7.x``, and a
connection refused or reset.  The limit is halved on such a signal (once per short hold,
since the connections already at work report the same overload) and grows by one after a
round of successes: additive increase, multiplicative decrease, never below 1 nor above
``max_connections``.

*Connections* (``Slots``): reuse an idle connection before opening one, up to the current
limit; replace one after ``max_messages`` or ``max_age``; close one idle longer than
``idle_timeout``; send a NOOP before reusing one idle longer than ``check_after``, since
servers close idle clients and a message sent on a dead connection costs a failed
attempt.

*Retries* (``RetrySchedule``): exponential backoff with jitter, bounded in number and in
time.  RFC 5321 section 4.5.4.1 describes an MTA's schedule (30 minutes or more between
tries, 4 to 5 days in all); a pool in a running process wants seconds to minutes and a
limit of an hour, after which what is left is reported as expired (``_retry`` explains
the defaults).

*Recipients* (``plan_next``): a transaction can succeed for some recipients and not for
others, so the plan works per recipient.  Only the recipients deferred (4yz) are sent
again: those the server accepted never get a second copy.  A ``452`` "too many
recipients" at RCPT means the server took as many as it could (RFC 5321 section
4.5.3.1.10): the rest go in a further transaction at once, and it is not a failure.  A
message the server never took (``SMTPNotAttempted``) is sent again whole; one whose fate
is unknown (``SMTPOutcomeUnknown``: lost after the content) is never sent again
automatically, since that could deliver it twice: it is reported for the caller to decide.
``_fates`` holds the full table.

How a driver uses it
====================

::

    dest = Destination(PoolPolicy(limits=Limits(max_connections=4), rate=10, burst=10))

    # for each message: its recipients, and its history
    history = History(first=now())
    pending = [Send(recipients, at=now(), retry=False)]
    while pending:                                   # each Send becomes one attempt
        send = pending.pop(0); sleep(send.at - now())
        sleep(dest.bucket.take(now()))               # the rate
        while (out := dest.slots.checkout(now())).action is Action.WAIT:
            close(out.close); wait_for_a_checkin()   # the concurrency
        close(out.close)                             # stale idle connections
        conn = connect(out.slot) if out.action is Action.OPEN else table[out.slot]
        # (a failed NOOP when out.check: checkin(usable=False), then checkout again)
        outcome = conn.deliver_many([(message, sender, send.recipients)])[0]
        dest.record(outcome, now())                  # concurrency feedback
        decision = plan_next(outcome, send.recipients, now(), history, dest.policy.retry)
        history = decision.history
        report(decision.finals); pending += decision.sends
        if dest.slots.checkin(out.slot, now(), messages=1, usable=conn.alive) is not None:
            close(out.slot)                          # recycled, broken or over the limit

    # a timer: close dest.slots.sweep(now()); sleep until dest.slots.next_sweep(now())

``Decision.finals`` and ``Decision.sends`` together hold every recipient exactly once;
the recipients of a message end ``DELIVERED``, ``REFUSED``, ``UNKNOWN``, ``EXPIRED`` or
``FAILED``.
"""

from ._bucket import TokenBucket
from ._concurrency import Concurrency
from ._fates import (
    Decision,
    History,
    Outcome,
    RecipientFate,
    Send,
    State,
    classify,
    is_throttle,
    is_too_many,
    plan_next,
)
from ._policy import Destination, PoolPolicy
from ._retry import RetrySchedule
from ._slots import Action, Checkout, Limits, Retire, Slot, Slots

__all__ = [
    "Action",
    "Checkout",
    "Concurrency",
    "Decision",
    "Destination",
    "History",
    "Limits",
    "Outcome",
    "PoolPolicy",
    "RecipientFate",
    "Retire",
    "RetrySchedule",
    "Send",
    "Slot",
    "Slots",
    "State",
    "TokenBucket",
    "classify",
    "is_throttle",
    "is_too_many",
    "plan_next",
]
