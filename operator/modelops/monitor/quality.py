"""Live model quality from ground truth: predictions joined with the labels clients send back.

Classifiers get accuracy; regressors the mean absolute and root mean squared error. Computed
over the latest `size` labelled predictions of each source, so it follows the model as it is
now, not as it was on its first day.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass

from modelops.monitor.windows import Source

CLASSIFICATION, REGRESSION = "classification", "regression"


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


def same_label(prediction: object, label: object) -> bool:
    """A class predicted as 1 matches a label sent as 1.0 or "1": clients and runtimes do not
    agree on how a class is spelled."""
    a, b = _number(prediction), _number(label)
    if a is not None and b is not None:
        return a == b
    return str(prediction) == str(label)


def quality_metrics(task: str, pairs: list[tuple[object, object]]) -> dict[str, float]:
    """{metric: value} of (prediction, label) pairs for the model's task."""
    if not pairs:
        return {}
    if task == CLASSIFICATION:
        return {"accuracy": sum(same_label(p, y) for p, y in pairs) / len(pairs)}
    errors = []
    for prediction, label in pairs:
        p, y = _number(prediction), _number(label)
        if p is None or y is None:
            raise ValueError(f"a regression needs numbers, got {prediction!r} and {label!r}")
        errors.append(p - y)
    return {
        "mae": sum(abs(e) for e in errors) / len(errors),
        "rmse": math.sqrt(sum(e * e for e in errors) / len(errors)),
    }


@dataclass
class _Track:
    pairs: deque[tuple[object, object]]
    predictions: int = 0
    labelled: int = 0


class QualityWindows:
    """Labelled predictions and how many predictions got a label, per source (bounded)."""

    def __init__(self, size: int, max_sources: int) -> None:
        self.size, self.max_sources = size, max_sources
        self._tracks: OrderedDict[Source, _Track] = OrderedDict()

    def _track(self, source: Source) -> _Track:
        track = self._tracks.get(source)
        if track is None:
            track = self._tracks[source] = _Track(pairs=deque(maxlen=self.size))
            while len(self._tracks) > self.max_sources:
                self._tracks.popitem(last=False)
        self._tracks.move_to_end(source)
        return track

    def predicted(self, source: Source, count: int) -> None:
        self._track(source).predictions += count

    def labelled(self, source: Source, pairs: list[tuple[object, object]]) -> None:
        track = self._track(source)
        track.pairs.extend(pairs)
        track.labelled += len(pairs)

    def metrics(self, source: Source, task: str) -> dict[str, float]:
        track = self._tracks.get(source)
        return quality_metrics(task, list(track.pairs)) if track else {}

    def feedback_share(self, source: Source) -> float | None:
        track = self._tracks.get(source)
        if track is None or track.predictions == 0:
            return None
        return min(1.0, track.labelled / track.predictions)

    def sources(self) -> list[Source]:
        return list(self._tracks)
