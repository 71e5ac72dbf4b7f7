"""The monitor's bounded state: a sliding window of feature rows per source of traffic, and
the predictions waiting for their ground truth.

Every structure has a fixed ceiling (rows per window, sources, pending predictions, their
age), so no flood of events grows memory without bound: past a ceiling the oldest goes.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

Row = tuple[object, ...]


@dataclass(frozen=True, order=True)
class Source:
    """Who served a request: a deployment's version, as its stable or its canary."""

    namespace: str
    deployment: str
    version: str
    track: str  # "stable" or "canary"

    def labels(self) -> dict[str, str]:
        return {
            "namespace": self.namespace,
            "deployment": self.deployment,
            "version": self.version,
            "track": self.track,
        }


class Windows:
    """The latest `size` rows of each source; at most `max_sources` sources (the one fed
    longest ago is forgotten first)."""

    def __init__(self, size: int, max_sources: int) -> None:
        self.size, self.max_sources = size, max_sources
        self._rows: OrderedDict[Source, deque[Row]] = OrderedDict()

    def add(self, source: Source, rows: Sequence[Row]) -> None:
        window = self._rows.get(source)
        if window is None:
            window = self._rows[source] = deque(maxlen=self.size)
            while len(self._rows) > self.max_sources:
                self._rows.popitem(last=False)
        self._rows.move_to_end(source)
        window.extend(rows)

    def rows(self, source: Source) -> list[Row]:
        return list(self._rows.get(source, ()))

    def count(self, source: Source) -> int:
        return len(self._rows.get(source, ()))

    def sources(self) -> list[Source]:
        return list(self._rows)

    def forget(self, source: Source) -> None:
        self._rows.pop(source, None)


@dataclass
class Pending:
    """A logged response waiting for feedback: what was asked and what the model answered."""

    source: Source
    rows: list[Row]
    predictions: list[object]
    logged_at: float


@dataclass
class PendingPredictions:
    """Responses by request id, for `ttl` seconds and at most `limit` of them."""

    limit: int
    ttl: float
    _by_id: OrderedDict[str, Pending] = field(default_factory=OrderedDict)
    expired: int = 0

    def add(self, request_id: str, pending: Pending) -> None:
        self.expire(pending.logged_at)
        self._by_id.pop(request_id, None)
        self._by_id[request_id] = pending
        while len(self._by_id) > self.limit:
            self._by_id.popitem(last=False)
            self.expired += 1

    def take(self, request_id: str, now: float) -> Pending | None:
        """The response for `request_id`, once: feedback for it twice is refused the second
        time, so a retried feedback call cannot count a label twice."""
        self.expire(now)
        return self._by_id.pop(request_id, None)

    def expire(self, now: float) -> None:
        while self._by_id:
            oldest = next(iter(self._by_id.values()))
            if now - oldest.logged_at <= self.ttl:
                return
            self._by_id.popitem(last=False)
            self.expired += 1

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)
