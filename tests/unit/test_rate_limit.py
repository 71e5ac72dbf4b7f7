"""The client-side token bucket toward the API server, and the wait after a 429."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelops.core.rate_limit import TokenBucket, retry_after


def test_a_burst_goes_at_once_and_the_rest_at_the_rate() -> None:
    bucket = TokenBucket(qps=10, burst=3)
    waits = [bucket.reserve(100.0) for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, pytest.approx(0.1), pytest.approx(0.2)]


def test_tokens_saved_while_idle_never_exceed_the_burst() -> None:
    bucket = TokenBucket(qps=10, burst=2)
    bucket.reserve(0.0)
    waits = [bucket.reserve(60.0) for _ in range(3)]
    assert waits == [0.0, 0.0, pytest.approx(0.1)]


def test_no_limit_never_waits() -> None:
    bucket = TokenBucket(qps=0, burst=0)
    assert {bucket.reserve(0.0) for _ in range(1000)} == {0.0}


def test_a_limit_needs_a_burst_of_one_at_least() -> None:
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(qps=5, burst=0)


@given(
    qps=st.floats(min_value=0.5, max_value=500),
    burst=st.integers(min_value=1, max_value=50),
    gaps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=200),
)
def test_no_window_carries_more_than_burst_plus_rate_times_its_length(
    qps: float, burst: int, gaps: list[float]
) -> None:
    bucket, now, departures = TokenBucket(qps=qps, burst=burst), 0.0, []
    for gap in gaps:
        now += gap
        departures.append(now + bucket.reserve(now))
    assert departures == sorted(departures)  # requests leave in the order they asked
    for first, start in enumerate(departures):
        for last in range(first, len(departures)):
            length = departures[last] - start
            assert last - first + 1 <= burst + qps * length + 1e-6


@given(gaps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=100))
def test_requests_slower_than_the_rate_never_wait(gaps: list[float]) -> None:
    bucket, now = TokenBucket(qps=10, burst=1), 0.0
    for gap in gaps:
        now += max(gap, 0.1)
        assert bucket.reserve(now) == pytest.approx(0.0, abs=1e-9)


def test_retry_after_follows_the_server_then_backs_off() -> None:
    assert retry_after("3", 0) == 3.0
    assert retry_after(" 7 ", 5) == 7.0
    assert retry_after("600", 0) == 30.0
    assert [retry_after(None, attempt) for attempt in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert retry_after("soon", 1) == 2.0
