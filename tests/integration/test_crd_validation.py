"""The API server itself rejects bad ModelDeployments, naming the field and the fix."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from modelops_dev.binaries import REPO_ROOT, locate
from modelops_dev.control_plane import ControlPlane
from tests.bodies import with_values

GROUP, VERSION, PLURAL = "modelops.io", "v1alpha1", "modeldeployments"

VALID: dict[str, Any] = {
    "apiVersion": "modelops.io/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "fraud"},
    "spec": {
        "model": {"name": "fraud-detector", "version": "7"},
        "serving": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://models/fraud/7"},
    },
}
STEP = {"traffic": 10, "duration": "1m"}
METRIC = {"name": "error-rate", "preset": "mlserver-error-rate", "max": 0.02}


def mutate(path: str, value: Any) -> dict[str, Any]:
    """VALID with `value` at the dotted `path` (None deletes)."""
    return with_values(VALID, {tuple(path.split(".")): value})


def analysis(**overrides: Any) -> dict[str, Any]:
    return {"metrics": [METRIC], **overrides}


# (case id, body, texts the error must contain: the field, and what to do)
INVALID: list[tuple[str, dict[str, Any], list[str]]] = [
    ("version-and-alias", mutate("spec.model.alias", "champion"), ["spec.model", "exactly one of spec.model.version"]),
    ("neither-version-nor-alias", mutate("spec.model.version", None), ["spec.model", "exactly one of spec.model.version"]),
    ("empty-model-name", mutate("spec.model.name", ""), ["spec.model.name", "at least 1 chars"]),
    ("version-not-a-number", mutate("spec.model.version", "latest"), ["spec.model.version", "should match"]),
    ("alias-latest-reserved", mutate("spec.model", {"name": "m", "alias": "latest"}), ["spec.model.alias", "reserved by MLflow"]),
    ("traffic-zero", mutate("spec.rollout", {"steps": [{"traffic": 0, "duration": "1m"}]}), ["spec.rollout.steps[0].traffic", "greater than or equal to 1"]),
    ("traffic-150", mutate("spec.rollout", {"steps": [{"traffic": 150, "duration": "1m"}]}), ["spec.rollout.steps[0].traffic", "less than or equal to 100"]),
    ("steps-decreasing", mutate("spec.rollout", {"steps": [{"traffic": 50, "duration": "1m"}, STEP]}), ["spec.rollout.steps", "strictly increasing"]),
    ("steps-repeated", mutate("spec.rollout", {"steps": [STEP, STEP]}), ["spec.rollout.steps", "strictly increasing"]),
    ("canary-without-steps", mutate("spec.rollout", {"strategy": "Canary"}), ["spec.rollout.steps", "needs at least one entry"]),
    ("bad-duration", mutate("spec.rollout", {"steps": [{"traffic": 10, "duration": "5 minutes"}]}), ["spec.rollout.steps[0].duration", "should match"]),
    ("unknown-field", mutate("spec.serving.replicas", 3), ['unknown field "spec.serving.replicas"']),
    ("negative-replicas", mutate("spec.serving.minReplicas", -1), ["spec.serving.minReplicas", "greater than or equal to 0"]),
    ("min-above-max", mutate("spec.serving", {"minReplicas": 3, "maxReplicas": 2}), ["spec.serving.minReplicas", "must not exceed spec.serving.maxReplicas"]),
    ("interval-under-5s", mutate("spec.analysis", analysis(interval="2s")), ["spec.analysis.interval", "at least 5s"]),
    ("metric-without-threshold", mutate("spec.analysis", analysis(metrics=[{"name": "p95", "query": "up"}])), ["spec.analysis.metrics[0]", "needs a threshold"]),
    ("metric-query-and-preset", mutate("spec.analysis", analysis(metrics=[{**METRIC, "query": "up"}])), ["spec.analysis.metrics[0]", "exactly one of query"]),
    ("compare-without-ratio", mutate("spec.analysis", analysis(metrics=[{**METRIC, "compareTo": "stable"}])), ["spec.analysis.metrics[0]", "go together"]),
    ("duplicate-metric-names", mutate("spec.analysis", analysis(metrics=[METRIC, METRIC])), ["spec.analysis.metrics[1]", "Duplicate value"]),
    ("no-metrics", mutate("spec.analysis", {"metrics": []}), ["spec.analysis.metrics", "at least 1 item"]),
    ("unknown-deployment-mode", mutate("spec.serving.deploymentMode", "Raw"), ["spec.serving.deploymentMode", "Unsupported value"]),
    ("storage-uri-without-scheme", mutate("spec.serving.storageUri", "/models/fraud"), ["spec.serving.storageUri", "should match"]),
    ("secret-name-not-dns", mutate("spec.model.registry", {"credentialsSecret": "My_Secret"}), ["spec.model.registry.credentialsSecret", "should match"]),
    ("trigger-with-two-kinds", mutate("spec.retraining", {"triggers": [{"onRollback": True, "schedule": "0 3 * * 0"}], "jobTemplate": {"spec": {}}}), ["spec.retraining.triggers[0]", "exactly one of metric, drift, schedule"]),
    ("retraining-without-job", mutate("spec.retraining", {"triggers": [{"onRollback": True}]}), ["spec.retraining.jobTemplate", "Required value"]),
    ("name-not-dns-1035", mutate("metadata.name", "7fraud"), ["metadata.name must be a DNS-1035 label"]),
    ("no-spec", mutate("spec", None), ["spec", "Required value"]),
    ("rollback-window-not-a-duration", mutate("spec.monitoring", {"rollbackWindow": "an hour"}), ["spec.monitoring.rollbackWindow", "should match"]),
    ("drift-psi-negative", mutate("spec.monitoring", {"drift": {"enabled": True, "maxPsi": -0.1}}), ["spec.monitoring.drift.maxPsi", "greater than or equal to 0"]),
    ("logger-without-url", mutate("spec.monitoring", {"logger": {"captureStore": "s3://rows"}}), ["spec.monitoring.logger.url", "Required value"]),
    ("logger-url-not-http", mutate("spec.monitoring", {"logger": {"url": "monitor:8080"}}), ["spec.monitoring.logger.url", "should match"]),
    ("shard-label-not-a-label-value", mutate("metadata.labels", {"modelops.io/shard": "gpu pool"}), ["metadata.labels", "\"gpu pool\"", "a valid label must be"]),
    ("shard-label-too-long", mutate("metadata.labels", {"modelops.io/shard": "s" * 64}), ["metadata.labels", "must be no more than 63"]),
]  # fmt: skip


def create(
    custom: client.CustomObjectsApi, namespace: str, body: dict[str, Any], dry_run: bool = True
) -> Any:
    return custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body,
        field_validation="Strict", dry_run="All" if dry_run else None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "expected"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID]
)
def test_invalid_deployment_is_rejected_with_a_message_naming_the_field(
    custom: client.CustomObjectsApi, body: dict[str, Any], expected: list[str]
) -> None:
    with pytest.raises(client.ApiException) as raised:
        create(custom, "default", body)
    assert raised.value.status in (400, 422)
    message = json.loads(raised.value.body)["message"]
    for text in expected:
        assert text in message, f"{text!r} not in: {message}"


def test_a_valid_deployment_is_accepted_and_defaulted(custom: client.CustomObjectsApi) -> None:
    body = mutate("spec.model.registry", {"trackingUri": "http://mlflow:5000"})
    body["spec"]["rollout"] = {
        "steps": [STEP, {"traffic": 50, "duration": "2m"}, {"traffic": 100, "duration": "1m"}]
    }
    body["spec"]["analysis"] = analysis()
    created = create(custom, "default", body)
    spec = created["spec"]
    assert spec["serving"]["deploymentMode"] == "Standard"
    assert spec["serving"]["protocolVersion"] == "v2"
    assert spec["serving"]["minReplicas"] == 1
    assert spec["serving"]["storage"] == {"mode": "Resolve"}
    assert spec["model"]["registry"]["pollInterval"] == "30s"
    assert spec["rollout"]["strategy"] == "Canary"
    assert spec["rollout"]["promotion"] == "Auto"
    assert spec["analysis"]["interval"] == "30s"
    assert spec["analysis"]["failureLimit"] == 2


def test_serving_defaults_apply_when_the_block_is_omitted(custom: client.CustomObjectsApi) -> None:
    created = create(custom, "default", mutate("spec.serving", None))
    assert created["spec"]["serving"]["deploymentMode"] == "Standard"
    assert created["spec"]["serving"]["storage"]["mode"] == "Resolve"


def test_kubectl_explain_shows_the_field_descriptions(control_plane: ControlPlane) -> None:
    kubectl = locate("kubectl")
    assert kubectl is not None
    result = subprocess.run(
        [str(kubectl), "--kubeconfig", str(control_plane.kubeconfig), "explain", "modeldeployment.spec.model"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert "The registered model and the version or alias to serve." in result.stdout
    assert "Name of the registered model in MLflow." in result.stdout
    assert "MLflow alias to follow" in result.stdout
    short = subprocess.run(
        [str(kubectl), "--kubeconfig", str(control_plane.kubeconfig), "explain", "md.spec.serving.storageUri"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert "skip registry resolution" in short.stdout


EXAMPLES = sorted(
    [
        *(REPO_ROOT / "manifests" / "examples").glob("*.yaml"),
        *(REPO_ROOT / "examples").glob("*.yaml"),
    ]
)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_manifest_is_accepted_by_the_api_server(
    custom: client.CustomObjectsApi, path: Path
) -> None:
    body = yaml.safe_load(path.read_text())
    body["metadata"].pop("namespace", None)
    accepted = custom.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, body, dry_run="All"
    )
    assert accepted["spec"]["model"] == {**body["spec"]["model"], **accepted["spec"]["model"]}
