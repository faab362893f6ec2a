"""The token bucket, on a fake clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpx._pool import TokenBucket


def test_a_full_bucket_lets_the_burst_go_at_once() -> None:
    bucket = TokenBucket(rate=10.0, burst=3)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.1)


def test_reservations_are_spaced_at_the_rate() -> None:
    bucket = TokenBucket(rate=4.0, burst=1)
    waits = [bucket.take(0.0) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


def test_tokens_come_back_with_time_up_to_the_burst() -> None:
    bucket = TokenBucket(rate=1.0, burst=2)
    bucket.take(0.0)
    bucket.take(0.0)
    assert bucket.available(0.5) == pytest.approx(0.5)
    assert bucket.available(100.0) == 2.0  # never more than the burst
    assert bucket.take(100.0) == 0.0


def test_a_debt_is_paid_before_a_new_token() -> None:
    bucket = TokenBucket(rate=1.0, burst=1)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 1.0, 2.0]
    assert bucket.take(1.0) == pytest.approx(2.0)  # its moment is t=3


def test_no_rate_means_no_wait() -> None:
    bucket = TokenBucket(rate=None)
    assert all(bucket.take(0.0) == 0.0 for _ in range(1000))
    assert bucket.available(0.0) == math.inf


def test_a_clock_going_back_mints_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=1)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(5.0) == pytest.approx(6.0)  # the next token is at t=11


@pytest.mark.parametrize(
    ("rate", "burst"), [(0.0, 1), (-1.0, 1), (math.nan, 1), (math.inf, 1), (1.0, 0)]
)
def test_bad_settings_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


@given(
    rate=st.floats(0.1, 100.0),
    burst=st.integers(1, 10),
    gaps=st.lists(st.floats(0.0, 2.0), min_size=1, max_size=60),
)
def test_the_rate_is_never_exceeded_over_any_window(
    rate: float, burst: int, gaps: list[float]
) -> None:
    """Messages sent when told (now + wait): in any window of T seconds at most
    burst + rate * T of them, and in the order they asked."""
    bucket = TokenBucket(rate, burst)
    now, sent = 0.0, []
    for gap in gaps:
        now += gap
        wait = bucket.take(now)
        assert wait >= 0.0
        sent.append(now + wait)
    assert sent == sorted(sent)
    for i in range(len(sent)):
        for j in range(i, len(sent)):
            window = sent[j] - sent[i]
            assert j - i + 1 <= burst + rate * window + 1e-6
