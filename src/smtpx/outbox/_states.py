"""The outbox's states, as data: one table per recipient, and the message's state derived
from its recipients'.

A recipient moves only along the table below; anything else raises ``OutboxStateError``
(h2's rule: what is not in the table is an error).  The worker never decides a state by
hand: it turns what happened into an ``Event`` and looks the next state up here.

==============  =====================================  ===================================
state           left by (event -> state)               meaning
==============  =====================================  ===================================
queued          claim -> in_flight; cancel; expire     waiting for its first attempt
in_flight       accepted -> delivered;                 claimed by a worker under a lease
                transient -> deferred;
                permanent -> refused;
                not_attempted -> deferred;
                unknown -> outcome_unknown;
                unknown_resend -> deferred;
                lease_lost -> queued (nothing sent)
                or outcome_unknown (content may have
                gone: lease_lost_sending);
                expire -> expired
deferred        claim -> in_flight; retry -> queued;   a 4yz, a lost connection or 421: it
                cancel; expire                         waits for its next attempt time
outcome_unknown retry -> queued (the user's choice);   the content was sent and no final
                cancel                                 reply came: held, never resent by
                                                       itself
delivered       (final)                                the server took it (2yz)
refused         (final)                                5yz: never retried
expired         (final)                                its lifetime ran out before delivery
cancelled       (final)                                the user cancelled it
==============  =====================================  ===================================

``delivered`` has no way out: a recipient the server accepted is never sent the message
again, whatever happens later in its message's life.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

__all__ = [
    "FINAL",
    "PENDING",
    "TRANSITIONS",
    "Event",
    "OutboxStateError",
    "State",
    "message_state",
    "next_state",
]


class OutboxStateError(RuntimeError):
    """A transition that is not in the table: a bug, or a store changed behind our back."""


class State(enum.Enum):
    QUEUED = "queued"
    IN_FLIGHT = "in_flight"
    DEFERRED = "deferred"
    OUTCOME_UNKNOWN = "outcome_unknown"
    DELIVERED = "delivered"
    REFUSED = "refused"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Event(enum.Enum):
    CLAIM = "claim"
    ACCEPTED = "accepted"  # 2yz after the content (LMTP: its own reply)
    TRANSIENT = "transient"  # 4yz at MAIL, RCPT or after the content
    PERMANENT = "permanent"  # 5yz, or a message no server can take (too large, invalid)
    NOT_ATTEMPTED = "not_attempted"  # the connection was gone before the transaction
    UNKNOWN = "unknown"  # content sent, final reply lost: held
    UNKNOWN_RESEND = "unknown_resend"  # the same, under a policy that resends
    LEASE_LOST = "lease_lost"  # the worker vanished before the content went
    LEASE_LOST_SENDING = "lease_lost_sending"  # ... after the content may have gone
    RETRY = "retry"  # the user asks for an attempt now
    CANCEL = "cancel"
    EXPIRE = "expire"  # the maximum lifetime is over


S, E = State, Event

#: (state, event) -> next state.  The whole life of a recipient.
TRANSITIONS: dict[tuple[State, Event], State] = {
    (S.QUEUED, E.CLAIM): S.IN_FLIGHT,
    (S.QUEUED, E.CANCEL): S.CANCELLED,
    (S.QUEUED, E.EXPIRE): S.EXPIRED,
    (S.QUEUED, E.RETRY): S.QUEUED,
    (S.DEFERRED, E.CLAIM): S.IN_FLIGHT,
    (S.DEFERRED, E.RETRY): S.QUEUED,
    (S.DEFERRED, E.CANCEL): S.CANCELLED,
    (S.DEFERRED, E.EXPIRE): S.EXPIRED,
    (S.IN_FLIGHT, E.ACCEPTED): S.DELIVERED,
    (S.IN_FLIGHT, E.TRANSIENT): S.DEFERRED,
    (S.IN_FLIGHT, E.PERMANENT): S.REFUSED,
    (S.IN_FLIGHT, E.NOT_ATTEMPTED): S.DEFERRED,
    (S.IN_FLIGHT, E.UNKNOWN): S.OUTCOME_UNKNOWN,
    (S.IN_FLIGHT, E.UNKNOWN_RESEND): S.DEFERRED,
    (S.IN_FLIGHT, E.LEASE_LOST): S.QUEUED,
    (S.IN_FLIGHT, E.LEASE_LOST_SENDING): S.OUTCOME_UNKNOWN,
    (S.IN_FLIGHT, E.EXPIRE): S.EXPIRED,
    (S.OUTCOME_UNKNOWN, E.RETRY): S.QUEUED,
    (S.OUTCOME_UNKNOWN, E.CANCEL): S.CANCELLED,
}

#: States a worker may claim.
PENDING = frozenset({S.QUEUED, S.DEFERRED})
#: States nothing leaves on its own (outcome_unknown leaves only by the user's retry).
FINAL = frozenset({S.DELIVERED, S.REFUSED, S.EXPIRED, S.CANCELLED, S.OUTCOME_UNKNOWN})


def next_state(state: State, event: Event) -> State:
    """The state *event* leads to from *state*.

    >>> next_state(State.IN_FLIGHT, Event.TRANSIENT)
    <State.DEFERRED: 'deferred'>
    >>> next_state(State.DELIVERED, Event.CLAIM)
    Traceback (most recent call last):
    ...
    smtpx.outbox._states.OutboxStateError: no transition from delivered on claim
    """
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise OutboxStateError(f"no transition from {state.value} on {event.value}") from None


# A finished message with recipients in several final states shows the one that needs a
# person's attention first: an unknown outcome (was it sent?) before an expiry, before a
# refusal, before a cancellation; "delivered" only when every recipient was delivered.
_FINAL_ORDER = (S.OUTCOME_UNKNOWN, S.EXPIRED, S.REFUSED, S.CANCELLED, S.DELIVERED)
# An unfinished message shows where it is going next.
_PENDING_ORDER = (S.IN_FLIGHT, S.QUEUED, S.DEFERRED)


def message_state(recipients: Iterable[State]) -> State:
    """The message's state from its recipients' states.

    A message is in flight while any recipient is; otherwise queued or deferred while any
    recipient is; otherwise final, in the state of its most troubling recipient.

    >>> message_state([State.DELIVERED, State.DEFERRED])
    <State.DEFERRED: 'deferred'>
    >>> message_state([State.DELIVERED, State.REFUSED])
    <State.REFUSED: 'refused'>
    """
    present = set(recipients)
    if not present:
        raise OutboxStateError("a message without recipients has no state")
    for state in _PENDING_ORDER + _FINAL_ORDER:
        if state in present:
            return state
    raise OutboxStateError(f"unknown states {present}")  # pragma: no cover - enum is closed
