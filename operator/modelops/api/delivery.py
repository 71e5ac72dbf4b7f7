"""How new versions reach traffic: rollout steps and their analysis."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from modelops.api.base import ALIAS_RULES, MlflowAlias, SpecModel
from modelops.api.schema_types import (
    Duration,
    LabelName,
    ObjectName,
    Percent,
    Rule,
    validations,
)


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

    progress_deadline: Annotated[
        Duration,
        Field(
            json_schema_extra=validations(
                Rule(
                    "duration(self) >= duration('30s')",
                    "spec.rollout.progressDeadline must be at least 30s (a model server needs "
                    "time to start), for example 10m",
                )
            )
        ),
    ] = "10m"
    """How long a new version may take to become ready (its model loaded, ready for 10s without a break) before it is rolled back; a first version that misses it is Failed. Counts again from each loss of readiness."""


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


MetricPreset = Literal[
    "mlserver-error-rate",
    "mlserver-http-error-rate",
    "mlserver-latency-mean",
    "mlserver-latency-p95",
    "mlserver-latency-p99",
    "knative-error-rate",
    "knative-latency-p95",
    "knative-latency-p99",
    "kserve-latency-p95",
    "kserve-latency-p99",
    "istio-error-rate",
    "istio-latency-p95",
    "istio-latency-p99",
    "monitor-drifted-features-share",
    "monitor-drift-psi-max",
    "monitor-accuracy",
    "monitor-mae",
    "monitor-rmse",
]


class MetricSpec(SpecModel):
    """One analysis metric: a PromQL query (or preset) and its thresholds."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "has(self.query) != has(self.preset)",
                "set exactly one of query (PromQL template) or preset",
            ),
            Rule(
                "has(self.min) || has(self.max) || has(self.maxRatio) || has(self.minRatio)",
                "a metric needs a threshold: set min, max, or compareTo: stable with maxRatio "
                "(lower is better) or minRatio (higher is better)",
            ),
            Rule(
                "has(self.compareTo) == (has(self.maxRatio) || has(self.minRatio))",
                "compareTo: stable and maxRatio or minRatio go together",
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
    """PromQL template returning one series; {{ namespace }}, {{ deployment }}, {{ isvc }}, {{ version }}, {{ stableVersion }}, {{ service }}, {{ revision }} and {{ window }} are filled in and escaped. With compareTo: stable it is run once more with the stable version's values."""

    preset: MetricPreset | None = None
    """A built-in query (error rates as a share 0-1, latencies in seconds), named by the metrics it reads: mlserver-*, knative-* (queue-proxy), kserve-* (KServe Python server), istio-* (Istio's standard request metrics, which Istio and several Gateway API implementations export). Each answers whenever the version received requests (absent counters count as 0; a latency of only failures is +Inf) and is Inconclusive without requests; docs/progressive-delivery.md lists each query and the scrape set-up it assumes."""

    min: float | None = None
    """The measurement fails below this value."""

    max: float | None = None
    """The measurement fails above this value."""

    compare_to: Literal["stable"] | None = None
    """Judge the canary against the stable version over the same window."""

    max_ratio: Annotated[float, Field(gt=0)] | None = None
    """With compareTo: stable, the canary fails when canary/stable exceeds this ratio."""

    min_ratio: Annotated[float, Field(gt=0)] | None = None
    """With compareTo: stable, the canary fails when canary/stable is below this ratio (for a
    metric where higher is better, such as accuracy: 0.95 allows 5% worse than the stable)."""

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
