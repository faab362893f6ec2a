"""The retry schedule."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpx._pool import RetrySchedule


def test_the_default_schedule() -> None:
    s = RetrySchedule()
    assert [s.base_delay(n) for n in range(1, 9)] == [30, 60, 120, 240, 480, 600, 600, 600]
    assert (s.max_retries, s.lifetime) == (8, 3600.0)
    # Every default retry fits in the lifetime: 30+60+...+600 is under an hour.
    assert sum(s.base_delay(n) for n in range(1, s.max_retries + 1)) < s.lifetime


def test_jitter_only_shortens() -> None:
    s = RetrySchedule(jitter=0.2)
    assert s.delay(1, rand=0.0) == 30.0
    assert s.delay(1, rand=0.999999) == pytest.approx(24.0, rel=1e-5)
    assert RetrySchedule(jitter=0.0).delay(3, rand=0.7) == 120.0


def test_a_huge_retry_number_does_not_overflow() -> None:
    assert RetrySchedule().base_delay(10**6) == 600.0
    assert RetrySchedule(first=1.0, factor=10.0, cap=1e300).base_delay(10**4) == 1e300


def test_factor_one_is_a_fixed_delay() -> None:
    assert RetrySchedule(first=5.0, factor=1.0, cap=5.0).base_delay(100) == 5.0


@pytest.mark.parametrize(
    "settings",
    [
        {"first": 0.0},
        {"first": math.inf},
        {"factor": 0.5},
        {"cap": 10.0, "first": 20.0},
        {"max_retries": -1},
        {"lifetime": 0.0},
        {"jitter": 1.0},
        {"jitter": -0.1},
    ],
)
def test_bad_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetrySchedule(**settings)  # type: ignore[arg-type]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="from 1"):
        RetrySchedule().base_delay(0)
    with pytest.raises(ValueError, match="rand"):
        RetrySchedule().delay(1, rand=1.0)


@given(
    first=st.floats(0.01, 1000.0),
    factor=st.floats(1.0, 10.0),
    ratio=st.floats(1.0, 1e6),
    jitter=st.floats(0.0, 0.99),
    rand=st.floats(0.0, 1.0, exclude_max=True),
)
def test_delays_grow_and_are_capped(
    first: float, factor: float, ratio: float, jitter: float, rand: float
) -> None:
    s = RetrySchedule(first=first, factor=factor, cap=first * ratio, jitter=jitter)
    delays = [s.base_delay(n) for n in range(1, 80)]
    assert delays[0] == pytest.approx(first)
    assert all(a <= b for a, b in itertools.pairwise(delays))
    assert all(d <= s.cap for d in delays)
    for n, base in enumerate(delays[:10], start=1):
        assert (1 - jitter) * base - 1e-9 <= s.delay(n, rand) <= base
