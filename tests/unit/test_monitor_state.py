"""The monitor's bounded state: windows slide, sources and pending predictions have ceilings,
feedback is taken once, quality is computed per task."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelops.monitor.quality import QualityWindows, quality_metrics, same_label
from modelops.monitor.windows import Pending, PendingPredictions, Source, Windows

A = Source("ns", "fraud", "3", "stable")
B = Source("ns", "fraud", "4", "canary")


def test_a_window_keeps_only_its_latest_rows() -> None:
    windows = Windows(size=3, max_sources=10)
    windows.add(A, [(1,), (2,)])
    windows.add(A, [(3,), (4,)])
    assert windows.rows(A) == [(2,), (3,), (4,)] and windows.count(A) == 3
    assert windows.rows(B) == [] and windows.count(B) == 0


def test_the_source_fed_longest_ago_is_forgotten_first() -> None:
    windows = Windows(size=3, max_sources=2)
    c = Source("ns", "other", "1", "stable")
    windows.add(A, [(1,)])
    windows.add(B, [(1,)])
    windows.add(A, [(2,)])  # A is fresh again
    windows.add(c, [(1,)])
    assert windows.sources() == [A, c]


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(1, 50)), max_size=200))
def test_windows_never_exceed_their_ceilings(feeds: list[tuple[int, int]]) -> None:
    windows = Windows(size=7, max_sources=5)
    for deployment, rows in feeds:
        windows.add(Source("ns", str(deployment), "1", "stable"), [(0,)] * rows)
        assert len(windows.sources()) <= 5
        assert all(windows.count(s) <= 7 for s in windows.sources())


def pending(at: float) -> Pending:
    return Pending(source=A, rows=[(1.0,)], predictions=[1], logged_at=at)


def test_pending_predictions_expire_by_age_and_by_count() -> None:
    store = PendingPredictions(limit=2, ttl=10)
    store.add("a", pending(0))
    store.add("b", pending(5))
    assert store.take("a", now=11) is None  # older than 10 s
    assert store.expired == 1
    store.add("c", pending(6))
    store.add("d", pending(7))  # over the limit: b goes
    assert list(store) == ["c", "d"] and store.expired == 2


def test_feedback_takes_a_prediction_once() -> None:
    store = PendingPredictions(limit=10, ttl=10)
    store.add("a", pending(0))
    assert store.take("a", now=1) is not None
    assert store.take("a", now=1) is None


def test_classes_match_however_they_are_spelled() -> None:
    assert same_label(1, 1.0) and same_label(1, "1") and same_label("cat", "cat")
    assert not same_label(1, 2) and not same_label(True, 1.0)


def test_quality_per_task() -> None:
    assert quality_metrics("classification", [(1, 1), (0, 1), (2, 2), (1, "1")]) == {
        "accuracy": 0.75
    }
    regression = quality_metrics("regression", [(1.0, 2.0), (3.0, 1.0)])
    assert regression == {"mae": 1.5, "rmse": pytest.approx(math.sqrt(2.5))}
    assert quality_metrics("classification", []) == {}
    with pytest.raises(ValueError, match="regression needs numbers"):
        quality_metrics("regression", [("a", 1.0)])


def test_quality_windows_slide_and_count_the_share_with_feedback() -> None:
    quality = QualityWindows(size=2, max_sources=10)
    assert quality.feedback_share(A) is None
    quality.predicted(A, 4)
    quality.labelled(A, [(1, 0), (1, 1)])
    assert quality.feedback_share(A) == 0.5
    assert quality.metrics(A, "classification") == {"accuracy": 0.5}
    quality.labelled(A, [(1, 1)])  # the window holds the latest two
    assert quality.metrics(A, "classification") == {"accuracy": 1.0}
    assert quality.metrics(B, "classification") == {}
