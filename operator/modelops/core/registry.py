"""From what the MLflow registry says about a version to what KServe can serve (pure).

MLflow 3 answers `get_model_version_download_uri` with `mlflow-artifacts:/...` when its server
proxies the artifact store, which no KServe storage initializer reads: such URIs are mapped
onto the store the server proxies (`artifactsDestination`). Stores KServe reads pass through.
"""

from __future__ import annotations

from collections.abc import Mapping
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


# Native KServe formats whose runtimes read an MLflow flavor's model file directly, by the
# file's extension (MLServer's sklearn/xgboost/lightgbm runtimes look for these names). MLflow 3
# saves scikit-learn models as model.skops by default, which no native runtime reads; those,
# and every other flavor, are served by the mlflow format (MLServer's MLflow runtime, pyfunc).
NATIVE_FORMATS = {
    "sklearn": (".joblib", ".pkl", ".pickle"),
    "xgboost": (".bst", ".json", ".ubj"),
    "lightgbm": (".bst",),
}


@dataclass(frozen=True)
class FormatChoice:
    name: str
    rule: str


def model_format(flavors: Mapping[str, str], *, override: str | None) -> FormatChoice:
    """The KServe model format for a version whose MLmodel lists `flavors` (flavor -> its
    model file, "" when the flavor names none)."""
    if override:
        return FormatChoice(override, "spec.serving.modelFormat")
    for flavor, extensions in NATIVE_FORMATS.items():
        file = flavors.get(flavor)
        if file is None:
            continue
        if file.endswith(extensions):
            return FormatChoice(
                flavor,
                f"MLmodel flavor {flavor} stores {file}, which KServe's {flavor} runtime reads",
            )
        return FormatChoice(
            "mlflow",
            f"MLmodel flavor {flavor} stores {file or 'no model file'}, which KServe's {flavor} "
            "runtime cannot read: served by the mlflow format (pyfunc, protocol v2)",
        )
    listed = ", ".join(sorted(flavors)) or "none"
    return FormatChoice(
        "mlflow", f"MLmodel flavors ({listed}): served by the mlflow format (pyfunc, protocol v2)"
    )


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


@dataclass(frozen=True)
class VersionAnswer:
    """What the registry said about the version to serve (pinned, or the alias's target)."""

    version: str
    status: str
    download_uri: str
    status_message: str | None = None
    run_id: str | None = None
    source: str = ""
    flavors: tuple[tuple[str, str], ...] = ()
    """(flavor, its model file) from the version's MLmodel."""
    run_tags: tuple[tuple[str, str], ...] = ()
    artifacts_destination: str | None = None
    """The operator-wide store behind the server, when configured (the spec's wins)."""
    reference_profile: bool | None = None
    """Whether the version's run logged a reference profile (None: not asked)."""


@dataclass(frozen=True)
class RegistryFailure:
    """The registry could not answer: `transient` failures (unreachable, 5xx) are retried and
    change nothing that is served; the others need a person (unknown model, no access)."""

    reason: str
    message: str
    transient: bool


RegistryObservation = VersionAnswer | RegistryFailure
