"""Names that try to inject: a model name (free text in MLflow) reaches a retraining Job's
environment and labels, and feature names (from whoever logged the reference profile) reach the
monitor's metrics. Neither is interpreted: the Job carries the name as one literal value and
valid labels, and the exposition parses back to the same label values and nothing more.
(PromQL templating and label values have their own property tests.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modelops.api.resource import ModelDeployment
from modelops.api.status import RetrainingRun
from modelops.core.labels import is_label_value
from modelops.core.retraining.job import retraining_job
from modelops.monitor.engine import Monitor, Settings
from modelops.monitor.metrics import MonitorCollector
from modelops.monitor.windows import Source
from modelops.profile import build_profile
from tests.unit.factories import deployment_body
from tests.unit.test_retraining import TEMPLATE

HOSTILE = [
    'x"} 1\nmodelops_evil 1\n#',
    "$(rm -rf /); `id`",
    "a\nb: c\n---\nkind: Secret",
    '{"inject": true}',
    '\\"\\n',
]
names = st.one_of(st.sampled_from(HOSTILE), st.text(min_size=1, max_size=256))


@settings(max_examples=200, deadline=None)
@given(model=names, reason=names)
def test_a_hostile_model_name_and_reason_stay_literal_values_in_the_job(
    model: str, reason: str
) -> None:
    body = deployment_body(
        spec__model__name=model, spec__retraining={"triggers": [{"name": "q", "onRollback": True}],
                                                   "jobTemplate": TEMPLATE},
    )  # fmt: skip
    body["status"] = {"stable": {"version": "7", "storageUri": "s3://models/fraud/7"}}
    deployment = ModelDeployment.model_validate(body)
    run = RetrainingRun(trigger_id=reason[:200], job="fraud-retrain-1", reason=reason,
                        started_at=datetime(2026, 12, 5, tzinfo=UTC))  # fmt: skip
    job = retraining_job(deployment, run)
    [container] = job["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["MODEL_NAME"] == model and env["MODELOPS_TRIGGER"] == reason
    assert "command" not in container and "args" not in container  # no shell to reach
    labels = {**job["metadata"]["labels"], **job["spec"]["template"]["metadata"]["labels"]}
    assert all(is_label_value(value) and len(value) <= 63 for value in labels.values()), labels
    assert json.loads(json.dumps(job)) == job
    assert yaml.safe_load(yaml.safe_dump(job)) == job


def test_hostile_feature_names_come_out_of_the_monitors_metrics_as_they_went_in() -> None:
    features = [*HOSTILE, "plain"]
    rng = np.random.default_rng(1)
    profile = build_profile(rng.normal(0, 1, size=(300, len(features))), feature_names=features)
    monitor = Monitor(Settings(window=50, min_samples=10))
    source = Source("ns", "wine", "1", "stable")
    for i in range(20):
        rows = rng.normal(3, 1, size=(1, len(features))).tolist()
        body = {"inputs": [{"name": "input-0", "shape": [1, len(features)], "data": rows}]}
        monitor.request(source, f"r{i}", body, profile, now=i)
    registry = CollectorRegistry()
    registry.register(MonitorCollector(monitor))
    text = generate_latest(registry).decode()
    families = list(text_string_to_metric_families(text))
    assert all(f.name.startswith("modelops_") for f in families), [f.name for f in families]
    assert "modelops_evil" not in {f.name for f in families}
    psi = next(f for f in families if f.name == "modelops_drift_psi")
    assert {sample.labels["feature"] for sample in psi.samples} == set(features)
    assert {sample.labels["deployment"] for sample in psi.samples} == {"wine"}
