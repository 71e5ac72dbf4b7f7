"""What the monitor knows and decides, without the network: logged requests feed the drift
window of the version that served them, logged responses wait for their ground truth, feedback
joins them into live quality and captured rows. Every refusal is counted by reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from modelops.monitor.drift import DriftReport, drift_of
from modelops.monitor.payloads import PayloadError, Row, request_rows, response_predictions
from modelops.monitor.quality import CLASSIFICATION, QualityWindows
from modelops.monitor.thresholds import DEFAULT_THRESHOLDS, Thresholds
from modelops.monitor.windows import Pending, PendingPredictions, Source, Windows
from modelops.profile import ReferenceProfile


@dataclass(frozen=True)
class Settings:
    window: int = 1000  # rows per drift window
    min_samples: int = 200  # rows before a window's drift is exported
    quality_window: int = 1000  # labelled predictions per quality window
    max_sources: int = 1000  # (deployment, version, track) kept at once
    pending_limit: int = 100_000  # responses waiting for feedback
    feedback_ttl: float = 3600.0  # seconds a response waits for feedback
    thresholds: Thresholds = DEFAULT_THRESHOLDS


@dataclass(frozen=True)
class LabelledRow:
    """A production row with its ground truth: what retraining learns from."""

    source: Source
    features: Row
    prediction: object
    label: object
    time: float


class FeedbackError(ValueError):
    """Feedback the monitor cannot use; `status` is the HTTP answer (404 unknown id, 422 bad)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Monitor:
    settings: Settings = field(default_factory=Settings)
    dropped: Counter[str] = field(default_factory=Counter)
    received: Counter[str] = field(default_factory=Counter)  # accepted, by kind

    def __post_init__(self) -> None:
        s = self.settings
        self.windows = Windows(s.window, s.max_sources)
        self.quality = QualityWindows(s.quality_window, s.max_sources)
        self.pending = PendingPredictions(limit=s.pending_limit, ttl=s.feedback_ttl)
        self.profiles: dict[Source, ReferenceProfile] = {}
        self._reports: dict[Source, tuple[int, DriftReport]] = {}
        self._fed: Counter[Source] = Counter()

    def request(
        self, source: Source, request_id: str, body: object, profile: ReferenceProfile, now: float
    ) -> None:
        """A logged request: its rows join the source's drift window, and wait beside its
        response (which the logger may deliver first) for feedback."""
        try:
            rows = request_rows(body, profile.feature_names())
        except PayloadError:
            self.dropped["payload"] += 1
            raise
        self.received["request"] += 1
        self.profiles[source] = profile
        self.windows.add(source, rows)
        self._fed[source] += len(rows)
        answered = self.pending.take(request_id, now)
        predictions = answered.predictions if answered and not answered.rows else []
        self._pair(source, request_id, rows, predictions, now)

    def response(self, source: Source, request_id: str, body: object, now: float) -> None:
        """A logged response: its predictions wait, beside the request's rows, for feedback."""
        try:
            predictions = response_predictions(body)
        except PayloadError:
            self.dropped["payload"] += 1
            raise
        self.received["response"] += 1
        self.quality.predicted(source, len(predictions))
        asked = self.pending.take(request_id, now)
        rows = asked.rows if asked and not asked.predictions else []
        self._pair(source, request_id, rows, predictions, now)

    def _pair(
        self, source: Source, request_id: str, rows: list[Row], predictions: list[object],
        now: float,
    ) -> None:  # fmt: skip
        if rows and predictions and len(rows) != len(predictions):
            self.dropped["response-mismatch"] += 1  # not the same request: nothing to join
            return
        self.pending.add(request_id, Pending(source, rows, predictions, now))

    def feedback(self, request_id: str, labels: list[object], now: float) -> list[LabelledRow]:
        """Ground truth for a logged prediction: one label per row of its request."""
        waiting = self.pending.take(request_id, now)
        if waiting is None or not waiting.predictions or not waiting.rows:
            self.dropped["feedback-unknown-id"] += 1
            raise FeedbackError(
                404,
                f"no logged prediction with id {request_id!r} is waiting for feedback "
                f"(unknown, already labelled, or older than {self.settings.feedback_ttl:.0f}s)",
            )
        if len(labels) != len(waiting.predictions):
            self.pending.add(request_id, waiting)  # the client may correct it
            self.dropped["feedback-shape"] += 1
            raise FeedbackError(
                422,
                f"request {request_id!r} had {len(waiting.predictions)} rows, "
                f"the feedback gives {len(labels)} labels",
            )
        self.received["feedback"] += 1
        self.quality.labelled(waiting.source, list(zip(waiting.predictions, labels, strict=True)))
        return [
            LabelledRow(waiting.source, row, prediction, label, now)
            for row, prediction, label in zip(
                waiting.rows, waiting.predictions, labels, strict=True
            )
        ]

    def drift(self, source: Source) -> DriftReport | None:
        """The source's drift, once its window holds `min_samples` rows (recomputed only when
        rows arrived since)."""
        profile = self.profiles.get(source)
        count = self.windows.count(source)
        if profile is None or count < self.settings.min_samples:
            return None
        fed = self._fed[source]
        cached = self._reports.get(source)
        if cached is None or cached[0] != fed:
            report = drift_of(profile, self.windows.rows(source), self.settings.thresholds)
            self._reports[source] = cached = (fed, report)
        return cached[1]

    def quality_of(self, source: Source) -> dict[str, float]:
        profile = self.profiles.get(source)
        task = (profile.task if profile else None) or CLASSIFICATION
        return self.quality.metrics(source, task)

    def sources(self) -> list[Source]:
        live = set(self.windows.sources()) | set(self.quality.sources())
        for gone in set(self._reports) - live:
            self._reports.pop(gone, None)
            self._fed.pop(gone, None)
            self.profiles.pop(gone, None)
        return sorted(live)
