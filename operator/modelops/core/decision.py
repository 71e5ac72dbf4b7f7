"""What one reconcile decides: the objects to write, the status, and what to tell people."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from modelops.api.status import ModelDeploymentStatus
from modelops.core.registry_writes import RegistryWrite


@dataclass(frozen=True)
class EventIntent:
    """A Kubernetes Event to post about the deployment (type, reason, message)."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Problem:
    """Why the deployment cannot be served as specified, and what a person should do."""

    reason: str
    message: str
    phase: Literal["Failed", "Pending"] = "Failed"


@dataclass(frozen=True)
class Decision:
    inference_service: dict[str, Any] | None
    """The manifest to apply, or None when the observed one is already right."""

    status: ModelDeploymentStatus
    events: tuple[EventIntent, ...]
    http_route: dict[str, Any] | None = None
    """The HTTPRoute to apply (spec.serving.httpRoute), when set."""

    canary_service: dict[str, Any] | None = None
    """The Service the route sends a logged canary's share to (its agent's port)."""

    registry_writes: tuple[RegistryWrite, ...] = ()
    """Aliases and tags owed to the registry; status records them once written."""

    counts: tuple[str, ...] = ()
    """Transitions to count in the operator's metrics (promoted, rolled_back, aborted)."""

    job: dict[str, Any] | None = None
    """The retraining Job that must exist (created when missing)."""

    kserve_check: dict[str, Any] | None = None
    """The InferenceService to dry-run before this decision is written: it promotes, or rolls
    back or fails on readiness, and KServe must be answering for that (its webhooks refuse
    the dry run while it is down; then core's held decision is written instead)."""

    retraining_results: tuple[str, ...] = ()
    """Retraining outcomes to count: started, succeeded, failed, no_candidate."""
