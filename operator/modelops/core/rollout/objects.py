"""The objects a status implies (pure): the InferenceService with its stable predictor, canary
and retiring entries, and the HTTPRoute, sized and weighted for the current step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelops.api.resource import (
    KSERVE_GROUP,
    KSERVE_VERSION,
    ModelDeployment,
)
from modelops.api.status import (
    CanaryStatus,
    ModelDeploymentStatus,
    RetiringVersion,
)
from modelops.core.inference_logging import predictor_logging
from modelops.core.ownership import deployment_labels, owner_reference
from modelops.core.rollout.state import first_predictor_name
from modelops.core.rollout.traffic import (
    ReplicaPlan,
    capacity_plan,
    desired_http_route,
    replica_plan,
)
from modelops.core.served import ServedModel, served_model

DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"


INFERENCE_SERVICE_API_VERSION = f"{KSERVE_GROUP}/{KSERVE_VERSION}"


@dataclass(frozen=True)
class CanaryPlan:
    """One `spec.canary[]` entry (Standard) or the canary revision (Knative): what it serves,
    its share and its replicas. Retiring predictors are entries with no traffic."""

    served: ServedModel
    name: str
    traffic: int
    replicas: int | None
    """Standard mode: the entry's minReplicas (KServe subtracts every entry's from the stable's
    minReplicas, so the stable's is written as stable_total)."""
    aborting: bool = False


# Seconds a model server keeps answering after it is told to stop (preStop), while Services,
# gateways and the router stop sending it requests: scale-downs lose no request.
PRE_STOP_SLEEP_SECONDS = 5
KSERVE_CONTAINER = "kserve-container"  # constants.InferenceServiceContainerName


def inference_service_name(deployment: ModelDeployment) -> str:
    """The InferenceService shares the deployment's name (the CRD keeps it short enough)."""
    return deployment.metadata.name


def readiness_probe(deployment: ModelDeployment) -> dict[str, Any] | None:
    """A probe on the model server's own model readiness (None: keep the runtime's). MLServer,
    KServe's Python servers and Triton answer 200 only once the model has loaded; a crash-looping
    server whose port is open for a moment never passes it."""
    serving = deployment.spec.serving
    if serving.readiness.check != "ModelLoaded":
        return None
    name = inference_service_name(deployment)
    path = f"/v1/models/{name}" if serving.protocol_version == "v1" else f"/v2/models/{name}/ready"
    get: dict[str, Any] = {"path": path}
    if serving.deployment_mode == "Standard":
        get["port"] = serving.readiness.port  # Knative probes the container's port itself
    return {"httpGet": get, "periodSeconds": 2, "timeoutSeconds": 2, "failureThreshold": 2}


def _model(deployment: ModelDeployment, served: ServedModel) -> dict[str, Any]:
    serving = deployment.spec.serving
    model_format: dict[str, Any] = {"name": served.model_format}
    if served.model_format_version:
        model_format["version"] = served.model_format_version
    model: dict[str, Any] = {
        "modelFormat": model_format,
        "protocolVersion": serving.protocol_version,
        "storageUri": served.storage_uri,
    }
    if serving.runtime:
        model["runtime"] = serving.runtime
    if serving.resources is not None:
        resources = serving.resources.model_dump(by_alias=True, exclude_none=True)
        if resources:
            model["resources"] = resources
    probe = readiness_probe(deployment)
    if probe is not None:
        model["readinessProbe"] = probe
    if serving.deployment_mode == "Standard":
        # Knative drains revisions itself (and refuses lifecycle hooks on user containers).
        model["lifecycle"] = {"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_SECONDS}}}
    return model


def desired_inference_service(
    deployment: ModelDeployment,
    served: ServedModel,
    *,
    predictor_name: str | None = None,
    canaries: Sequence[CanaryPlan] = (),
    stable_replicas: int | None = None,
) -> dict[str, Any]:
    """The full InferenceService manifest the deployment owns: `served` on the main predictor
    and, during a rollout, the canaries (Standard: `spec.canary[]` entries with their own
    replicas, retiring predictors among them; Knative: the canary's model on the predictor with
    canaryTrafficPercent). `stable_replicas` is the stable's share of minReplicas (Standard)."""
    serving = deployment.spec.serving
    labels = deployment_labels(deployment, served)
    knative = serving.deployment_mode != "Standard"
    knative_canary = canaries[-1] if knative and canaries else None
    main = knative_canary.served if knative_canary is not None else served
    predictor: dict[str, Any] = {
        "minReplicas": serving.min_replicas,
        "labels": deployment_labels(deployment, main, shard=False),
        "model": _model(deployment, main),
    }
    predictor.update(predictor_logging(deployment, main.version))
    if predictor_name and not knative:
        predictor["name"] = predictor_name
    if serving.max_replicas is not None:
        predictor["maxReplicas"] = serving.max_replicas

    spec: dict[str, Any] = {"predictor": predictor}
    if knative_canary is not None:
        predictor["canaryTrafficPercent"] = 0 if knative_canary.aborting else knative_canary.traffic
    elif canaries:
        # KServe subtracts every entry's minReplicas from the stable's: write the sum.
        total = (stable_replicas or serving.min_replicas) + sum(c.replicas or 0 for c in canaries)
        predictor["minReplicas"] = total
        if serving.max_replicas is not None:
            predictor["maxReplicas"] = max(serving.max_replicas, total)
        spec["canary"] = [_canary_entry(deployment, plan) for plan in canaries]
    # Only what KServe needs: it copies the InferenceService's annotations into the pod
    # templates, so any bookkeeping of ours here would restart every predictor on each change.
    annotations = {DEPLOYMENT_MODE_ANNOTATION: serving.deployment_mode}
    return {
        "apiVersion": INFERENCE_SERVICE_API_VERSION,
        "kind": "InferenceService",
        "metadata": {
            "name": inference_service_name(deployment),
            "namespace": deployment.metadata.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(deployment)],
        },
        "spec": spec,
    }


def _canary_entry(deployment: ModelDeployment, plan: CanaryPlan) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": plan.name,
        "labels": deployment_labels(deployment, plan.served, shard=False),
        # The CRD's schema requires a canary's container name, which KServe's defaulting
        # webhook fills in: written here so the entry is valid without that webhook too.
        "model": {"name": KSERVE_CONTAINER, **_model(deployment, plan.served)},
        **predictor_logging(deployment, plan.served.version),
    }
    if plan.replicas is not None:
        entry["minReplicas"] = plan.replicas
    return {"predictor": entry, "trafficPercent": plan.traffic}


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
