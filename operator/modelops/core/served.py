"""What a deployment serves: a model version and where it is stored, as resolved from the
registry or the spec and as recorded in status."""

from __future__ import annotations

from dataclasses import dataclass

from modelops.api.resource import (
    ModelDeployment,
)
from modelops.api.status import ServedVersion


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
