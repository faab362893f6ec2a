"""The outbox's state table and retry policy, pure: no store, no network."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpx.outbox import (
    FINAL,
    PENDING,
    TRANSITIONS,
    Event,
    OutboxStateError,
    RetryPolicy,
    Schedule,
    State,
)
from smtpx.outbox._states import message_state, next_state

SETTINGS = settings(max_examples=300, deadline=None)


def test_every_pair_is_in_the_table_or_an_error() -> None:
    """h2's rule: what is not in the table raises, for every (state, event) pair."""
    for state in State:
        for event in Event:
            if (state, event) in TRANSITIONS:
                assert next_state(state, event) is TRANSITIONS[state, event]
            else:
                with pytest.raises(OutboxStateError):
                    next_state(state, event)


def test_delivered_and_the_other_finals_have_no_way_out() -> None:
    for state in (State.DELIVERED, State.REFUSED, State.EXPIRED, State.CANCELLED):
        assert not [e for (s, e) in TRANSITIONS if s is state], state
    # outcome_unknown leaves only by the user's retry (or a cancel).
    assert {e for (s, e) in TRANSITIONS if s is State.OUTCOME_UNKNOWN} == {
        Event.RETRY,
        Event.CANCEL,
    }


def test_only_pending_states_can_be_claimed() -> None:
    assert {s for (s, e) in TRANSITIONS if e is Event.CLAIM} == set(PENDING)


# What a worker can do to a recipient, as events; the user's events come separately.
WORKER_EVENTS = [
    Event.CLAIM,
    Event.ACCEPTED,
    Event.TRANSIENT,
    Event.PERMANENT,
    Event.NOT_ATTEMPTED,
    Event.UNKNOWN,
    Event.UNKNOWN_RESEND,
    Event.LEASE_LOST,
    Event.LEASE_LOST_SENDING,
    Event.EXPIRE,
    Event.CANCEL,
]


@SETTINGS
@given(st.lists(st.sampled_from(WORKER_EVENTS), max_size=60))
def test_a_walk_never_resends_to_an_accepted_recipient(events: list[Event]) -> None:
    """Any sequence of events: legal ones move, illegal ones raise and change nothing; a
    recipient is claimed again only from a pending state, never after ACCEPTED; and once
    the lifetime ends (EXPIRE, then nothing but illegal steps) it sits in exactly one
    final state."""
    state = State.QUEUED
    delivered = 0
    for event in events:
        try:
            new = next_state(state, event)
        except OutboxStateError:
            continue
        if event is Event.CLAIM:
            assert state in PENDING
            assert delivered == 0, "claimed again after being delivered"
        if new is State.DELIVERED:
            delivered += 1
        state = new
    assert delivered <= 1
    # The end of its life: a pending recipient expires; one in flight gets its answer
    # or its lease expires, then expires.
    for event in (Event.LEASE_LOST, Event.EXPIRE):
        if (state, event) in TRANSITIONS:
            state = next_state(state, event)
    assert state in FINAL
    assert sum(state in group for group in (FINAL, PENDING, {State.IN_FLIGHT})) == 1


@SETTINGS
@given(st.lists(st.sampled_from(list(State)), min_size=1, max_size=8))
def test_the_message_state_is_one_of_its_recipients(states: list[State]) -> None:
    summary = message_state(states)
    assert summary in states
    if State.IN_FLIGHT in states:
        assert summary is State.IN_FLIGHT
    elif any(s in PENDING for s in states):
        assert summary in PENDING
    else:
        assert summary in FINAL
        assert (summary is State.DELIVERED) == all(s is State.DELIVERED for s in states)


def test_a_message_without_recipients_has_no_state() -> None:
    with pytest.raises(OutboxStateError):
        message_state([])


def test_the_default_schedule_is_postfix_like() -> None:
    policy = RetryPolicy(jitter=0.0)
    rng = random.Random(0)
    delays = [policy.delay(n, code=451, enhanced=None, rng=rng) for n in range(1, 7)]
    assert delays == [300.0, 600.0, 1200.0, 2400.0, 4000.0, 4000.0]
    assert policy.max_lifetime == 5 * 86400


def test_schedules_are_keyed_on_the_most_specific_reply() -> None:
    full = Schedule(first=3600.0, maximum=7200.0)
    grey = Schedule(first=60.0, maximum=60.0)
    down = Schedule(first=10.0, maximum=40.0)
    five = Schedule(first=1.0)
    policy = RetryPolicy(
        schedules={"4.2.2": full, "4.7": grey, "connection": down, "421": five}, jitter=0.0
    )
    rng = random.Random(0)
    assert policy.delay(1, code=452, enhanced="4.2.2", rng=rng) == 3600.0
    assert policy.delay(1, code=450, enhanced="4.7.1", rng=rng) == 60.0
    assert policy.delay(3, code=None, enhanced=None, rng=rng) == 40.0
    assert policy.delay(1, code=421, enhanced=None, rng=rng) == 1.0
    assert policy.delay(1, code=451, enhanced="4.3.0", rng=rng) == 300.0


@SETTINGS
@given(st.integers(1, 5000), st.floats(0.0, 0.99), st.integers(0, 2**32))
def test_jitter_stays_within_its_fraction(attempt: int, jitter: float, seed: int) -> None:
    policy = RetryPolicy(jitter=jitter)
    base = policy.default.delay(attempt)
    got = policy.delay(attempt, code=450, enhanced=None, rng=random.Random(seed))
    assert base * (1 - jitter) - 1e-9 <= got <= base * (1 + jitter) + 1e-9


@pytest.mark.parametrize(
    "kwargs",
    [
        {"first": -1.0},
        {"factor": 0.5},
        {"first": 10.0, "maximum": 5.0},
    ],
)
def test_a_bad_schedule_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Schedule(**kwargs)


def test_a_bad_policy_is_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(jitter=1.5)
    with pytest.raises(ValueError):
        RetryPolicy(max_lifetime=0)
    with pytest.raises(ValueError):
        Schedule().delay(0)
