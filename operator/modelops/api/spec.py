"""The ModelDeployment spec: what a person (or Git) asks for.

These models are the single source of the CRD schema (`make crds`): attribute docstrings become
the descriptions `kubectl explain` shows, constraints become OpenAPI bounds and patterns, and the
`validations(...)` rules become CEL checks the API server runs on every write.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from modelops.api.schema_types import (
    Duration,
    LabelName,
    ObjectName,
    Percent,
    Quantity,
    Rule,
    validations,
)

# MLflow's own rules: aliases are word characters and dashes, never "latest" or "v<number>".
MlflowAlias = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$", max_length=255)]
ALIAS_RULES = validations(
    Rule("self.lowerAscii() != 'latest'", "'latest' is reserved by MLflow and cannot be an alias"),
    Rule(
        "!self.matches('^[vV][0-9]+$')",
        "an alias cannot look like a version reference (v<number>); pick another alias name",
    ),
)


class SpecModel(BaseModel):
    """Base of every spec block: camelCase on the wire, docstrings as descriptions."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="ignore",
        frozen=True,
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


class ServingSpec(SpecModel):
    """How KServe serves the model."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "!has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
                "spec.serving.minReplicas must not exceed spec.serving.maxReplicas",
                field_path=".minReplicas",
            )
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


class TrafficStep(SpecModel):
    """One canary step: this share of traffic for this long, judged by the analysis."""

    traffic: Annotated[Percent, Field(ge=1)]
    """Percentage of requests the new version receives during the step (1-100)."""

    duration: Duration
    """How long the step lasts before the next one, for example 2m."""


class RolloutSpec(SpecModel):
    """How a new version replaces the stable one."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "self.strategy != 'Canary' || size(self.steps) > 0",
                "a Canary rollout needs at least one entry in spec.rollout.steps (or use strategy: Direct)",
                field_path=".steps",
            )
        )
    )

    strategy: Literal["Canary", "Direct"] = "Canary"
    """Canary: traffic moves in steps. Direct: 100% at once, then the bake period under analysis."""

    steps: Annotated[
        list[TrafficStep],
        Field(
            max_length=20,
            json_schema_extra=validations(
                Rule(
                    "self.map(s, s.traffic).isSorted() && "
                    "self.all(s, self.filter(t, t.traffic == s.traffic).size() == 1)",
                    "traffic of spec.rollout.steps must be strictly increasing, for example 10, 50, 100",
                )
            ),
        ),
    ] = []
    """Canary steps in order; traffic strictly increasing within 1-100."""

    bake: Duration = "5m"
    """Direct strategy: how long the new version runs under analysis before it counts as promoted."""

    promotion: Literal["Auto", "Manual"] = "Auto"
    """Auto: promote when the last step passes. Manual: wait for `modelops promote`."""

    promote_alias: Annotated[MlflowAlias, Field(json_schema_extra=ALIAS_RULES)] | None = None
    """MLflow alias to point at a version once it is promoted, for example champion."""


class PrometheusTLS(SpecModel):
    """TLS settings for the Prometheus connection."""

    insecure_skip_verify: bool = False
    """Skip verification of the server certificate (tests only)."""

    ca_secret: ObjectName | None = None
    """Secret holding ca.crt to verify the server with."""


class PrometheusSpec(SpecModel):
    """The Prometheus server analysis queries go to."""

    url: Annotated[str, StringConstraints(pattern=r"^https?://.+", max_length=2048)]
    """Base URL of the Prometheus HTTP API, for example http://prometheus.monitoring:9090."""

    auth_secret: ObjectName | None = None
    """Secret holding token (bearer), or username and password (basic auth)."""

    tls: PrometheusTLS | None = None
    """TLS options."""


MetricPreset = Literal["error-rate", "latency-p95", "latency-p99"]


