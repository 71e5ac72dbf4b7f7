"""From what the MLflow registry says about a version to what KServe can serve (pure).

MLflow 3 answers `get_model_version_download_uri` with `mlflow-artifacts:/...` when its server
proxies the artifact store, which no KServe storage initializer reads: such URIs are mapped
onto the store the server proxies (`artifactsDestination`). Stores KServe reads pass through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

StorageMode = Literal["Resolve", "StorageInitializer"]

# Schemes KServe's storage initializer downloads from as they are.
PASS_THROUGH = (
    "s3", "gs", "abfs", "abfss", "https", "http", "pvc", "hdfs", "webhdfs", "oci", "file",
)  # fmt: skip
# The tags a training run may carry to say which data it saw (first found wins).
DATA_VERSION_TAGS = ("modelops.io/data-version", "dvc.rev", "data_version")

VersionStatus = Literal["READY", "PENDING_REGISTRATION", "FAILED_REGISTRATION"]


@dataclass(frozen=True)
class Resolved:
    storage_uri: str
    rule: str
    """How the URI was chosen, for the status (a person can check the mapping)."""


@dataclass(frozen=True)
class Unresolvable:
    reason: str
    message: str


def storage_uri(
    *,
    name: str,
    version: str,
    download_uri: str,
    mode: StorageMode,
    artifacts_destination: str | None,
) -> Resolved | Unresolvable:
    """The storageUri to give KServe for one registered version."""
    if mode == "StorageInitializer":
        return Resolved(f"models:/{name}/{version}", "StorageInitializer: models:/ URI")
    scheme = urlsplit(download_uri).scheme
    if scheme in PASS_THROUGH:
        return Resolved(download_uri, f"Resolve: {scheme}:// passes through")
    if scheme == "mlflow-artifacts":
        if not artifacts_destination:
            return Unresolvable(
                "ArtifactsDestinationUnknown",
                f"version {version} of {name!r} is stored behind the MLflow server "
                f"({download_uri}); set spec.model.registry.artifactsDestination (or "
                "spec.serving.storage.artifactsDestination) to the store the server proxies, "
                "for example s3://mlflow/artifacts, or set spec.serving.storage.mode: "
                "StorageInitializer",
            )
        return Resolved(
            _join(artifacts_destination, _artifact_path(download_uri)),
            "Resolve: mlflow-artifacts:/ mapped onto artifactsDestination",
        )
    return Unresolvable(
        "UnsupportedArtifactLocation",
        f"version {version} of {name!r} is stored at {download_uri}, which KServe cannot "
        "download; set spec.serving.storage.mode: StorageInitializer (downloads through "
        "MLflow) or spec.serving.storageUri",
    )


def _artifact_path(uri: str) -> str:
    """The path part of mlflow-artifacts:/p, mlflow-artifacts:///p or mlflow-artifacts://host/p."""
    return urlsplit(uri).path.lstrip("/")


def _join(destination: str, path: str) -> str:
    return destination.rstrip("/") + "/" + path if path else destination.rstrip("/")


# MLmodel flavor -> KServe model format name, in order of preference. Anything else is served
# through the MLflow flavor (pyfunc) with protocol v2.
FLAVOR_FORMATS = (
    ("sklearn", "sklearn"),
    ("xgboost", "xgboost"),
    ("lightgbm", "lightgbm"),
    ("onnx", "onnx"),
    ("tensorflow", "tensorflow"),
    ("keras", "tensorflow"),
    ("pytorch", "pytorch"),
)


@dataclass(frozen=True)
class FormatChoice:
    name: str
    rule: str


def model_format(flavors: list[str], *, override: str | None) -> FormatChoice:
    """The KServe model format for a version whose MLmodel lists `flavors`."""
    if override:
        return FormatChoice(override, "spec.serving.modelFormat")
    for flavor, name in FLAVOR_FORMATS:
        if flavor in flavors:
            return FormatChoice(name, f"MLmodel flavor {flavor}")
    return FormatChoice("mlflow", "MLmodel has no native KServe flavor: mlflow (pyfunc, v2)")


def data_version(tags: dict[str, str]) -> str | None:
    """Which data trained the run, when the run says so."""
    for tag in DATA_VERSION_TAGS:
        if tags.get(tag):
            return f"{tag}={tags[tag]}"
    return None


def readiness(status: str, status_message: str | None) -> tuple[bool, str | None]:
    """(servable, why not) for a model version's registration status."""
    if status == "READY":
        return True, None
    if status == "PENDING_REGISTRATION":
        return False, "the version is still being registered (PENDING_REGISTRATION); waiting"
    detail = f": {status_message}" if status_message else ""
    return False, f"the version failed to register (FAILED_REGISTRATION){detail}"
