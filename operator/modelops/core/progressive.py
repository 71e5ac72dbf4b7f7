"""Progressive delivery around the state machine (pure): what KServe reports, the objects built
from status, which analysis round is due, and which registry writes are owed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlparse

from modelops.api.delivery import MetricSpec
from modelops.api.resource import ModelDeployment
from modelops.api.status import (
    CanaryStatus,
    ModelDeploymentStatus,
    RetiringVersion,
    ServedVersion,
)
from modelops.core.analysis import Context, Subject, due, query_for
from modelops.core.durations import parse_duration
from modelops.core.inference_service import (
    DEPLOYMENT_LABEL,
    VERSION_LABEL,
    CanaryPlan,
    ServedModel,
    desired_inference_service,
    inference_service_name,
    served_model,
)
from modelops.core.patches import owned_fields_match
from modelops.core.promql import TemplateError
from modelops.core.readiness import (
    DRAIN,
    deadline_passed,
    pod_diagnosis,
    progress_deadline,
)
from modelops.core.rollout_state import Observation, first_predictor_name, steps_of
from modelops.core.traffic import (
    ReplicaPlan,
    capacity_plan,
    desired_http_route,
    predictor_service,
    replica_plan,
)

REJECTED_TAG = ("modelops.io/status", "rejected")


def candidate_view(deployment: ModelDeployment) -> ModelDeployment:
    """The deployment as the registry should resolve it: a retrained version waiting to be
    rolled out takes the place of the spec's version or alias (the spec itself is unchanged)."""
    retraining = deployment.status.retraining
    if retraining is None or retraining.candidate_version is None:
        return deployment
    if deployment.spec.serving.storage_uri is not None:
        return deployment
    model = deployment.spec.model.model_copy(
        update={"version": retraining.candidate_version, "alias": None}
    )
    spec = deployment.spec.model_copy(update={"model": model})
    return deployment.model_copy(update={"spec": spec})


def planned_replicas(deployment: ModelDeployment, traffic: int) -> ReplicaPlan:
    """Replicas for a step: sized to the share when an HTTPRoute splits traffic, otherwise
    the split of replicas closest to the step's share."""
    serving = deployment.spec.serving
    if serving.http_route is not None:
        return capacity_plan(traffic, serving.min_replicas)
    return replica_plan(traffic, serving.min_replicas, serving.max_replicas)


def canary_plan(deployment: ModelDeployment, canary: CanaryStatus) -> CanaryPlan:
    replicas = None
    if deployment.spec.serving.deployment_mode == "Standard":
        replicas = planned_replicas(deployment, canary.traffic).canary
    return CanaryPlan(
        served=served_model(deployment, canary),
        name=canary.name or "canary",
        traffic=canary.traffic,
        replicas=replicas,
        aborting=canary.aborting,
    )


def retiring_plan(deployment: ModelDeployment, retiring: RetiringVersion) -> CanaryPlan:
    """A predictor draining after it lost its traffic: a canary entry with no share, so KServe
    keeps its Deployment and Service (and the same pods) until it is dropped."""
    return CanaryPlan(
        served=served_model(deployment, retiring),
        name=retiring.predictor or "retiring",
        traffic=0,
        replicas=retiring.replicas or max(1, deployment.spec.serving.min_replicas),
    )


def stable_replicas(deployment: ModelDeployment, canary: CanaryStatus | None) -> int:
    """Pods the stable predictor keeps: all of minReplicas, less the canary's during a step."""
    serving = deployment.spec.serving
    if canary is None or canary.aborting or serving.deployment_mode != "Standard":
        return serving.min_replicas
    return planned_replicas(deployment, canary.traffic).stable


def routed(canary: CanaryStatus | None) -> bool:
    """Whether the canary receives traffic: only once its step clock runs (it has been ready
    for the sustained interval), and not while it is being rolled back."""
    return canary is not None and not canary.aborting and canary.step_started_at is not None


