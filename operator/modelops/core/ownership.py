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
from modelops.core.sharding import shard_labels

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


def deployment_labels(
    deployment: ModelDeployment, served: ServedModel, *, shard: bool = True
) -> dict[str, str]:
    """The labels of an object the deployment owns. `shard=False` for labels KServe puts on
    pods only: the shard selects objects the operator watches, and a handover to another shard
    then changes no predictor spec."""
    labels = {
        MANAGED_BY: "modelops",
        DEPLOYMENT_LABEL: deployment.metadata.name,
        MODEL_LABEL: label_value(deployment.spec.model.name),
        **(shard_labels(deployment.metadata.labels) if shard else {}),
    }
    if served.version is not None:
        labels[VERSION_LABEL] = served.version
    return labels