class MetricSpec(SpecModel):
    """One analysis metric: a PromQL query (or preset) and its thresholds."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "has(self.query) != has(self.preset)",
                "set exactly one of query (PromQL template) or preset",
            ),
            Rule(
                "has(self.min) || has(self.max) || has(self.maxRatio)",
                "a metric needs a threshold: set min, max, or compareTo: stable with maxRatio",
            ),
            Rule(
                "has(self.compareTo) == has(self.maxRatio)",
                "compareTo: stable and maxRatio go together",
            ),
            Rule(
                "!has(self.min) || !has(self.max) || self.min <= self.max",
                "min must not exceed max",
            ),
        )
    )

    name: LabelName
    """Metric name, unique within the analysis; shown in status and events."""

    query: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    """PromQL template; {{ namespace }}, {{ isvc }}, {{ version }}, {{ stableVersion }}, {{ revision }} and {{ window }} are filled in and escaped."""

    preset: MetricPreset | None = None
    """A built-in query: error-rate (share of failed requests), latency-p95, latency-p99 (seconds)."""

    min: float | None = None
    """The measurement fails below this value."""

    max: float | None = None
    """The measurement fails above this value."""

    compare_to: Literal["stable"] | None = None
    """Judge the canary against the stable version over the same window."""

    max_ratio: Annotated[float, Field(gt=0)] | None = None
    """With compareTo: stable, the canary fails when canary/stable exceeds this ratio."""

    window: Duration | None = None
    """Range of the query ({{ window }}); defaults to the analysis interval."""


class AnalysisSpec(SpecModel):
    """How each new version is judged while it receives traffic."""

    prometheus: PrometheusSpec | None = None
    """Prometheus to query; the operator-wide default when omitted."""

    interval: Annotated[
        Duration,
        Field(
            json_schema_extra=validations(
                Rule(
                    "duration(self) >= duration('5s')",
                    "spec.analysis.interval must be at least 5s",
                )
            )
        ),
    ] = "30s"
    """Time between two measurements of each metric (at least 5s)."""

    failure_limit: Annotated[int, Field(ge=0, le=100)] = 2
    """Failed measurements tolerated; one more rolls back."""

    inconclusive_limit: Annotated[int, Field(ge=0, le=100)] = 3
    """Measurements without data tolerated before the rollout pauses."""

    consecutive_error_limit: Annotated[int, Field(ge=0, le=100)] = 4
    """Consecutive failed queries tolerated before the rollout pauses."""

    metrics: Annotated[
        list[MetricSpec],
        Field(
            min_length=1,
            max_length=20,
            json_schema_extra={
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
            },
        ),
    ]
    """Metrics every measurement evaluates; names are unique."""


class DriftSpec(SpecModel):
    """Input drift watching after promotion."""

    enabled: bool = False
    """Watch input drift of the promoted version."""

    max_psi: Annotated[float, Field(ge=0, le=10)] = 0.2
    """Population stability index above which the deployment is Degraded."""


class MonitoringSpec(SpecModel):
    """Watching after promotion."""

    rollback_window: Duration = "1h"
    """A promoted version that degrades within this window is rolled back to the previous good one."""

    drift: DriftSpec | None = None
    """Input drift watching."""


class MetricTrigger(SpecModel):
    """Retrain when a PromQL query leaves its bounds."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule("has(self.min) || has(self.max)", "a metric trigger needs min or max"),
        )
    )

    query: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    """PromQL template, filled in as analysis queries are."""

    min: float | None = None
    """Breach below this value."""

    max: float | None = None
    """Breach above this value."""


class DriftTrigger(SpecModel):
    """Retrain when the drift score stays high."""

    max_psi: Annotated[float, Field(ge=0, le=10)]
    """Drift score (population stability index) above which the trigger breaches."""

    metric: (
        Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$", max_length=200)]
        | None
    ) = None
    """Prometheus metric with the drift score; the drift monitor's when omitted."""


CRON_PATTERN = r"^(\S+\s+){4}\S+$"


class RetrainingTrigger(SpecModel):
    """One reason to retrain. Set exactly one of metric, drift, schedule, onRollback, onDegraded."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "[has(self.metric), has(self.drift), has(self.schedule), has(self.onRollback), "
                "has(self.onDegraded)].filter(x, x).size() == 1",
                "set exactly one of metric, drift, schedule, onRollback or onDegraded in each trigger",
            ),
            Rule(
                "!has(self.timeZone) || has(self.schedule)",
                "timeZone only applies to a schedule trigger",
            ),
        )
    )

    name: LabelName | None = None
    """Trigger id, used in Job names and events; derived from the position when omitted."""

    metric: MetricTrigger | None = None
    """Retrain when this query breaches."""

    drift: DriftTrigger | None = None
    """Retrain when input drift stays above a threshold."""

    schedule: Annotated[str, StringConstraints(pattern=CRON_PATTERN, max_length=100)] | None = None
    """Cron expression (5 fields), for example "0 3 * * 0"."""

    time_zone: Annotated[str, StringConstraints(max_length=64)] | None = None
    """IANA time zone of the schedule, for example Europe/Berlin; UTC when omitted."""

    on_rollback: bool | None = None
    """Retrain after an automatic rollback."""

    on_degraded: bool | None = None
    """Retrain when post-promotion monitoring marks the deployment Degraded."""

    for_: Annotated[Duration | None, Field(alias="for")] = None
    """How long a metric or drift breach must hold before the trigger fires."""


class JobTemplate(SpecModel):
    """A batch/v1 Job template for retraining."""

    metadata: dict[str, Any] | None = Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    """Labels and annotations for the Job."""

    spec: dict[str, Any] = Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    """A batch/v1 JobSpec; modelops injects its environment into every container."""


class CandidateSpec(SpecModel):
    """How the version a retraining Job registered is found."""

    alias: MlflowAlias | None = None
    """Alias the trainer points at its version, for example challenger; otherwise the newest READY version tagged with the trigger id."""


class RetrainingSpec(SpecModel):
    """When and how to retrain."""

    triggers: Annotated[list[RetrainingTrigger], Field(min_length=1, max_length=10)]
    """Reasons to retrain."""

    cooldown: Duration = "6h"
    """Minimum time between two trigger firings."""

    job_template: JobTemplate
    """The retraining Job."""

    candidate: CandidateSpec | None = None
    """How the retrained version is found."""


class ModelDeploymentSpec(SpecModel):
    """A model from an MLflow registry, served by KServe, rolled out, judged, and retrained."""

    model: ModelSpec
    """The registered model and the version or alias to serve."""

    serving: ServingSpec = Field(default_factory=ServingSpec, json_schema_extra={"default": {}})
    """How KServe serves it."""

    rollout: RolloutSpec | None = None
    """How new versions are rolled out; a new version replaces the old at once when omitted."""

    analysis: AnalysisSpec | None = None
    """How new versions are judged with Prometheus queries."""

    monitoring: MonitoringSpec | None = None
    """Watching after promotion."""

    retraining: RetrainingSpec | None = None
    """Retraining triggers and the Job to run."""
