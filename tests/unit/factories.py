"""Builders of ModelDeployments for unit tests (plain data, as the API server returns it)."""

from __future__ import annotations

import copy
from typing import Any

from modelops.api.resource import ModelDeployment

BASE: dict[str, Any] = {
    "apiVersion": "modelops.io/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {
        "name": "fraud",
        "namespace": "risk",
        "uid": "1111-2222",
        "generation": 1,
        "resourceVersion": "10",
    },
    "spec": {
        "model": {"name": "fraud-detector", "version": "7"},
        "serving": {
            "modelFormat": {"name": "sklearn"},
            "storageUri": "s3://models/fraud/7",
        },
    },
}


def deployment_body(**overrides: Any) -> dict[str, Any]:
    """A ModelDeployment body; keyword arguments are dotted paths ("spec.serving.runtime")."""
    body = copy.deepcopy(BASE)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split("__")
        node = body
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return body


def deployment(**overrides: Any) -> ModelDeployment:
    return ModelDeployment.model_validate(deployment_body(**overrides))
