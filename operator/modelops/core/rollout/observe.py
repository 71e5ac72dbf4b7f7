"""What KServe and the cluster report about the objects built from the status (pure): readiness
of the stable and canary predictors, counted only once KServe has seen what was asked for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from modelops.api.resource import ModelDeployment
from modelops.core.inference_logging import canary_pod_prefix
from modelops.core.ownership import DEPLOYMENT_LABEL, VERSION_LABEL
from modelops.core.patches import owned_fields_match
from modelops.core.rollout.objects import inference_service_name
from modelops.core.rollout.readiness import deadline_passed, pod_diagnosis, progress_deadline
from modelops.core.rollout.state import Observation
from modelops.core.rollout.traffic import canary_backend, predictor_service


@dataclass(frozen=True)
class WorkloadFacts:
    """What the reconciler looked up beside the InferenceService, when core asked for it."""

    canary_endpoints: bool | None = None
    """Whether the canary's Service has a ready endpoint (None: not looked up)."""
    pods: Sequence[Mapping[str, Any]] | None = None
    """The pods of a version past its progress deadline (None: not looked up)."""
    applied_route: Mapping[str, Any] | None = None
    """The HTTPRoute this operator last applied (None: none since it started)."""


NO_FACTS = WorkloadFacts()


def matches(desired: Mapping[str, Any], observed: Mapping[str, Any] | None) -> bool:
    return observed is not None and owned_fields_match(dict(desired), dict(observed))


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    return next((c for c in status.get("conditions", []) or [] if c.get("type") == kind), None)


def _not_ready(status: Mapping[str, Any]) -> str:
    """KServe's own words for a predictor that is not ready, if it has any."""
    predictor = _condition(status, "PredictorReady") or _condition(status, "Ready")
    if predictor is None or predictor.get("status") == "True":
        return ""
    return "InferenceService not Ready: " + str(
        predictor.get("message") or predictor.get("reason") or "waiting for KServe"
    )


def observe(
    deployment: ModelDeployment,
    desired: Mapping[str, Any],
    observed: Mapping[str, Any] | None,
    route: Mapping[str, Any] | None = None,
    facts: WorkloadFacts = NO_FACTS,
) -> Observation:
    """Readiness of stable and canary, counted only once KServe has seen the spec we want;
    `desired` and `route` are the objects built from the current status."""
    diagnosis = pod_diagnosis(facts.pods) if facts.pods is not None else ""
    settled = route is None or facts.applied_route == route
    standard = deployment.spec.serving.deployment_mode == "Standard"
    wanted = (desired.get("spec") or {}).get("predictor", {}).get("name")
    service = predictor_service(inference_service_name(deployment), wanted)
    waiting = f"waiting for KServe to serve {service}"
    if not matches(desired, observed):
        # Said as what follows the apply this pass makes, so the status written before it
        # still holds once the watch returns the InferenceService: one status write, not two.
        detail = waiting if standard else "InferenceService not Ready: waiting for KServe"
        return Observation(False, False, False, detail, diagnosis, settled, known=False)
    assert observed is not None
    status = observed.get("status") or {}
    # KServe copies the Deployment's (Standard) or Knative Service's observedGeneration into
    # the InferenceService status, so it says nothing about our spec. In Standard mode the
    # address names the stable predictor's Service: that tells a retarget has been seen.
    if standard:
        host = urlparse(str((status.get("address") or {}).get("url") or "")).hostname or ""
        if host.split(".")[0] != service:
            detail = _not_ready(status) or waiting
            return Observation(False, False, True, detail, diagnosis, settled, known=False)
    ready = _condition(status, "Ready")
    predictor = _condition(status, "PredictorReady") or ready
    stable_ready = predictor is not None and predictor.get("status") == "True"
    canary = deployment.status.canary
    kserve_ready = False
    if canary is not None and deployment.spec.serving.deployment_mode == "Standard":
        kserve_ready = any(
            item.get("name") == canary.name and item.get("ready")
            for item in status.get("canaryStatuses", []) or []
        )
    elif canary is not None:
        kserve_ready = ready is not None and ready.get("status") == "True"
    canary_ready = kserve_ready and facts.canary_endpoints is not False
    detail = ""
    if not stable_ready:
        detail = _not_ready(status) or "InferenceService not Ready: waiting for KServe"
    elif canary is not None and kserve_ready and not canary_ready:
        detail = (
            f"KServe reports the canary ready; its Service "
            f"{canary_backend(deployment, canary.name or 'canary')} has no "
            "ready endpoint yet"
        )
    elif canary is not None and not canary_ready:
        detail = "KServe reports the canary predictor not ready" + (
            f" ({_condition(status, 'CanaryPredictorReady').get('reason')})"  # type: ignore[union-attr]
            if _condition(status, "CanaryPredictorReady")
            else ""
        )
    return Observation(stable_ready, canary_ready, True, detail, diagnosis, settled)


@dataclass(frozen=True)
class EndpointCheck:
    """Which Service's ready endpoints let the canary have traffic, counting only the pods
    whose names start with `pod_prefix` (the logged Service follows each canary in turn)."""

    service: str
    pod_prefix: str


def endpoint_check(
    deployment: ModelDeployment, observed: Mapping[str, Any] | None
) -> EndpointCheck | None:
    """The canary Service whose endpoints decide whether it may get traffic: looked up while
    the canary waits for its traffic and KServe reports it ready (afterwards KServe's
    readiness is enough)."""
    canary = deployment.status.canary
    if (
        canary is None
        or canary.aborting
        or canary.step_started_at is not None
        or deployment.spec.serving.deployment_mode != "Standard"
    ):
        return None
    statuses = ((observed or {}).get("status") or {}).get("canaryStatuses") or []
    if not any(item.get("name") == canary.name and item.get("ready") for item in statuses):
        return None
    predictor = canary.name or "canary"
    return EndpointCheck(
        canary_backend(deployment, predictor), canary_pod_prefix(deployment, predictor)
    )


def diagnosis_selector(deployment: ModelDeployment, now: datetime) -> str | None:
    """The label selector of the pods to describe, once a version waiting for readiness is past
    its progress deadline (so a rollback or failure can say what the pods report)."""
    status = deployment.status
    deadline = progress_deadline(deployment.spec.rollout)
    canary, deploying = status.canary, status.deploying
    version: str | None
    if canary is not None and canary.step_started_at is None and not canary.aborting:
        if not deadline_passed(canary.waiting_since or canary.started_at, deadline, now):
            return None
        version = canary.version
    elif status.stable is None and deploying is not None:
        if not deadline_passed(deploying.since, deadline, now):
            return None
        version = deploying.version
    else:
        return None
    selector = f"{DEPLOYMENT_LABEL}={deployment.metadata.name}"
    return f"{selector},{VERSION_LABEL}={version}" if version else selector
