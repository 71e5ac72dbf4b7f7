"""The InferenceService a ModelDeployment should own, built from its spec alone."""

from __future__ import annotations

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
from modelops.core.patches import content_hash

MANAGED_BY = "app.kubernetes.io/managed-by"
DEPLOYMENT_LABEL = "modelops.io/deployment"
MODEL_LABEL = "modelops.io/model"
VERSION_LABEL = "modelops.io/model-version"
SPEC_HASH_ANNOTATION = "modelops.io/spec-hash"
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
    """The canary part of the InferenceService: what it serves, its share and replicas."""

    served: ServedModel
    name: str
    traffic: int
    replicas: int | None
    """Standard mode: the canary predictor's replicas (the stable's minReplicas becomes
    stable_total, which KServe reduces by these)."""
    stable_total: int | None
    aborting: bool = False


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
    return model


def desired_inference_service(
    deployment: ModelDeployment,
    served: ServedModel,
    *,
    predictor_name: str | None = None,
    canary: CanaryPlan | None = None,
) -> dict[str, Any]:
    """The full InferenceService manifest the deployment owns: `served` on the main predictor
    and, during a rollout, the canary (Standard: a `spec.canary[]` entry with its own replicas;
    Knative: the canary's model on the predictor with canaryTrafficPercent).

    The spec hash annotation records what was asked for, so a later reconcile can tell a changed
    spec (fields may need removing) from a hand edit of the InferenceService (restore it).
    """
    serving = deployment.spec.serving
    labels = deployment_labels(deployment, served)
    knative = serving.deployment_mode != "Standard"
    main = canary.served if knative and canary is not None else served
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
    if canary is not None and knative:
        predictor["canaryTrafficPercent"] = 0 if canary.aborting else canary.traffic
    elif canary is not None:
        if canary.stable_total is not None:
            predictor["minReplicas"] = canary.stable_total
            if serving.max_replicas is not None:
                predictor["maxReplicas"] = max(serving.max_replicas, canary.stable_total)
        entry: dict[str, Any] = {
            "name": canary.name,
            "labels": deployment_labels(deployment, canary.served),
            "model": _model(deployment, canary.served),
        }
        if canary.replicas is not None:
            entry["minReplicas"] = canary.replicas
        spec["canary"] = [{"predictor": entry, "trafficPercent": canary.traffic}]
    annotations: dict[str, str] = {DEPLOYMENT_MODE_ANNOTATION: serving.deployment_mode}
    annotations[SPEC_HASH_ANNOTATION] = content_hash({"spec": spec, "annotations": annotations})
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
