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


def desired_inference_service(deployment: ModelDeployment, served: ServedModel) -> dict[str, Any]:
    """The full InferenceService manifest the deployment owns.

    The spec hash annotation records what was asked for, so a later reconcile can tell a changed
    spec (fields may need removing) from a hand edit of the InferenceService (restore it).
    """
    serving = deployment.spec.serving
    labels = deployment_labels(deployment, served)

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

    predictor: dict[str, Any] = {
        "minReplicas": serving.min_replicas,
        "labels": dict(labels),
        "model": model,
    }
    if serving.max_replicas is not None:
        predictor["maxReplicas"] = serving.max_replicas

    spec = {"predictor": predictor}
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
