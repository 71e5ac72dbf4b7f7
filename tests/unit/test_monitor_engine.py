"""The monitor without the network: requests feed the served version's window, responses wait
for feedback, feedback makes quality and labelled rows, and every refusal is counted."""

from __future__ import annotations

import numpy as np
import pytest

from modelops.monitor.engine import FeedbackError, Monitor, Settings
from modelops.monitor.payloads import PayloadError
from modelops.monitor.windows import Source
from modelops.profile import build_profile

RNG = np.random.default_rng(5)
PROFILE = build_profile(RNG.normal(0, 1, size=(1000, 2)), feature_names=["a", "b"])
STABLE = Source("ns", "wine", "1", "stable")


def v2(rows: list[list[float]]) -> dict[str, object]:
    return {"inputs": [{"name": "input-0", "shape": [len(rows), 2], "data": rows}]}


def answer(predictions: list[int]) -> dict[str, object]:
    return {"outputs": [{"name": "o", "shape": [len(predictions), 1], "data": predictions}]}


def test_drift_appears_once_the_window_holds_enough_rows() -> None:
    monitor = Monitor(Settings(window=100, min_samples=50))
    for i in range(49):
        monitor.request(STABLE, f"r{i}", v2([[0.1, 0.2]]), PROFILE, now=i)
    assert monitor.drift(STABLE) is None
    monitor.request(STABLE, "r49", v2([[0.1, 0.2]]), PROFILE, now=49)
    report = monitor.drift(STABLE)
    assert report is not None and report.samples == 50 and report.drifted_share == 1.0
    assert monitor.drift(STABLE) is report  # nothing new: not computed again


def test_feedback_joins_rows_predictions_and_labels_once() -> None:
    monitor = Monitor()
    monitor.request(STABLE, "r1", v2([[0.1, 0.2], [0.3, 0.4]]), PROFILE, now=0)
    monitor.response(STABLE, "r1", answer([1, 0]), now=1)
    labelled = monitor.feedback("r1", [1, 1], now=2)
    assert [(r.features, r.prediction, r.label) for r in labelled] == [
        ((0.1, 0.2), 1, 1),
        ((0.3, 0.4), 0, 1),
    ]
    assert monitor.quality_of(STABLE) == {"accuracy": 0.5}
    assert monitor.quality.feedback_share(STABLE) == 1.0
    with pytest.raises(FeedbackError, match="no logged prediction with id 'r1'") as error:
        monitor.feedback("r1", [1, 1], now=3)
    assert error.value.status == 404
    assert monitor.dropped["feedback-unknown-id"] == 1


def test_feedback_of_the_wrong_length_can_be_corrected() -> None:
    monitor = Monitor()
    monitor.request(STABLE, "r1", v2([[0.1, 0.2], [0.3, 0.4]]), PROFILE, now=0)
    monitor.response(STABLE, "r1", answer([1, 0]), now=1)
    with pytest.raises(FeedbackError, match="had 2 rows, the feedback gives 1 labels") as error:
        monitor.feedback("r1", [1], now=2)
    assert error.value.status == 422
    assert len(monitor.feedback("r1", [1, 0], now=3)) == 2


def test_feedback_before_the_response_or_after_its_ttl_is_unknown() -> None:
    monitor = Monitor(Settings(feedback_ttl=10))
    monitor.request(STABLE, "r1", v2([[0.1, 0.2]]), PROFILE, now=0)
    with pytest.raises(FeedbackError):
        monitor.feedback("r1", [1], now=1)  # no prediction yet
    monitor.request(STABLE, "r2", v2([[0.1, 0.2]]), PROFILE, now=0)
    monitor.response(STABLE, "r2", answer([1]), now=1)
    with pytest.raises(FeedbackError):
        monitor.feedback("r2", [1], now=20)


def test_bad_payloads_are_counted_and_leave_the_window_alone() -> None:
    monitor = Monitor(Settings(min_samples=1))
    with pytest.raises(PayloadError):
        monitor.request(STABLE, "r1", v2([[0.1, 0.2, 0.3]]), PROFILE, now=0)
    with pytest.raises(PayloadError):
        monitor.request(STABLE, "r2", "not json", PROFILE, now=0)
    with pytest.raises(PayloadError):
        monitor.response(STABLE, "r3", {"oops": 1}, now=0)
    monitor.response(STABLE, "r4", answer([1, 2]), now=0)
    monitor.request(STABLE, "r4", v2([[0.1, 0.2]]), PROFILE, now=0)  # 1 row for 2 answers
    assert monitor.dropped == {"payload": 3, "response-mismatch": 1}
    assert monitor.windows.count(STABLE) == 1


def test_a_regressor_gets_errors_not_accuracy() -> None:
    profile = build_profile(
        RNG.normal(0, 1, size=(100, 2)), feature_names=["a", "b"], task="regression"
    )
    monitor = Monitor()
    monitor.request(STABLE, "r1", v2([[0.1, 0.2]]), profile, now=0)
    monitor.response(STABLE, "r1", {"predictions": [2.5]}, now=0)
    monitor.feedback("r1", [2.0], now=1)
    assert monitor.quality_of(STABLE) == {"mae": 0.5, "rmse": 0.5}


def test_a_response_logged_before_its_request_is_joined_all_the_same() -> None:
    monitor = Monitor()
    monitor.response(STABLE, "r1", answer([2]), now=0)
    monitor.request(STABLE, "r1", v2([[0.5, 0.6]]), PROFILE, now=0)
    [row] = monitor.feedback("r1", [2], now=1)
    assert (row.features, row.prediction, row.label) == ((0.5, 0.6), 2, 2)
