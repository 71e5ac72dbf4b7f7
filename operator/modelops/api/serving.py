"""What to serve and how: the registered model and KServe settings."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from modelops.api.base import ALIAS_RULES, MlflowAlias, SpecModel
from modelops.api.schema_types import (
    Duration,
    ObjectName,
    Quantity,
    Rule,
    validations,
)


class RegistrySpec(SpecModel):
    """Where the MLflow Model Registry is. Omitted fields take the operator-wide defaults."""

    tracking_uri: (
        Annotated[str, StringConstraints(pattern=r"^https?://.+", max_length=2048)] | None
    ) = None
    """MLflow tracking server URL, for example http://mlflow.mlflow:5000."""

    credentials_secret: ObjectName | None = None
    """Secret in the deployment's namespace holding MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD. Credentials never go in the spec."""

    poll_interval: Duration = "30s"
    """How often the registry is asked whether the version or alias moved."""

    artifacts_destination: Annotated[str, StringConstraints(max_length=2048)] | None = None
    """The artifact store the MLflow server proxies (for example s3://mlflow/artifacts): mlflow-artifacts:/ URIs are mapped onto it."""


class ModelSpec(SpecModel):
    """The registered model to serve: pin a version, or follow an alias."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "has(self.version) != has(self.alias)",
                "set exactly one of spec.model.version (pin a version) or spec.model.alias (follow an alias)",
            )
        )
    )

    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    """Name of the registered model in MLflow."""

    version: Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]*$", max_length=16)] | None = (
        None
    )
    """Model version to serve (MLflow versions are whole numbers). Exactly one of version or alias."""

    alias: Annotated[MlflowAlias, Field(json_schema_extra=ALIAS_RULES)] | None = None
    """MLflow alias to follow, for example champion: every move of the alias starts a rollout."""

    registry: RegistrySpec | None = None
    """Registry connection for this deployment; the operator-wide default when omitted."""


class ModelFormat(SpecModel):
    """A KServe model format, matched against the ServingRuntimes' supported formats."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=63)]
    """Format name, for example sklearn, mlflow, xgboost, onnx."""

    version: Annotated[str, StringConstraints(max_length=32)] | None = None
    """Format version, when the runtime distinguishes versions."""


class StorageSpec(SpecModel):
    """How the model's artifacts reach the model server."""

    mode: Literal["Resolve", "StorageInitializer"] = "Resolve"
    """Resolve: map the registry's download URI to one KServe reads (s3://, gs://, pvc://...). StorageInitializer: hand models:/ URIs to the modelops storage initializer."""

    artifacts_destination: Annotated[str, StringConstraints(max_length=2048)] | None = None
    """Overrides the registry's artifactsDestination for this deployment."""


class ResourceRequirements(SpecModel):
    """Compute resources of the model server container."""

    limits: dict[str, Quantity] | None = None
    """Maximum resources, for example {cpu: "1", memory: 2Gi}."""

    requests: dict[str, Quantity] | None = None
    """Guaranteed resources, for example {cpu: 100m, memory: 512Mi}."""


class ParentReference(SpecModel):
    """A Gateway API Gateway the HTTPRoute attaches to."""

    name: ObjectName
    """Name of the Gateway."""

    namespace: ObjectName | None = None
    """Namespace of the Gateway; the deployment's when omitted."""

    section_name: ObjectName | None = None
    """A listener of the Gateway."""


class HttpRouteSpec(SpecModel):
    """Split traffic between stable and canary with a Gateway API HTTPRoute. KServe v0.20's
    Standard mode routes its own host to the stable predictor only, so an exact canary share
    needs this (or a mesh)."""

    hostnames: Annotated[
        list[
            Annotated[
                str, StringConstraints(pattern=r"^[a-z0-9*]([-a-z0-9.]*[a-z0-9])?$", max_length=253)
            ]
        ],
        Field(min_length=1, max_length=16),
    ]
    """Host names clients use, for example fraud.models.example.com."""

    parent_refs: Annotated[list[ParentReference], Field(max_length=8)] = []
    """Gateways the route attaches to."""


class ReadinessSpec(SpecModel):
    """When a model server pod counts as ready for traffic."""

    check: Literal["ModelLoaded", "Runtime"] = "ModelLoaded"
    """ModelLoaded: a readiness probe on the model server's own model readiness (GET /v2/models/{name}/ready for the v2 protocols, /v1/models/{name} for v1), so a pod is Ready only once its model has loaded. Runtime: keep the probe the ServingRuntime or KServe gives (KServe's default only checks that the port is open)."""

    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    """HTTP port of the model server's REST API (KServe's runtimes listen on 8080)."""


class ServingSpec(SpecModel):
    """How KServe serves the model."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "!has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
                "spec.serving.minReplicas must not exceed spec.serving.maxReplicas",
                field_path=".minReplicas",
            ),
            Rule(
                "!has(self.httpRoute) || self.deploymentMode == 'Standard'",
                "spec.serving.httpRoute applies to deploymentMode: Standard only (Knative splits "
                "traffic between revisions itself); remove httpRoute or use Standard",
                field_path=".httpRoute",
            ),
        )
    )

    deployment_mode: Literal["Standard", "Knative", "Serverless"] = "Standard"
    """KServe deployment mode. Standard: plain Deployments (canaries are separate predictors). Knative: Knative revisions (canaries by canaryTrafficPercent); Serverless is its older name."""

    model_format: ModelFormat | None = None
    """Model format; derived from the version's MLmodel flavors when omitted."""

    runtime: ObjectName | None = None
    """Name of a ServingRuntime or ClusterServingRuntime; KServe picks one for the format when omitted."""

    protocol_version: Literal["v1", "v2", "grpc-v2"] = "v2"
    """Inference protocol of the model server."""

    storage: StorageSpec = Field(default_factory=StorageSpec, json_schema_extra={"default": {}})
    """How artifacts are fetched."""

    storage_uri: (
        Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9+.-]*://.+", max_length=2048)]
        | None
    ) = None
    """Serve this URI as it is and skip registry resolution (for example s3://bucket/models/fraud/7)."""

    min_replicas: Annotated[int, Field(ge=0, le=1000)] = 1
    """Minimum number of model server replicas."""

    max_replicas: Annotated[int, Field(ge=1, le=1000)] | None = None
    """Maximum number of replicas for autoscaling; KServe's default when omitted."""

    resources: ResourceRequirements | None = None
    """CPU and memory of the model server."""

    http_route: HttpRouteSpec | None = None
    """Standard mode: an HTTPRoute modelops keeps pointed at stable and canary with the step's weights."""

    readiness: ReadinessSpec = Field(
        default_factory=ReadinessSpec, json_schema_extra={"default": {}}
    )
    """When a model server counts as ready: its model loaded (default), or the runtime's own probe."""
