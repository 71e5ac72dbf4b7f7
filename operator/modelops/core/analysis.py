"""Analysis of a version under traffic (pure): queries from templates or presets, a verdict per
measurement, and the running tally that decides between advancing, waiting, pausing and
rolling back.

Verdicts follow Argo Rollouts and Flagger: Pass, Fail, Inconclusive (no data or NaN) and Error
(the query failed). Only Fail counts toward failureLimit; Inconclusive and Error never promote
and never roll back, past their limits they pause the rollout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from modelops.api.delivery import AnalysisSpec, MetricSpec
from modelops.api.status import AnalysisStatus, Measurement
from modelops.core.durations import parse_duration
from modelops.core.presets import PRESETS
from modelops.core.promql import TemplateError, render

Verdict = Literal["Pass", "Fail", "Inconclusive", "Error"]
ROLE_LABEL = "modelops_role"
ONLY_FAILURES = "no request to the version succeeded in the window"


@dataclass(frozen=True)
class Subject:
    """The values that tell one version's series apart: its registry version, its predictor
    Service (Standard mode) and its Knative revision (Serverless mode)."""

    version: str
    service: str
    revision: str


@dataclass(frozen=True)
class Context:
    namespace: str
    deployment: str
    isvc: str
    subject: Subject
    stable: Subject | None
    """The stable version, when the subject is a canary."""


@dataclass(frozen=True)
class Sample:
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class QueryFailed:
    message: str


Answer = Sequence[Sample] | QueryFailed


def template_of(metric: MetricSpec) -> str:
    if metric.preset is not None:
        return PRESETS[metric.preset]
    assert metric.query is not None  # the CRD requires exactly one of query or preset
    return metric.query


def window_of(metric: MetricSpec, analysis: AnalysisSpec) -> str:
    return metric.window or analysis.interval


def _values(context: Context, subject: Subject, window: str) -> dict[str, str]:
    stable = context.stable or context.subject
    return {
        "namespace": context.namespace,
        "deployment": context.deployment,
        "isvc": context.isvc,
        "version": subject.version,
        "stableVersion": stable.version,
        "service": subject.service,
        "revision": subject.revision,
        "window": window,
    }


def query_for(
    metric: MetricSpec, analysis: AnalysisSpec, context: Context, index: int
) -> str | TemplateError:
    """The one PromQL query a measurement of `metric` sends. With compareTo: stable, canary
    and stable are asked in the same query, told apart by a modelops_role label, so both are
    read at the same instant over the same window."""
    field = f"spec.analysis.metrics[{index}]." + ("preset" if metric.preset else "query")
    template = template_of(metric)
    window = window_of(metric, analysis)
    canary = render(template, _values(context, context.subject, window), field=field)
    if isinstance(canary, TemplateError) or metric.compare_to is None:
        return canary
    if context.stable is None:
        return TemplateError(f"{field}: compareTo: stable needs a stable version to compare to")
    stable = render(template, _values(context, context.stable, window), field=field)
    if isinstance(stable, TemplateError):
        return stable
    return (
        f'label_replace(({canary}), "{ROLE_LABEL}", "canary", "", "") or '
        f'label_replace(({stable}), "{ROLE_LABEL}", "stable", "", "")'
    )


def _number(value: float) -> str:
    return f"{value:.4g}"


def _bounds(metric: MetricSpec, value: float) -> str | None:
    """Why `value` fails the metric's min/max, or None when it is inside them."""
    if math.isinf(value) and value > 0 and metric.max is not None:
        # The presets' latency of a version that answered no request successfully.
        return f"{metric.name}: {ONLY_FAILURES} (> max {_number(metric.max)})"
    if metric.max is not None and value > metric.max:
        return f"{metric.name} = {_number(value)} > max {_number(metric.max)}"
    if metric.min is not None and value < metric.min:
        return f"{metric.name} = {_number(value)} < min {_number(metric.min)}"
    return None


def _single(samples: Sequence[Sample], what: str) -> float | str:
    """The one value of a result, or why there is none (the caller words the verdict)."""
    if not samples:
        return f"no data for {what}"
    if len(samples) > 1:
        return f"{len(samples)} series for {what}; aggregate the query to one (sum, max, ...)"
    return samples[0].value