def objects_for(
    deployment: ModelDeployment, status: ModelDeploymentStatus, target: ServedModel
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The InferenceService and HTTPRoute a status implies (target serves until a stable exists)."""
    stable = status.stable
    primary = served_model(deployment, stable) if stable is not None else target
    canary = status.canary
    plans = [retiring_plan(deployment, r) for r in status.retiring if r.predictor]
    if canary is not None:
        plans.append(canary_plan(deployment, canary))
    predictor = stable.predictor if stable else first_predictor_name(deployment, target)
    service = desired_inference_service(
        deployment,
        primary,
        predictor_name=predictor,
        canaries=plans,
        stable_replicas=stable_replicas(deployment, canary),
    )
    live = canary if routed(canary) else None
    route = desired_http_route(
        deployment,
        predictor,
        live.name if live is not None else None,
        live.traffic if live is not None else 0,
    )
    return service, route


def matches(desired: Mapping[str, Any], observed: Mapping[str, Any] | None) -> bool:
    return observed is not None and owned_fields_match(dict(desired), dict(observed))


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    return next((c for c in status.get("conditions", []) or [] if c.get("type") == kind), None)


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
    if not matches(desired, observed):
        return Observation(
            False, False, False, "applying the InferenceService", diagnosis, settled, known=False
        )
    assert observed is not None
    status = observed.get("status") or {}
    # KServe copies the Deployment's (Standard) or Knative Service's observedGeneration into
    # the InferenceService status, so it says nothing about our spec. In Standard mode the
    # address names the stable predictor's Service: that tells a retarget has been seen.
    if deployment.spec.serving.deployment_mode == "Standard":
        wanted = (desired.get("spec") or {}).get("predictor", {}).get("name")
        service = predictor_service(inference_service_name(deployment), wanted)
        host = urlparse(str((status.get("address") or {}).get("url") or "")).hostname or ""
        if host.split(".")[0] != service:
            detail = _not_ready(status) or f"waiting for KServe to serve {service}"
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
            f"{predictor_service(inference_service_name(deployment), canary.name)} has no "
            "ready endpoint yet"
        )
    elif canary is not None and not canary_ready:
        detail = "KServe reports the canary predictor not ready" + (
            f" ({_condition(status, 'CanaryPredictorReady').get('reason')})"  # type: ignore[union-attr]
            if _condition(status, "CanaryPredictorReady")
            else ""
        )
    return Observation(stable_ready, canary_ready, True, detail, diagnosis, settled)


def endpoint_check(deployment: ModelDeployment, observed: Mapping[str, Any] | None) -> str | None:
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
    return predictor_service(inference_service_name(deployment), canary.name)


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


# ---- analysis rounds ------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedQuery:
    metric: MetricSpec
    query: str | TemplateError


@dataclass(frozen=True)
class AnalysisRound:
    subject: Literal["canary", "stable"]
    version: str | None
    queries: tuple[PlannedQuery, ...]


def _revisions(observed: Mapping[str, Any] | None) -> tuple[str, str]:
    """(latest created, latest rolled-out) Knative revision of the predictor."""
    component = ((observed or {}).get("status") or {}).get("components", {}).get("predictor", {})
    latest = component.get("latestCreatedRevision") or component.get("latestReadyRevision") or ""
    stable = (
        component.get("latestRolledoutRevision")
        or component.get("previousRolledoutRevision")
        or latest
    )
    return latest, stable


def _subject(isvc: str, version: ServedVersion, predictor: str | None, revision: str) -> Subject:
    return Subject(
        version=version.version or "",
        service=predictor_service(isvc, predictor),
        revision=revision,
    )


def trigger_values(
    deployment: ModelDeployment, observed: Mapping[str, Any] | None
) -> dict[str, str]:
    """Template values for retraining trigger queries: those of the stable version."""
    isvc = inference_service_name(deployment)
    stable = deployment.status.stable
    _, rolled_out = _revisions(observed)
    version = (stable.version if stable else None) or ""
    analysis = deployment.spec.analysis
    return {
        "namespace": deployment.metadata.namespace,
        "deployment": deployment.metadata.name,
        "isvc": isvc,
        "version": version,
        "stableVersion": version,
        "service": predictor_service(isvc, stable.predictor if stable else None),
        "revision": rolled_out,
        "window": analysis.interval if analysis else "30s",
    }


def analysis_round(
    deployment: ModelDeployment, observed: Mapping[str, Any] | None, now: datetime
) -> AnalysisRound | None:
    """The measurement round due now, or None: the canary once it is ready in its step, or
    the stable version when monitoring is on. One round per interval."""
    spec, status = deployment.spec, deployment.status
    if spec.analysis is None or status.stable is None:
        return None
    canary = status.canary
    if canary is not None and (canary.aborting or canary.step_started_at is None):
        return None
    if canary is None and spec.monitoring is None:
        return None
    if not due(status.analysis, spec.analysis, now):
        return None
    isvc = inference_service_name(deployment)
    latest, rolled_out = _revisions(observed)
    stable = _subject(isvc, status.stable, status.stable.predictor, rolled_out)
    if canary is not None:
        subject, compare = _subject(isvc, canary, canary.name, latest), stable
        kind: Literal["canary", "stable"] = "canary"
        version = canary.version
    else:
        subject, compare, kind, version = stable, None, "stable", status.stable.version
    context = Context(
        namespace=deployment.metadata.namespace,
        deployment=deployment.metadata.name,
        isvc=isvc,
        subject=subject,
        stable=compare,
    )
    # compareTo: stable judges a canary; after promotion there is nothing to compare with.
    queries = tuple(
        PlannedQuery(metric, query_for(metric, spec.analysis, context, index))
        for index, metric in enumerate(spec.analysis.metrics)
        if canary is not None or metric.compare_to is None
    )
    return AnalysisRound(kind, version, queries)


def wake_due(deployment: ModelDeployment, now: datetime) -> bool:
    """Whether the deployment needs a reconcile although nothing changed: a retiring predictor
    has drained, a canary waits for its traffic (readiness is re-checked each tick: its
    endpoints, the sustained interval, the deadline), a first version passes its deadline, an
    analysis round is due, or (without analysis) the current step has run its duration."""
    spec, status = deployment.spec, deployment.status
    if any(now - retiring.since >= DRAIN for retiring in status.retiring):
        return True
    deploying = status.deploying
    if status.stable is None and deploying is not None and not deploying.deadline_exceeded:
        return deadline_passed(deploying.since, progress_deadline(spec.rollout), now)
    canary = status.canary
    if canary is not None and canary.aborting:
        return False
    if canary is not None and canary.step_started_at is None:
        return True
    if spec.analysis is not None and status.stable is not None:
        if canary is not None or spec.monitoring is not None:
            return due(status.analysis, spec.analysis, now)
        return False
    if canary is not None and canary.step_started_at is not None and canary.step is not None:
        steps = steps_of(spec.rollout)
        step = steps[min(canary.step, len(steps) - 1)]
        return now >= canary.step_started_at + parse_duration(step.duration)
    return False


# ---- registry write-back ---------------------------------------------------------------


@dataclass(frozen=True)
class RegistryWrite:
    kind: Literal["alias", "tag"]
    version: str
    alias: str = ""


def registry_writes(
    deployment: ModelDeployment, status: ModelDeploymentStatus
) -> tuple[RegistryWrite, ...]:
    """Writes owed to the registry (level-based: recorded in status once done)."""
    if deployment.spec.serving.storage_uri is not None:
        return ()
    owed = [
        RegistryWrite("tag", entry.version)
        for entry in status.rejected_versions
        if entry.version is not None and not entry.registry_tagged
    ]
    rollout = deployment.spec.rollout
    stable = status.stable
    if (
        rollout is not None
        and rollout.promote_alias
        and stable is not None
        and stable.version is not None
        and status.promoted_alias_version != stable.version
        and status.canary is None
    ):
        owed.append(RegistryWrite("alias", stable.version, rollout.promote_alias))
    return tuple(owed)


def after_registry_writes(
    status: ModelDeploymentStatus, done: tuple[RegistryWrite, ...]
) -> ModelDeploymentStatus:
    tagged = {w.version for w in done if w.kind == "tag"}
    aliased = [w.version for w in done if w.kind == "alias"]
    rejected = [
        r.model_copy(update={"registry_tagged": True}) if r.version in tagged else r
        for r in status.rejected_versions
    ]
    update: dict[str, Any] = {"rejected_versions": rejected}
    if aliased:
        update["promoted_alias_version"] = aliased[-1]
    return status.model_copy(update=update)


def traffic_summary(status: ModelDeploymentStatus) -> str | None:
    stable, canary = status.stable, status.canary
    if stable is None:
        return None
    name = stable.version or "stable"
    if canary is None or canary.aborting:
        return f"{name}: 100%"
    share = canary.effective_traffic if canary.effective_traffic is not None else canary.traffic
    return f"{name}: {100 - share}%, {canary.version or 'canary'}: {share}%"
