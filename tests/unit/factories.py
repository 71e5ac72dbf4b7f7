"""Builders of ModelDeployments for unit tests (plain data, as the API server returns it)."""

from __future__ import annotations

from typing import Any

from modelops.api.resource import ModelDeployment
from modelops.core.registry import VersionAnswer
from tests.bodies import with_values

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
    """A ModelDeployment body; keyword names are paths with "__" between keys
    (spec__serving__runtime="x"); None deletes the key."""
    return with_values(BASE, {tuple(name.split("__")): value for name, value in overrides.items()})


def deployment(**overrides: Any) -> ModelDeployment:
    return ModelDeployment.model_validate(deployment_body(**overrides))


READY_V7 = VersionAnswer(
    version="7",
    status="READY",
    download_uri="mlflow-artifacts:/3/models/m-7/artifacts",
    run_id="run-7",
    source="models:/m-7",
    flavors=(("python_function", "model.pkl"), ("sklearn", "model.pkl")),
    run_tags=(("dvc.rev", "a1b2c3"),),
)


def registry_body(**overrides: Any) -> dict[str, Any]:
    """A deployment that follows the registry (no storageUri, no modelFormat)."""
    values: dict[str, Any] = {
        "spec__serving__storageUri": None,
        "spec__serving__modelFormat": None,
        "spec__model__registry": {"artifactsDestination": "s3://mlflow/artifacts"},
    }
    return deployment_body(**{**values, **overrides})
