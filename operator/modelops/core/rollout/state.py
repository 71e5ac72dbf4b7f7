"""The rollout state machine's vocabulary (pure): what it observes, the manual requests it
honours, what it returns, and the working state one transition edits."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from modelops.api.delivery import RolloutSpec, TrafficStep
from modelops.api.resource import ModelDeployment
from modelops.api.status import (
    HISTORY_LIMIT,
    AnalysisStatus,
    CanaryStatus,
    DeployingVersion,
    HistoryEntry,
    Phase,
    RejectedVersion,
    RetiringVersion,
    ServedVersion,
)
from modelops.core.decision import EventIntent
from modelops.core.served import ServedModel

PREDICTOR_SUFFIX = len("--predictor")
DNS_LABEL = 63


@dataclass(frozen=True)
class Observation:
    """What KServe reports for the InferenceService built from the previous status."""

    stable_ready: bool
    canary_ready: bool
    """KServe reports the canary ready and (when looked up) its Service has a ready endpoint."""
    applied: bool
    """The InferenceService already matches the status (nothing about to be written)."""
    detail: str = ""
    diagnosis: str = ""
    """What the pods of a version that is not ready report (looked up past its deadline)."""
    route_settled: bool = True
    """The HTTPRoute built from the status is the one this operator last applied."""
    known: bool = True
    """KServe has seen the InferenceService built from the status (else readiness is unknown)."""


@dataclass(frozen=True)
class Outcome:
    """What one transition decided: the working state it ended in (the rollout part of the new
    status, the events to post, the counters to move) and how to report it."""

    state: RolloutState
    phase: Phase
    message: str
    degraded: str | None = None
    """Why the deployment is Degraded (rolled back, or failing after promotion)."""
    problem: str | None = None
    """Why it cannot become Ready (a reason such as ProgressDeadlineExceeded), when it cannot."""
    metrics_problem: str | None = None
    """Why the analysis has no verdict, when it pauses the rollout."""


def steps_of(rollout: RolloutSpec | None) -> list[TrafficStep]:
    """The traffic steps: a Canary's own, Direct's one bake at 100%, or an immediate 100% step
    when only monitoring is configured."""
    if rollout is None:
        return [TrafficStep(traffic=100, duration="0s")]
    if rollout.strategy == "Direct":
        return [TrafficStep(traffic=100, duration=rollout.bake)]
    return list(rollout.steps)


def canary_name(
    deployment: ModelDeployment,
    served: ServedModel | ServedVersion,
    taken: Collection[str | None] = (),
) -> str:
    """A predictor's name: v<version> when it fits KServe's names and no other predictor of
    the deployment has it, else a digest of what it serves."""
    room = DNS_LABEL - len(deployment.metadata.name) - PREDICTOR_SUFFIX
    plain = f"v{served.version}"
    if served.version is not None and len(plain) <= room and plain not in taken:
        return plain
    seed = f"{served.version}|{served.storage_uri}|{served.model_format}"
    digest = hashlib.sha256(seed.encode()).hexdigest()
    return "c" + digest[: max(1, min(7, room - 1))]


def first_predictor_name(deployment: ModelDeployment, target: ServedModel) -> str | None:
    """Standard mode names even the first predictor (v<version>), so that a later promotion
    can keep it running as a retiring entry while traffic moves."""
    if deployment.spec.serving.deployment_mode != "Standard":
        return None
    return canary_name(deployment, target)


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
    retiring: list[RetiringVersion] = field(default_factory=list)
    deploying: DeployingVersion | None = None
    events: list[EventIntent] = field(default_factory=list)
    counts: list[str] = field(default_factory=list)
    """Counters to move: promoted, rolled_back, aborted."""
    waits_for_kserve: bool = False
    """The transition stands on what KServe reports or needs KServe to act on it (a promotion,
    a rollback or failure at the progress deadline): written only while KServe answers."""

    def predictor_names(self) -> set[str | None]:
        """Predictor names in use: a new one must differ from each (KServe refuses duplicates)."""
        return {self.stable.predictor if self.stable else None} | {
            r.predictor for r in self.retiring
        }

    def retire_canary(self, deployment: ModelDeployment) -> None:
        """The canary's predictor drains (Standard mode) instead of vanishing with its traffic."""
        canary = self.canary
        if canary is None or deployment.spec.serving.deployment_mode != "Standard":
            return
        self.retire(canary.model_copy(update={"predictor": canary.name}), canary.replicas)

    def retire(self, version: ServedVersion, replicas: int | None) -> None:
        """Keep a predictor that lost its traffic running, without traffic, for the drain."""
        if version.predictor is None:
            return  # an unnamed predictor cannot be a canary entry; KServe removes it at once
        fields = ServedVersion.model_fields.keys() - {"promoted_at"}
        entry = RetiringVersion(
            **{k: getattr(version, k) for k in fields}, replicas=replicas, since=self.now
        )
        kept = [r for r in self.retiring if r.predictor != version.predictor]
        self.retiring = [*kept, entry][-4:]

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
        return Outcome(self, phase, message, **extra)
