"""The rollout state machine's vocabulary (pure): what it observes, the manual requests it
honours, what it returns, and the working state one transition edits."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from modelops.api.delivery import RolloutSpec, TrafficStep
from modelops.api.resource import ModelDeployment
from modelops.api.status import (
    HISTORY_LIMIT,
    AnalysisStatus,
    CanaryStatus,
    HistoryEntry,
    Phase,
    RejectedVersion,
    ServedVersion,
)
from modelops.core.inference_service import ServedModel

PROMOTE_ANNOTATION = "modelops.io/promote"
ROLLBACK_ANNOTATION = "modelops.io/rollback"
RETRY_ANNOTATION = "modelops.io/retry"
PAUSED_ANNOTATION = "modelops.io/paused"
REQUEST_ANNOTATIONS = {
    "promote": PROMOTE_ANNOTATION,
    "rollback": ROLLBACK_ANNOTATION,
    "retry": RETRY_ANNOTATION,
}
PREDICTOR_SUFFIX = len("--predictor")
DNS_LABEL = 63


@dataclass(frozen=True)
class Observation:
    """What KServe reports for the InferenceService built from the previous status."""

    stable_ready: bool
    canary_ready: bool
    applied: bool
    """The InferenceService already matches the status (nothing about to be written)."""
    detail: str = ""


@dataclass(frozen=True)
class Requests:
    """Manual controls from annotations. promote/rollback/retry hold values not yet acted on
    (a request acts once per value, recorded in status.handledRequests)."""

    paused: bool = False
    promote: str | None = None
    rollback: str | None = None
    retry: str | None = None


@dataclass(frozen=True)
class EventIntent:
    """A Kubernetes Event to post about the deployment (type, reason, message)."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    """The rollout part of the new status, and what to tell people and count."""

    stable: ServedVersion | None
    previous: ServedVersion | None
    canary: CanaryStatus | None
    analysis: AnalysisStatus | None
    rejected: list[RejectedVersion]
    history: list[HistoryEntry]
    handled: dict[str, str]
    phase: Phase
    message: str
    degraded: str | None = None
    """Why the deployment is Degraded (rolled back, or failing after promotion)."""
    metrics_problem: str | None = None
    """Why the analysis has no verdict, when it pauses the rollout."""
    events: list[EventIntent] = field(default_factory=list)
    counts: list[str] = field(default_factory=list)
    """Counters to increment: promoted, rolled_back, aborted, monitoring_rolled_back."""


def requests_from(annotations: dict[str, str], handled: dict[str, str]) -> Requests:
    def fresh(kind: str) -> str | None:
        value = annotations.get(REQUEST_ANNOTATIONS[kind])
        return value if value is not None and handled.get(kind) != value else None

    paused = annotations.get(PAUSED_ANNOTATION, "").lower() in ("true", "yes", "1")
    return Requests(
        paused=paused, promote=fresh("promote"), rollback=fresh("rollback"), retry=fresh("retry")
    )


def steps_of(rollout: RolloutSpec | None) -> list[TrafficStep]:
    """The traffic steps: a Canary's own, Direct's one bake at 100%, or an immediate 100% step
    when only monitoring is configured."""
    if rollout is None:
        return [TrafficStep(traffic=100, duration="0s")]
    if rollout.strategy == "Direct":
        return [TrafficStep(traffic=100, duration=rollout.bake)]
    return list(rollout.steps)


def canary_name(deployment: ModelDeployment, served: ServedModel) -> str:
    """The canary predictor's name: v<version> when it fits KServe's names, else a digest."""
    room = DNS_LABEL - len(deployment.metadata.name) - PREDICTOR_SUFFIX
    if served.version is not None and len(served.version) + 1 <= room:
        return f"v{served.version}"
    digest = hashlib.sha256(served.storage_uri.encode()).hexdigest()
    return "c" + digest[: max(1, min(7, room - 1))]


def same_model(version: ServedVersion | None, served: ServedModel) -> bool:
    return (
        version is not None
        and version.version == served.version
        and version.storage_uri == served.storage_uri
        and version.model_format == served.model_format
    )


def is_rejected(rejected: Sequence[RejectedVersion], served: ServedModel) -> RejectedVersion | None:
    for entry in rejected:
        if entry.version == served.version and entry.storage_uri == served.storage_uri:
            return entry
    return None


def label(version: ServedVersion | ServedModel | None) -> str:
    if version is None:
        return "nothing"
    return f"version {version.version}" if version.version else str(version.storage_uri)


@dataclass
class RolloutState:
    """The mutable working copy of one transition (core.rollout edits it)."""

    stable: ServedVersion | None
    previous: ServedVersion | None
    canary: CanaryStatus | None
    analysis: AnalysisStatus | None
    rejected: list[RejectedVersion]
    history: list[HistoryEntry]
    handled: dict[str, str]
    now: datetime
    events: list[EventIntent] = field(default_factory=list)
    counts: list[str] = field(default_factory=list)

    def record(self, version: ServedVersion | ServedModel | None, event: str, reason: str) -> None:
        entry = HistoryEntry(
            version=version.version if version else None,
            storage_uri=version.storage_uri if version else None,
            event=event,
            at=self.now,
            reason=reason[:200],
        )
        self.history = [*self.history, entry][-HISTORY_LIMIT:]

    def reject(self, version: ServedVersion, reason: str) -> None:
        kept = [
            r
            for r in self.rejected
            if (r.version, r.storage_uri) != (version.version, version.storage_uri)
        ]
        entry = RejectedVersion(
            version=version.version, storage_uri=version.storage_uri, reason=reason, at=self.now
        )
        self.rejected = [*kept, entry][-HISTORY_LIMIT:]

    def outcome(self, phase: Phase, message: str, **extra: str | None) -> Outcome:
        return Outcome(
            stable=self.stable,
            previous=self.previous,
            canary=self.canary,
            analysis=self.analysis,
            rejected=self.rejected,
            history=self.history,
            handled=self.handled,
            phase=phase,
            message=message,
            events=self.events,
            counts=self.counts,
            **extra,
        )