def judge(metric: MetricSpec, answer: Answer) -> Measurement:
    """The verdict of one measurement."""
    if isinstance(answer, QueryFailed):
        return Measurement(name=metric.name, verdict="Error", message=answer.message)
    if metric.compare_to is None:
        value = _single(answer, metric.name)
        if isinstance(value, str):
            verdict: Verdict = "Inconclusive" if value.startswith("no data") else "Error"
            return Measurement(name=metric.name, verdict=verdict, message=value)
        if math.isnan(value):
            return Measurement(
                name=metric.name,
                verdict="Inconclusive",
                message=f"{metric.name} is NaN (no requests in the window)",
            )
        failing = _bounds(metric, value)
        return Measurement(
            name=metric.name,
            verdict="Fail" if failing else "Pass",
            value=None if math.isinf(value) else value,
            message=failing or f"{metric.name} = {_number(value)} within bounds",
        )
    sides: dict[str, float] = {}
    for role in ("canary", "stable"):
        found = _single(
            [s for s in answer if s.labels.get(ROLE_LABEL) == role], f"the {role} version"
        )
        if isinstance(found, str):
            verdict = "Inconclusive" if found.startswith("no data") else "Error"
            return Measurement(name=metric.name, verdict=verdict, message=f"{metric.name}: {found}")
        if math.isnan(found):
            return Measurement(
                name=metric.name,
                verdict="Inconclusive",
                message=f"{metric.name} of the {role} version is NaN (no requests in the window)",
            )
        sides[role] = found
    canary, stable = sides["canary"], sides["stable"]
    ratio = 1.0 if canary == stable else (math.inf if stable == 0 else canary / stable)
    failing = _bounds(metric, canary)
    if failing is None and math.isinf(canary):
        failing = f"{metric.name}: canary: {ONLY_FAILURES}"
    shown = f"{metric.name}: canary {_number(canary)} / stable {_number(stable)} = {_number(ratio)}"
    if failing is None and metric.max_ratio is not None and ratio > metric.max_ratio:
        failing = f"{shown} > maxRatio {_number(metric.max_ratio)}"
    if failing is None and metric.min_ratio is not None and ratio < metric.min_ratio:
        failing = f"{shown} < minRatio {_number(metric.min_ratio)}"
    limits = [f"maxRatio {_number(metric.max_ratio)}"] if metric.max_ratio is not None else []
    limits += [f"minRatio {_number(metric.min_ratio)}"] if metric.min_ratio is not None else []
    return Measurement(
        name=metric.name,
        verdict="Fail" if failing else "Pass",
        value=None if math.isinf(ratio) else ratio,
        canary_value=None if math.isinf(canary) else canary,
        stable_value=None if math.isinf(stable) else stable,
        message=failing or f"{shown} within {' and '.join(limits)}",
    )


def due(analysis: AnalysisStatus | None, spec: AnalysisSpec, now: datetime) -> bool:
    """Whether the next measurement round is due (one per interval, whatever the reconciles)."""
    if analysis is None or analysis.last_run_at is None:
        return True
    return now - analysis.last_run_at >= parse_duration(spec.interval)


def tally(
    previous: AnalysisStatus | None,
    subject: Literal["canary", "stable"],
    version: str | None,
    measurements: Sequence[Measurement],
    now: datetime,
) -> AnalysisStatus:
    """The tally after one round. A round with any Fail counts one failure; Inconclusive and
    Error rounds count consecutively (a conclusive round resets them)."""
    if previous is None or previous.subject != subject or previous.version != version:
        previous = AnalysisStatus(subject=subject, version=version)
    verdicts = {m.verdict for m in measurements}
    return AnalysisStatus(
        subject=subject,
        version=version,
        last_run_at=now,
        runs=previous.runs + 1,
        failures=previous.failures + (1 if "Fail" in verdicts else 0),
        inconclusive=previous.inconclusive + 1 if "Inconclusive" in verdicts else 0,
        consecutive_errors=previous.consecutive_errors + 1 if "Error" in verdicts else 0,
        metrics=list(measurements),
    )


@dataclass(frozen=True)
class Assessment:
    kind: Literal["Pass", "Wait", "Fail", "Paused"]
    message: str


def assess(analysis: AnalysisStatus | None, spec: AnalysisSpec) -> Assessment:
    """What the tally allows: Fail (roll back), Paused (no verdict for too long), Pass (the
    latest round passed every metric) or Wait."""
    if analysis is None or analysis.runs == 0:
        return Assessment("Wait", "waiting for the first measurement")
    latest = analysis.metrics
    if analysis.failures > spec.failure_limit:
        failing = [m.message for m in latest if m.verdict == "Fail"] or ["failed earlier"]
        return Assessment(
            "Fail",
            f"{analysis.failures} failed measurements (failureLimit {spec.failure_limit}): "
            + "; ".join(failing),
        )
    if analysis.consecutive_errors > spec.consecutive_error_limit:
        errors = "; ".join(m.message for m in latest if m.verdict == "Error")
        return Assessment(
            "Paused",
            f"queries failed in {analysis.consecutive_errors} consecutive measurements "
            f"(consecutiveErrorLimit {spec.consecutive_error_limit}): {errors}",
        )
    if analysis.inconclusive > spec.inconclusive_limit:
        missing = "; ".join(m.message for m in latest if m.verdict == "Inconclusive")
        return Assessment(
            "Paused",
            f"no verdict in {analysis.inconclusive} consecutive measurements "
            f"(inconclusiveLimit {spec.inconclusive_limit}): {missing}",
        )
    if all(m.verdict == "Pass" for m in latest):
        return Assessment("Pass", "; ".join(m.message for m in latest))
    return Assessment(
        "Wait", "; ".join(m.message for m in latest if m.verdict != "Pass") or "waiting"
    )
