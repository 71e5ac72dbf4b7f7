"""Analysis verdicts, queries from presets and templates, the tally and what it allows."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelops.api.delivery import AnalysisSpec, MetricSpec
from modelops.core.analysis import (
    ROLE_LABEL,
    Context,
    QueryFailed,
    Sample,
    Subject,
    assess,
    due,
    judge,
    query_for,
    tally,
)
from modelops.core.presets import PRESETS
from modelops.core.promql import TemplateError
from modelops.core.rollout.traffic import capacity_plan, honoured, replica_plan

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CANARY = Subject(version="8", service="fraud-v8-predictor", revision="fraud-predictor-00002")
STABLE = Subject(version="7", service="fraud-predictor", revision="fraud-predictor-00001")
CONTEXT = Context(namespace="risk", deployment="fraud", isvc="fraud", subject=CANARY, stable=STABLE)


def metric(**fields: object) -> MetricSpec:
    return MetricSpec.model_validate({"name": "m", "max": 1.0, **fields})


def analysis(*metrics: MetricSpec, **fields: object) -> AnalysisSpec:
    return AnalysisSpec.model_validate(
        {"metrics": [m.model_dump(by_alias=True, exclude_none=True) for m in metrics], **fields}
    )


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_renders_for_the_canary_with_its_window(preset: str) -> None:
    chosen = metric(preset=preset)
    query = query_for(chosen, analysis(chosen, interval="15s"), CONTEXT, 0)
    assert isinstance(query, str)
    assert "{{" not in query
    # The monitor's gauges come from its own sliding window; every other preset uses the
    # metric's window.
    assert ("[15s]" in query) != preset.startswith("monitor-")
    assert any(
        value in query for value in ('"8"', '"fraud-v8-predictor"', '"fraud-predictor-00002"')
    )


def test_compare_to_stable_asks_both_versions_in_one_query() -> None:
    chosen = metric(preset="mlserver-latency-mean", compareTo="stable", maxRatio=1.5, max=None)
    query = query_for(chosen, analysis(chosen), CONTEXT, 0)
    assert isinstance(query, str)
    assert 'model_version="8"' in query and 'model_version="7"' in query
    assert f'"{ROLE_LABEL}", "canary"' in query and f'"{ROLE_LABEL}", "stable"' in query


def test_a_template_error_names_the_field() -> None:
    chosen = metric(query='rate(x{a="{{ nope }}"}[1m])')
    error = query_for(chosen, analysis(chosen), CONTEXT, 3)
    assert isinstance(error, TemplateError) and "spec.analysis.metrics[3].query" in error.message


@given(st.text(min_size=1, max_size=40))
def test_a_hostile_version_stays_inside_its_label_matcher(hostile: str) -> None:
    chosen = metric(preset="mlserver-error-rate")
    context = Context("risk", "fraud", "fraud", Subject(hostile, "svc", "rev"), STABLE)
    query = query_for(chosen, analysis(chosen), context, 0)
    assert isinstance(query, str)
    # Every model_version matcher still holds exactly one string literal, whatever the value.
    literal = r'"(?:[^"\\]|\\.)*"'
    assert len(re.findall(r"model_version=" + literal, query)) == 3
    stripped = re.sub(literal, '""', query)
    assert stripped == re.sub(
        literal, '""', PRESETS["mlserver-error-rate"].replace("{{ window }}", "30s")
    )


def test_verdicts() -> None:
    bounded = metric(min=0.5, max=2.0)
    assert judge(bounded, [Sample({}, 1.0)]).verdict == "Pass"
    too_high = judge(bounded, [Sample({}, 3.0)])
    assert too_high.verdict == "Fail" and too_high.message == "m = 3 > max 2"
    assert judge(bounded, [Sample({}, 0.1)]).message == "m = 0.1 < min 0.5"
    assert judge(bounded, []).verdict == "Inconclusive"
    assert judge(bounded, [Sample({}, math.nan)]).verdict == "Inconclusive"
    assert judge(bounded, QueryFailed("connection refused")).verdict == "Error"
    many = judge(bounded, [Sample({"a": "1"}, 1.0), Sample({"a": "2"}, 1.0)])
    assert many.verdict == "Error" and "aggregate" in many.message


def test_compare_to_stable_verdicts() -> None:
    ratio = metric(compareTo="stable", maxRatio=1.5, max=1.0)
    both = [Sample({ROLE_LABEL: "canary"}, 0.2), Sample({ROLE_LABEL: "stable"}, 0.1)]
    slow = judge(ratio, both)
    assert slow.verdict == "Fail" and slow.value == 2.0 and "maxRatio 1.5" in slow.message
    assert (slow.canary_value, slow.stable_value) == (0.2, 0.1)
    close = [Sample({ROLE_LABEL: "canary"}, 0.12), Sample({ROLE_LABEL: "stable"}, 0.1)]
    assert judge(ratio, close).verdict == "Pass"
    assert judge(ratio, both[:1]).verdict == "Inconclusive"  # the stable has no data
    absolute = [Sample({ROLE_LABEL: "canary"}, 3.0), Sample({ROLE_LABEL: "stable"}, 3.0)]
    assert judge(ratio, absolute).verdict == "Fail"  # its own max still applies
    zero = [Sample({ROLE_LABEL: "canary"}, 0.0), Sample({ROLE_LABEL: "stable"}, 0.0)]
    assert judge(ratio, zero).verdict == "Pass"


def test_min_ratio_fails_a_canary_worse_than_the_stable_where_higher_is_better() -> None:
    accuracy = metric(preset="monitor-accuracy", compareTo="stable", minRatio=0.95, max=None)
    worse = [Sample({ROLE_LABEL: "canary"}, 0.8), Sample({ROLE_LABEL: "stable"}, 0.9)]
    failed = judge(accuracy, worse)
    assert failed.verdict == "Fail" and "< minRatio 0.95" in failed.message
    better = [Sample({ROLE_LABEL: "canary"}, 0.95), Sample({ROLE_LABEL: "stable"}, 0.4)]
    passed = judge(accuracy, better)
    assert passed.verdict == "Pass" and "within minRatio 0.95" in passed.message
    both = metric(compareTo="stable", minRatio=0.5, maxRatio=2.0, max=None)
    far = [Sample({ROLE_LABEL: "canary"}, 5.0), Sample({ROLE_LABEL: "stable"}, 1.0)]
    assert "> maxRatio 2" in judge(both, far).message


def test_tally_counts_failures_and_consecutive_no_verdicts() -> None:
    fail = judge(metric(), [Sample({}, 5.0)])
    gap = judge(metric(), [])
    error = judge(metric(), QueryFailed("down"))
    ok = judge(metric(), [Sample({}, 0.5)])
    state = None
    for measurement in (fail, gap, gap, error, ok, fail):
        state = tally(state, "canary", "8", [measurement], NOW)
    assert state is not None
    assert (state.runs, state.failures, state.inconclusive, state.consecutive_errors) == (
        6,
        2,
        0,
        0,
    )
    assert tally(state, "canary", "9", [ok], NOW).runs == 1  # a new subject starts afresh


def test_assess_rolls_back_only_on_failures_and_pauses_on_no_verdict() -> None:
    spec = analysis(metric(), failureLimit=1, inconclusiveLimit=1, consecutiveErrorLimit=1)
    fail = judge(metric(), [Sample({}, 5.0)])
    gap = judge(metric(), [])
    error = judge(metric(), QueryFailed("down"))
    state = tally(None, "canary", "8", [fail], NOW)
    assert assess(state, spec).kind == "Wait"
    assert assess(tally(state, "canary", "8", [fail], NOW), spec).kind == "Fail"
    gaps = tally(tally(None, "canary", "8", [gap], NOW), "canary", "8", [gap], NOW)
    assert assess(gaps, spec).kind == "Paused"
    errors = tally(tally(None, "canary", "8", [error], NOW), "canary", "8", [error], NOW)
    assert assess(errors, spec).kind == "Paused" and "down" in assess(errors, spec).message
    assert assess(None, spec).kind == "Wait"


def test_one_round_per_interval() -> None:
    spec = analysis(metric(), interval="30s")
    state = tally(None, "canary", "8", [judge(metric(), [])], NOW)
    assert due(None, spec, NOW)
    assert not due(state, spec, NOW + timedelta(seconds=29))
    assert due(state, spec, NOW + timedelta(seconds=30))


@given(st.integers(1, 100), st.integers(0, 30), st.integers(1, 30))
def test_replica_plans_stay_within_kserve_rules(percent: int, low: int, high: int) -> None:
    plan = replica_plan(percent, low, max(low, high))
    assert 1 <= plan.canary <= plan.stable_total
    assert plan.stable == max(1, plan.stable_total - plan.canary)
    assert max(low, 1) <= plan.stable_total <= max(low, high, 1)
    assert capacity_plan(percent, low).canary <= max(low, 1)


def test_replica_plans_honour_what_the_limits_allow() -> None:
    assert replica_plan(10, 2, None).share == 50 and not honoured(replica_plan(10, 2, None), 10)
    plan = replica_plan(10, 2, 10)
    assert (plan.canary, plan.stable_total, plan.share) == (1, 10, 10) and honoured(plan, 10)
    assert replica_plan(50, 4, None).share == 50


def test_monitoring_after_promotion_skips_comparisons_with_the_stable() -> None:
    from modelops.core.rollout.rounds import analysis_round
    from tests.unit.rollout_driver import ANALYSIS, deployed

    metrics = [*ANALYSIS["metrics"], {"name": "vs-stable", "preset": "mlserver-latency-mean",
                                      "compareTo": "stable", "maxRatio": 2}]  # fmt: skip
    driver = deployed(
        spec__monitoring={"rollbackWindow": "1h"}, spec__analysis={**ANALYSIS, "metrics": metrics}
    )
    planned = analysis_round(driver.deployment, driver.observed, driver.now)
    assert planned is not None and planned.subject == "stable"
    assert [q.metric.name for q in planned.queries] == ["error-rate"]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_side_of_a_compared_preset_counts_absent_counters_as_zero(preset: str) -> None:
    # compareTo renders the template once per side: the guards are in both.
    template = PRESETS[preset]
    chosen = metric(preset=preset, compareTo="stable", maxRatio=1.5, max=None)
    query = query_for(chosen, analysis(chosen), CONTEXT, 0)
    assert isinstance(query, str)
    guards = template.count("or vector(0)") + template.count("* +Inf")
    assert query.count("or vector(0)") + query.count("* +Inf") == 2 * guards


def test_error_rates_guard_each_counter_and_latencies_fail_a_version_that_only_fails() -> None:
    for preset in ("mlserver-error-rate", "mlserver-http-error-rate", "knative-error-rate",
                   "istio-error-rate"):  # fmt: skip
        assert "or vector(0)" in PRESETS[preset], preset
    for preset in ("mlserver-latency-mean", "mlserver-latency-p95", "mlserver-latency-p99",
                   "knative-latency-p95", "knative-latency-p99", "istio-latency-p95", "istio-latency-p99"):  # fmt: skip
        assert PRESETS[preset].endswith("* +Inf)"), preset


def test_a_latency_of_only_failures_fails_any_max_and_is_said_so() -> None:
    chosen = metric(name="p95", max=0.5)
    measured = judge(chosen, [Sample({}, math.inf)])
    assert measured.verdict == "Fail" and measured.value is None
    assert measured.message == "p95: no request to the version succeeded in the window (> max 0.5)"
    compared = metric(name="p95", compareTo="stable", maxRatio=2.0, max=None)
    canary_only_fails = judge(compared, [Sample({ROLE_LABEL: "canary"}, math.inf),
                                         Sample({ROLE_LABEL: "stable"}, 0.02)])  # fmt: skip
    assert canary_only_fails.verdict == "Fail" and canary_only_fails.canary_value is None
    assert "canary: no request to the version succeeded" in canary_only_fails.message
    stable_only_fails = judge(compared, [Sample({ROLE_LABEL: "canary"}, 0.02),
                                         Sample({ROLE_LABEL: "stable"}, math.inf)])  # fmt: skip
    assert stable_only_fails.verdict == "Pass"


def test_monitor_presets_read_the_versions_gauges_and_compare_to_the_stable() -> None:
    chosen = metric(preset="monitor-accuracy", compareTo="stable", maxRatio=None, min=0.9, max=None)
    query = query_for(chosen, analysis(chosen), CONTEXT, 0)
    assert isinstance(query, str)
    assert (
        'modelops_model_quality{namespace="risk", deployment="fraud", version="8", metric="accuracy"}'
        in query
    )
    assert 'version="7"' in query
    share = query_for(
        metric(preset="monitor-drifted-features-share"),
        analysis(metric(preset="monitor-drifted-features-share")),
        CONTEXT,
        0,
    )
    assert (
        share
        == 'max(modelops_drifted_features_share{namespace="risk", deployment="fraud", version="8"})'
    )
