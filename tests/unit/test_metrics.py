"""The operator's per-deployment series: a deleted deployment leaves none behind (one series per
name ever used would grow the process and every scrape), and others keep theirs."""

from __future__ import annotations

from prometheus_client import REGISTRY

from modelops.api.status import ModelDeploymentStatus
from modelops.controller.metrics import (
    MEASUREMENTS,
    RETRAININGS,
    ROLLBACKS,
    ROLLOUTS,
    RolloutGauges,
    count,
)


def series_of(namespace: str, deployment: str) -> list[str]:
    return sorted(
        f"{sample.name}{sorted(sample.labels.items())}"
        for family in REGISTRY.collect()
        if family.name.startswith("modelops_")
        for sample in family.samples
        if sample.labels.get("namespace") == namespace
        and sample.labels.get("deployment") == deployment
    )


def test_a_deleted_deployment_leaves_no_series_and_others_keep_theirs() -> None:
    gauges = RolloutGauges()
    for name in ("leaving", "staying"):
        key = ("metrics-test", name)
        count(ROLLOUTS, key, "promoted")
        count(ROLLOUTS, key, "rolled_back")
        count(ROLLBACKS, key)
        count(MEASUREMENTS, key, "Pass")
        count(MEASUREMENTS, key, "Fail")
        count(RETRAININGS, key, "started")
        gauges.export(key, ModelDeploymentStatus())
    staying = series_of("metrics-test", "staying")
    assert len(series_of("metrics-test", "leaving")) == len(staying) > 6

    gauges.forget(("metrics-test", "leaving"))

    assert series_of("metrics-test", "leaving") == []
    assert series_of("metrics-test", "staying") == staying
    count(ROLLOUTS, ("metrics-test", "leaving"), "promoted")  # re-created: counts from 1
    value = REGISTRY.get_sample_value(
        "modelops_rollouts_total",
        {"namespace": "metrics-test", "deployment": "leaving", "result": "promoted"},
    )
    assert value == 1.0
    gauges.forget(("metrics-test", "leaving"))  # the re-created one's series goes too
    assert series_of("metrics-test", "leaving") == []
    gauges.forget(("metrics-test", "never-seen"))  # nothing to remove is not an error
