"""Connection lifecycle decisions: reuse, open, wait, recycle, idle close, NOOP check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpx._pool import (
    Action,
    Concurrency,
    Destination,
    Limits,
    PoolPolicy,
    Retire,
    Slots,
)
from smtpx._pool._slots import Slot


def slots(**limits: float | int | None) -> Slots:
    settings = Limits(**limits)  # type: ignore[arg-type]
    return Slots(settings, Concurrency(settings.max_connections, hold=0.0))


def test_connections_open_up_to_the_limit_then_wait() -> None:
    s = slots(max_connections=2)
    a, b, c = s.checkout(0.0), s.checkout(0.0), s.checkout(0.0)
    assert (a.action, b.action, c.action) == (Action.OPEN, Action.OPEN, Action.WAIT)
    assert a.slot is not None and b.slot is not None and a.slot is not b.slot
    assert c.slot is None
    assert (s.open, s.busy, s.idle) == (2, 2, 0)


def test_an_idle_connection_is_reused_before_opening_another() -> None:
    s = slots(max_connections=4)
    first = s.checkout(0.0).slot
    assert first is not None
    assert s.checkin(first, 1.0, messages=1) is None
    again = s.checkout(2.0)
    assert again.action is Action.REUSE and again.slot is first and not again.check
    assert s.open == 1


def test_the_most_recently_used_is_reused_first() -> None:
    s = slots(max_connections=4)
    a, b = s.checkout(0.0).slot, s.checkout(0.0).slot
    assert a is not None and b is not None
    s.checkin(a, 1.0)
    s.checkin(b, 2.0)
    assert s.checkout(3.0).slot is b


def test_a_connection_idle_past_check_after_gets_a_noop() -> None:
    s = slots(check_after=10.0, idle_timeout=30.0)
    slot = s.checkout(0.0).slot
    assert slot is not None
    s.checkin(slot, 0.0)
    assert s.checkout(9.9).check is False
    s.checkin(slot, 9.9)
    assert s.checkout(20.0).check is True


def test_a_failed_noop_closes_it_and_the_next_checkout_opens() -> None:
    s = slots(check_after=0.0)
    slot = s.checkout(0.0).slot
    assert slot is not None
    s.checkin(slot, 0.0)
    reuse = s.checkout(5.0)
    assert reuse.check and reuse.slot is slot
    assert s.checkin(slot, 5.0, usable=False) is Retire.BROKEN
    fresh = s.checkout(5.0)
    assert fresh.action is Action.OPEN and fresh.slot is not slot


def test_recycled_after_max_messages() -> None:
    s = slots(max_messages=3)
    slot = s.checkout(0.0).slot
    assert slot is not None
    assert s.budget(slot) == 3
    assert s.checkin(slot, 1.0, messages=2) is None
    assert s.budget(slot) == 1
    assert s.checkout(1.0).slot is slot
    assert s.checkin(slot, 2.0, messages=1) is Retire.MAX_MESSAGES
    assert s.open == 0


def test_recycled_after_max_age() -> None:
    s = slots(max_age=60.0, idle_timeout=1000.0)
    slot = s.checkout(0.0).slot
    assert slot is not None
    assert s.checkin(slot, 59.0) is None
    assert s.checkout(59.5).slot is slot
    assert s.checkin(slot, 60.0) is Retire.MAX_AGE


def test_an_idle_connection_gone_stale_is_closed_on_checkout() -> None:
    s = slots(max_age=60.0, idle_timeout=1000.0)
    slot = s.checkout(0.0).slot
    assert slot is not None
    s.checkin(slot, 10.0)
    out = s.checkout(70.0)
    assert out.action is Action.OPEN and out.close == (slot,)
    assert slot.retired is Retire.MAX_AGE


def test_idle_connections_are_swept_after_idle_timeout() -> None:
    s = slots(idle_timeout=30.0, max_age=None)
    a, b = s.checkout(0.0).slot, s.checkout(0.0).slot
    assert a is not None and b is not None
    s.checkin(a, 0.0)
    s.checkin(b, 20.0)
    assert s.next_sweep(0.0) == 30.0
    assert s.sweep(29.0) == []
    assert s.sweep(30.0) == [a] and a.retired is Retire.IDLE
    assert s.next_sweep(30.0) == 50.0
    assert s.sweep(50.0) == [b]
    assert s.next_sweep(50.0) is None


def test_no_limits_keep_a_connection_forever_but_idle() -> None:
    s = slots(max_messages=None, max_age=None, idle_timeout=5.0)
    slot = s.checkout(0.0).slot
    assert slot is not None
    assert s.budget(slot) is None
    for t in range(1, 100):
        assert s.checkin(slot, float(t), messages=1000) is None
        assert s.checkout(float(t)).slot is slot
    assert s.checkin(slot, 100.0) is None
    assert s.sweep(105.0) == [slot]


def test_a_lower_limit_closes_the_surplus_as_it_comes_back() -> None:
    settings = Limits(max_connections=4)
    concurrency = Concurrency(4, hold=0.0)
    s = Slots(settings, concurrency)
    taken = [s.checkout(0.0).slot for _ in range(4)]
    assert all(taken) and s.busy == 4
    concurrency.throttled(1.0)  # 4 -> 2
    assert s.checkout(1.0).action is Action.WAIT
    closed = [s.checkin(slot, 2.0) for slot in taken if slot is not None]
    assert closed == [Retire.OVER_LIMIT, Retire.OVER_LIMIT, None, None]
    assert (s.open, s.idle) == (2, 2)


def test_a_sweep_closes_idle_connections_over_a_lowered_limit() -> None:
    concurrency = Concurrency(3, hold=0.0)
    s = Slots(Limits(max_connections=3), concurrency)
    taken = [s.checkout(0.0).slot for _ in range(3)]
    for slot in taken:
        assert slot is not None
        s.checkin(slot, 1.0)
    concurrency.throttled(2.0)  # 3 -> 1
    assert len(s.sweep(2.0)) == 2 and s.open == 1


def test_checkin_of_a_connection_not_out_is_refused() -> None:
    s = slots()
    slot = s.checkout(0.0).slot
    assert slot is not None
    s.checkin(slot, 0.0)
    with pytest.raises(ValueError, match="not checked out"):
        s.checkin(slot, 0.0)
    with pytest.raises(ValueError, match="not checked out"):
        s.checkin(Slot(99, 0.0), 0.0)


@pytest.mark.parametrize(
    "settings",
    [
        {"max_connections": 0},
        {"max_messages": 0},
        {"max_age": -1.0},
        {"idle_timeout": float("nan")},
    ],
)
def test_bad_limits_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Limits(**settings)  # type: ignore[arg-type]


def test_a_concurrency_above_the_limits_is_refused() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        Slots(Limits(max_connections=2), Concurrency(3))


def test_destination_feedback() -> None:
    from .attempts import attempt

    dest = Destination(PoolPolicy(limits=Limits(max_connections=4), hold=0.0))
    assert dest.record(attempt(["a@example.org"]), 0.0) is False
    assert dest.record(ConnectionResetError(), 1.0) is True
    assert dest.concurrency.limit == 2
    assert dest.record(attempt(["a@example.org"], [(421, "4.7.0 slow down")], final=[]), 2.0)
    assert dest.concurrency.limit == 1
    for t in range(3):
        dest.record(attempt(["a@example.org"]), 3.0 + t)
    assert dest.concurrency.limit == 3


OPS = st.lists(
    st.tuples(
        st.sampled_from(["checkout", "checkin", "broken", "sweep", "throttle", "succeed"]),
        st.floats(0.0, 20.0),
        st.integers(0, 5),
    ),
    max_size=120,
)


@given(
    max_connections=st.integers(1, 6),
    max_messages=st.one_of(st.none(), st.integers(1, 10)),
    max_age=st.one_of(st.none(), st.floats(1.0, 100.0)),
    idle_timeout=st.floats(0.0, 50.0),
    ops=OPS,
)
def test_slots_stay_within_their_limits(
    max_connections: int,
    max_messages: int | None,
    max_age: float | None,
    idle_timeout: float,
    ops: list[tuple[str, float, int]],
) -> None:
    limits = Limits(max_connections, max_messages, max_age, idle_timeout, check_after=5.0)
    concurrency = Concurrency(max_connections, hold=1.0)
    s = Slots(limits, concurrency)
    out: list[Slot] = []
    closed: set[int] = set()
    now = 0.0
    for op, gap, n in ops:
        now += gap
        if op == "checkout":
            busy_before, limit = s.busy, concurrency.limit
            got = s.checkout(now)
            closed.update(c.id for c in got.close)
            if got.action is Action.WAIT:
                assert got.slot is None
            else:
                assert got.slot is not None and busy_before < limit  # never over the limit
                assert got.slot.id not in closed  # a closed connection is never handed out
                if got.action is Action.REUSE:
                    slot = got.slot
                    assert max_messages is None or slot.messages < max_messages
                    assert max_age is None or now - slot.opened < max_age
                    assert now - slot.last_used < idle_timeout
                    assert got.check is (now - slot.last_used >= 5.0)
                out.append(got.slot)
        elif op in ("checkin", "broken") and out:
            slot = out.pop(n % len(out))
            why = s.checkin(slot, now, messages=n, usable=op == "checkin")
            if why is not None:
                closed.add(slot.id)
        elif op == "sweep":
            closed.update(c.id for c in s.sweep(now))
            due = s.next_sweep(now)
            assert due is None or due >= now
        elif op == "throttle":
            concurrency.throttled(now)
        else:
            concurrency.succeeded(now)
        assert s.open <= max_connections
        assert s.idle <= max(0, max_connections - s.busy)
        assert s.busy == len(out)
