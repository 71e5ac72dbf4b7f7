"""The InferenceService a ModelDeployment should own, built from its spec alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelops.api.resource import (
    API_VERSION,
    INFERENCE_SERVICE_PLURAL,
    KIND,
    KSERVE_GROUP,
    KSERVE_VERSION,
    ModelDeployment,
)
from modelops.api.status import ServedVersion
from modelops.core.labels import label_value

MANAGED_BY = "app.kubernetes.io/managed-by"
DEPLOYMENT_LABEL = "modelops.io/deployment"
MODEL_LABEL = "modelops.io/model"
VERSION_LABEL = "modelops.io/model-version"
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"

INFERENCE_SERVICE_API_VERSION = f"{KSERVE_GROUP}/{KSERVE_VERSION}"
__all__ = ["INFERENCE_SERVICE_PLURAL", "ServedModel", "desired_inference_service"]


@dataclass(frozen=True)
class ServedModel:
    """What to serve: the outcome of registry resolution, or the spec's storageUri."""

    storage_uri: str
    model_format: str
    model_format_version: str | None = None
    version: str | None = None
    run_id: str | None = None
    source: str | None = None
    model_format_rule: str | None = None
    storage_rule: str | None = None
    data_version: str | None = None


def served_version(served: ServedModel) -> ServedVersion:
    """The status record of what is served."""
    return ServedVersion(
        version=served.version,
        storage_uri=served.storage_uri,
        model_format=served.model_format,
        run_id=served.run_id,
        source=served.source,
        model_format_rule=served.model_format_rule,
        storage_rule=served.storage_rule,
        data_version=served.data_version,
    )


def served_model(deployment: ModelDeployment, version: ServedVersion) -> ServedModel:
    """What to serve for a version recorded in status."""
    model_format = deployment.spec.serving.model_format
    return ServedModel(
        storage_uri=version.storage_uri or "",
        model_format=version.model_format or (model_format.name if model_format else "mlflow"),
        model_format_version=model_format.version if model_format else None,
        version=version.version,
        run_id=version.run_id,
        source=version.source,
        model_format_rule=version.model_format_rule,
        storage_rule=version.storage_rule,
        data_version=version.data_version,
    )


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


def inference_service_name(deployment: ModelDeployment) -> str:
    """The InferenceService shares the deployment's name (the CRD keeps it short enough)."""
    return deployment.metadata.name


def deployment_labels(deployment: ModelDeployment, served: ServedModel) -> dict[str, str]:
    labels = {
        MANAGED_BY: "modelops",
        DEPLOYMENT_LABEL: deployment.metadata.name,
        MODEL_LABEL: label_value(deployment.spec.model.name),
    }
    if served.version is not None:
        labels[VERSION_LABEL] = served.version
    return labels


def owner_reference(deployment: ModelDeployment) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": deployment.metadata.name,
        "uid": deployment.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


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
        "labels": deployment_labels(deployment, main),
        "model": _model(deployment, main),
    }
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
        "labels": deployment_labels(deployment, plan.served),
        "model": _model(deployment, plan.served),
    }
    if plan.replicas is not None:
        entry["minReplicas"] = plan.replicas
    return {"predictor": entry, "trafficPercent": plan.traffic}
