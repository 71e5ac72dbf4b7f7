"""How modelops marks what it owns: its labels and the controller owner reference."""

from __future__ import annotations

from typing import Any

from modelops.api.resource import (
    API_VERSION,
    KIND,
    ModelDeployment,
)
from modelops.core.labels import label_value
from modelops.core.served import ServedModel

MANAGED_BY = "app.kubernetes.io/managed-by"


DEPLOYMENT_LABEL = "modelops.io/deployment"


MODEL_LABEL = "modelops.io/model"


VERSION_LABEL = "modelops.io/model-version"


def owner_reference(deployment: ModelDeployment) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": deployment.metadata.name,
        "uid": deployment.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def deployment_labels(deployment: ModelDeployment, served: ServedModel) -> dict[str, str]:
    labels = {
        MANAGED_BY: "modelops",
        DEPLOYMENT_LABEL: deployment.metadata.name,
        MODEL_LABEL: label_value(deployment.spec.model.name),
    }
    if served.version is not None:
        labels[VERSION_LABEL] = served.version
    return labels
