"""The concurrency feedback, on a fake clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpx._pool import Concurrency


def test_it_starts_at_the_maximum_or_where_asked() -> None:
    assert Concurrency(8).limit == 8
    assert Concurrency(8, initial=2).limit == 2


def test_a_signal_halves_the_limit_never_below_one() -> None:
    c = Concurrency(8, hold=1.0)
    limits = []
    for t in range(5):
        c.throttled(float(t * 10))
        limits.append(c.limit)
    assert limits == [4, 2, 1, 1, 1]


def test_signals_within_the_hold_count_once() -> None:
    c = Concurrency(8, hold=2.0)
    for t in (0.0, 0.5, 1.0, 1.9):
        c.throttled(t)
    assert c.limit == 4
    c.throttled(2.0)
    assert c.limit == 2


def test_the_limit_grows_by_one_after_a_round_of_successes() -> None:
    c = Concurrency(4, initial=2, hold=0.0)
    c.succeeded(0.0)
    assert c.limit == 2
    c.succeeded(0.0)
    assert c.limit == 3  # two successes at a limit of 2
    for _ in range(3):
        c.succeeded(0.0)
    assert c.limit == 4
    for _ in range(100):
        c.succeeded(0.0)
    assert c.limit == 4  # the maximum


def test_successes_during_the_hold_do_not_count() -> None:
    c = Concurrency(4, hold=5.0)
    c.throttled(0.0)
    for _ in range(10):
        c.succeeded(1.0)
    assert c.limit == 2
    c.succeeded(5.0)
    c.succeeded(5.0)
    assert c.limit == 3


def test_a_signal_resets_the_count_of_successes() -> None:
    c = Concurrency(8, initial=4, hold=0.0)
    for _ in range(3):
        c.succeeded(0.0)
    c.throttled(1.0)
    assert c.limit == 2
    c.succeeded(2.0)
    assert c.limit == 2


@pytest.mark.parametrize(
    ("maximum", "initial", "hold"),
    [(0, None, 1.0), (4, 5, 1.0), (4, 0, 1.0), (4, None, -1.0), (4, None, math.nan)],
)
def test_bad_settings_are_refused(maximum: int, initial: int | None, hold: float) -> None:
    with pytest.raises(ValueError):
        Concurrency(maximum, initial, hold)


@given(
    maximum=st.integers(1, 64),
    hold=st.floats(0.0, 5.0),
    events=st.lists(st.tuples(st.booleans(), st.floats(0.0, 3.0)), max_size=200),
)
def test_the_limit_stays_between_one_and_the_maximum(
    maximum: int, hold: float, events: list[tuple[bool, float]]
) -> None:
    c = Concurrency(maximum, hold=hold)
    now = 0.0
    for throttled, gap in events:
        now += gap
        before = c.limit
        if throttled:
            c.throttled(now)
            assert c.limit in (before, max(1, before // 2))
        else:
            c.succeeded(now)
            assert c.limit in (before, before + 1)
        assert 1 <= c.limit <= maximum
