"""Which analysis round is due and what it asks Prometheus (pure): the canary once it has its
traffic, or the stable version under monitoring; template values for retraining triggers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from modelops.api.delivery import MetricSpec
from modelops.api.resource import ModelDeployment
from modelops.api.status import (
    ServedVersion,
)
from modelops.core.analysis import Context, Subject, due, query_for
from modelops.core.promql import TemplateError
from modelops.core.rollout.objects import inference_service_name
from modelops.core.rollout.traffic import canary_backend, predictor_service


@dataclass(frozen=True)
class PlannedQuery:
    metric: MetricSpec
    query: str | TemplateError


@dataclass(frozen=True)
class AnalysisRound:
    subject: Literal["canary", "stable"]
    version: str | None
    queries: tuple[PlannedQuery, ...]


def _revisions(observed: Mapping[str, Any] | None) -> tuple[str, str]:
    """(latest created, latest rolled-out) Knative revision of the predictor."""
    component = ((observed or {}).get("status") or {}).get("components", {}).get("predictor", {})
    latest = component.get("latestCreatedRevision") or component.get("latestReadyRevision") or ""
    stable = (
        component.get("latestRolledoutRevision")
        or component.get("previousRolledoutRevision")
        or latest
    )
    return latest, stable


def _subject(isvc: str, version: ServedVersion, predictor: str | None, revision: str) -> Subject:
    return Subject(
        version=version.version or "",
        service=predictor_service(isvc, predictor),
        revision=revision,
    )


def trigger_values(
    deployment: ModelDeployment, observed: Mapping[str, Any] | None
) -> dict[str, str]:
    """Template values for retraining trigger queries: those of the stable version."""
    isvc = inference_service_name(deployment)
    stable = deployment.status.stable
    _, rolled_out = _revisions(observed)
    version = (stable.version if stable else None) or ""
    analysis = deployment.spec.analysis
    return {
        "namespace": deployment.metadata.namespace,
        "deployment": deployment.metadata.name,
        "isvc": isvc,
        "version": version,
        "stableVersion": version,
        "service": predictor_service(isvc, stable.predictor if stable else None),
        "revision": rolled_out,
        "window": analysis.interval if analysis else "30s",
    }


def analysis_round(
    deployment: ModelDeployment, observed: Mapping[str, Any] | None, now: datetime
) -> AnalysisRound | None:
    """The measurement round due now, or None: the canary once it is ready in its step, or
    the stable version when monitoring is on. One round per interval."""
    spec, status = deployment.spec, deployment.status
    if spec.analysis is None or status.stable is None:
        return None
    canary = status.canary
    if canary is not None and (canary.aborting or canary.step_started_at is None):
        return None
    if canary is None and spec.monitoring is None:
        return None
    if not due(status.analysis, spec.analysis, now):
        return None
    isvc = inference_service_name(deployment)
    latest, rolled_out = _revisions(observed)
    stable = _subject(isvc, status.stable, status.stable.predictor, rolled_out)
    if canary is not None:
        subject, compare = _subject(isvc, canary, canary.name, latest), stable
        # Gateway metrics name the Service the route sends the canary's share to.
        subject = replace(subject, service=canary_backend(deployment, canary.name or "canary"))
        kind: Literal["canary", "stable"] = "canary"
        version = canary.version
    else:
        subject, compare, kind, version = stable, None, "stable", status.stable.version
    context = Context(
        namespace=deployment.metadata.namespace,
        deployment=deployment.metadata.name,
        isvc=isvc,
        subject=subject,
        stable=compare,
    )
    # compareTo: stable judges a canary; after promotion there is nothing to compare with.
    queries = tuple(
        PlannedQuery(metric, query_for(metric, spec.analysis, context, index))
        for index, metric in enumerate(spec.analysis.metrics)
        if canary is not None or metric.compare_to is None
    )
    return AnalysisRound(kind, version, queries)
