"""Kubernetes-style conditions: set one, keeping lastTransitionTime when nothing changed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from modelops.api.status import Condition, ConditionStatus

# The condition types a ModelDeployment reports.
READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
METRICS_AVAILABLE = "MetricsAvailable"
RETRAINING = "Retraining"
SPEC_SUPPORTED = "SpecSupported"
MONITORING = "Monitoring"
REGISTRY_REACHABLE = "RegistryReachable"
KSERVE_ANSWERING = "KServeAnswering"


class ConditionUpdate(NamedTuple):
    type: str
    status: ConditionStatus
    reason: str
    message: str


def with_condition(
    conditions: Sequence[Condition], update: ConditionUpdate, *, now: datetime, generation: int
) -> list[Condition]:
    """`conditions` with `update` applied; the transition time moves only when status does."""
    previous = next((c for c in conditions if c.type == update.type), None)
    transition = now
    if previous is not None and previous.status == update.status:
        transition = previous.last_transition_time
    replacement = Condition(
        type=update.type,
        status=update.status,
        reason=update.reason,
        message=update.message,
        last_transition_time=transition,
        observed_generation=generation,
    )
    if previous is None:
        return [*conditions, replacement]
    return [replacement if c.type == update.type else c for c in conditions]


def condition(conditions: Sequence[Condition], kind: str) -> Condition | None:
    return next((c for c in conditions if c.type == kind), None)
