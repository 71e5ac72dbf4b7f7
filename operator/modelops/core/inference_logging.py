"""KServe's inference logger for monitored deployments: every predictor (stable, canary,
retiring) logs its requests and responses to the monitor, and its pods carry the version they
serve in an annotation the logger copies into each event, so the monitor measures traffic
against the reference profile of the version that served it.
"""

from __future__ import annotations

from typing import Any

from modelops.api.lifecycle import InferenceLoggerSpec, MonitoringSpec
from modelops.api.resource import ModelDeployment
from modelops.core.conditions import MONITORING, ConditionUpdate
from modelops.core.ownership import MANAGED_BY, owner_reference
from modelops.core.registry import RegistryObservation, VersionAnswer
from modelops.core.sharding import shard_labels

# Read by the monitor from each event's ce-annotations.
VERSION_ANNOTATION = "modelops.io/version"
# Where modelops.profile.log_reference stores a version's reference profile in its run.
PROFILE_ARTIFACT = "modelops/reference-profile.json"
PROFILE_HINT = (
    "log one from the training run with modelops.profile.log_reference(frame), or run "
    "`modelops profile DATA --run-id RUN`"
)


def logging_wanted(deployment: ModelDeployment) -> bool:
    monitoring = deployment.spec.monitoring
    return bool(monitoring and monitoring.drift and monitoring.drift.enabled)


def with_default_logger(
    deployment: ModelDeployment, url: str | None, capture_store: str | None = None
) -> ModelDeployment:
    """The deployment with the operator-wide monitor URL (and capture store) where its spec
    names none."""
    monitoring = deployment.spec.monitoring
    if monitoring is None or (url is None and capture_store is None):
        return deployment
    logger = monitoring.logger
    if logger is None:
        if url is None:
            return deployment
        logger = InferenceLoggerSpec(url=url, capture_store=capture_store)
    elif logger.capture_store is None and capture_store is not None:
        logger = logger.model_copy(update={"capture_store": capture_store})
    else:
        return deployment
    filled = monitoring.model_copy(update={"logger": logger})
    spec = deployment.spec.model_copy(update={"monitoring": filled})
    return deployment.model_copy(update={"spec": spec})


def logger_url(deployment: ModelDeployment) -> str | None:
    monitoring: MonitoringSpec | None = deployment.spec.monitoring
    if not logging_wanted(deployment) or monitoring is None or monitoring.logger is None:
        return None
    return monitoring.logger.url


def production_data(deployment: ModelDeployment) -> str | None:
    """This deployment's captured labelled rows (the monitor's layout in the store)."""
    monitoring = deployment.spec.monitoring
    if not logging_wanted(deployment) or monitoring is None or monitoring.logger is None:
        return None
    store = monitoring.logger.capture_store
    if not store:
        return None
    return f"{store.rstrip('/')}/{deployment.metadata.namespace}/{deployment.metadata.name}"


def predictor_logging(deployment: ModelDeployment, version: str | None) -> dict[str, Any]:
    """The predictor fields that make KServe log a version's traffic (empty when off)."""
    url = logger_url(deployment)
    if url is None or not version:
        return {}
    return {
        "logger": {"mode": "all", "url": url, "metadataAnnotations": [VERSION_ANNOTATION]},
        "annotations": {VERSION_ANNOTATION: version},
    }


# KServe's agent listens here; KServe points a logged predictor's own Service at it, but not a
# canary's (KServe v0.20 builds the canary Service from the model container's port).
AGENT_PORT = 9081


def routes_through_agent(deployment: ModelDeployment) -> bool:
    """Whether canary traffic needs a Service of ours to reach the canary's agent: logging on,
    Standard mode, and an HTTPRoute that sends the canary its share."""
    serving = deployment.spec.serving
    return (
        logger_url(deployment) is not None
        and serving.deployment_mode == "Standard"
        and serving.http_route is not None
    )


def logged_canary_service_name(deployment: ModelDeployment) -> str:
    return f"{deployment.metadata.name}-canary-logged"


def canary_pod_prefix(deployment: ModelDeployment, predictor: str) -> str:
    """The names of a canary predictor's pods start so (its Deployment's name)."""
    return f"{deployment.metadata.name}-{predictor}-predictor-"


def desired_logged_service(deployment: ModelDeployment, predictor: str) -> dict[str, Any]:
    """The Service the HTTPRoute sends the canary's share to: the canary predictor's pods, on
    the agent's port, so its requests are logged like the stable's. One per deployment, its
    selector following the current canary (KServe's own `app` label of the predictor)."""
    isvc = deployment.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": logged_canary_service_name(deployment),
            "namespace": deployment.metadata.namespace,
            "labels": {
                MANAGED_BY: "modelops",
                "modelops.io/deployment": isvc,
                **shard_labels(deployment.metadata.labels),
            },
            "ownerReferences": [owner_reference(deployment)],
        },
        "spec": {
            "selector": {"app": f"isvc.{isvc}-{predictor}-predictor"},
            "ports": [{"name": "http", "port": 80, "targetPort": AGENT_PORT, "protocol": "TCP"}],
        },
    }


def monitoring_condition(
    deployment: ModelDeployment, registry: RegistryObservation | None
) -> ConditionUpdate | None:
    """Whether the monitor can measure what is served (None: monitoring is off)."""
    if not logging_wanted(deployment):
        return None
    if logger_url(deployment) is None:
        return ConditionUpdate(
            MONITORING, "False", "MonitorNotConfigured",
            "drift monitoring needs a monitor: set spec.monitoring.logger.url or start the "
            "operator with --monitor-url (the chart does when monitor.enabled=true)",
        )  # fmt: skip
    if isinstance(registry, VersionAnswer) and registry.reference_profile is False:
        return ConditionUpdate(
            MONITORING, "False", "NoReferenceProfile",
            f"version {registry.version} has no reference profile, so its drift cannot be "
            f"measured: {PROFILE_HINT}",
        )  # fmt: skip
    return ConditionUpdate(
        MONITORING, "True", "Logging",
        f"KServe's logger sends every request and response to {logger_url(deployment)}",
    )  # fmt: skip
