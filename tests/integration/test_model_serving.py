"""Real models served end to end on the local cluster: MLflow -> ModelDeployment -> KServe ->
storage initializer + MLServer run by the process kubelet -> predictions through the router,
and a Standard-mode canary whose traffic share Prometheus measures from MLServer's counters."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from modelops_dev.kserve import INGRESS_DOMAIN
from modelops_dev.servers import MlflowServer, Prometheus
from tests.integration.conftest import Operator, wait_for
from tests.integration.helpers import CLASS_ROWS, ingress_host, predict, train

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cluster needs root")

KSERVE = ("serving.kserve.io", "v1beta1")


@pytest.fixture(scope="module")
def cluster(serving_cluster: str) -> str:
    return serving_cluster


def condition(custom: client.CustomObjectsApi, namespace: str, name: str, kind: str) -> Any:
    service = custom.get_namespaced_custom_object(*KSERVE, namespace, "inferenceservices", name)
    found = [c for c in service.get("status", {}).get("conditions", []) if c["type"] == kind]
    return found[0] if found else None


def test_a_registered_model_is_served_by_kserve_and_answers_predictions(
    cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    namespace: str,
    tmp_path: Path,
) -> None:
    trained = train(mlflow_server, "iris", "logistic", tmp_path)
    custom.create_namespaced_custom_object(
        "modelops.io", "v1alpha1", namespace, "modeldeployments",
        {"apiVersion": "modelops.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "iris"},
         "spec": {"model": {"name": "iris", "version": trained["version"]},
                  "serving": {"modelFormat": {"name": "mlflow"},
                              "storageUri": f"file://{trained['archive']}"}}},
    )  # fmt: skip

    def ready() -> Any:
        found = condition(custom, namespace, "iris", "Ready")
        return found if found and found["status"] == "True" else None

    wait_for(ready, timeout=240, interval=1, what="KServe to mark the InferenceService Ready")
    [pod] = core.list_namespaced_pod(
        namespace, label_selector="serving.kserve.io/inferenceservice=iris"
    ).items
    # KServe's pod mutator added its storage initializer, which ran to completion first.
    [initializer] = pod.status.init_container_statuses
    assert initializer.name == "storage-initializer"
    assert initializer.state.terminated.exit_code == 0
    assert predict(cluster, ingress_host("iris", namespace), CLASS_ROWS) == [0, 2, 1]

    def healthy() -> Any:
        md = custom.get_namespaced_custom_object(
            "modelops.io", "v1alpha1", namespace, "modeldeployments", "iris"
        )
        status = md.get("status", {})
        return status if status.get("phase") == "Healthy" else None

    # KServe's Ready, mirrored: Healthy, what is served, one Deployed entry, a Ready event.
    status = wait_for(healthy, timeout=30, what="the ModelDeployment to report Healthy")
    assert status["stable"]["version"] == trained["version"]
    assert status["stable"]["storageUri"] == f"file://{trained['archive']}"
    assert status["traffic"] == f"{trained['version']}: 100%"
    assert [entry["event"] for entry in status["history"]] == ["Deployed"]
    wait_for(
        lambda: any(e.reason == "Ready" and e.involved_object.name == "iris"
                    for e in core.list_namespaced_event(namespace).items),
        what="a Ready event",
    )  # fmt: skip


def test_a_standard_mode_canary_gets_the_weighted_share_prometheus_measures(
    cluster: str,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
    custom: client.CustomObjectsApi,
    api_client: client.ApiClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    stable = train(mlflow_server, "iris-canary", "logistic", tmp_path)
    canary = train(mlflow_server, "iris-canary", "constant", tmp_path)
    model = {"modelFormat": {"name": "mlflow"}, "protocolVersion": "v2",
             "storageUri": f"file://{stable['archive']}"}  # fmt: skip
    custom.create_namespaced_custom_object(*KSERVE, namespace, "inferenceservices", {
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": "iris", "annotations": {"serving.kserve.io/deploymentMode": "Standard"}},
        "spec": {
            # KServe subtracts the canary's replicas from the stable's minReplicas: 3 - 1 = 2.
            "predictor": {"minReplicas": 3, "labels": {"modelops.io/model-version": stable["version"]},
                          "model": model},
            "canary": [{"trafficPercent": 33, "predictor": {
                "name": "canary", "minReplicas": 1,
                "labels": {"modelops.io/model-version": canary["version"]},
                "model": {**model, "storageUri": f"file://{canary['archive']}"}}}],
        },
    })  # fmt: skip
    apps = client.AppsV1Api(api_client)

    def replicas_ready() -> bool:
        ready = {
            d.metadata.name: d.status.ready_replicas or 0
            for d in apps.list_namespaced_deployment(namespace).items
        }
        return ready.get("iris-predictor") == 2 and ready.get("iris-canary-predictor") == 1

    wait_for(replicas_ready, timeout=240, interval=1, what="2 stable and 1 canary replicas ready")
    wait_for(
        lambda: (condition(custom, namespace, "iris", "Ready") or {}).get("status") == "True",
        timeout=60, what="the InferenceService Ready",
    )  # fmt: skip

    def served(total: int) -> Any:
        def counts() -> dict[str, dict[str, float]] | None:
            result = prometheus.query(
                "sum by (model_version, pod) "
                f'(model_infer_request_success_total{{namespace="{namespace}"}})'
            )
            found: dict[str, dict[str, float]] = {}
            for series in result:
                labels = series["metric"]
                found.setdefault(labels["model_version"], {})[labels["pod"]] = float(
                    series["value"][1]
                )
            return found if sum(sum(p.values()) for p in found.values()) >= total else None

        return wait_for(counts, timeout=60, interval=1, what=f"Prometheus to count {total}")

    # KServe v0.20's Ingress names only the stable Service: the canary gets none of its traffic
    # (trafficPercent only sizes the canary's replicas).
    requests = 90
    through_ingress = Counter(
        predict(cluster, ingress_host("iris", namespace), [CLASS_ROWS[1]])[0]
        for _ in range(requests)
    )
    assert through_ingress == {2: requests}
    before = served(requests)
    assert sum(before.get(canary["version"], {}).values()) == 0
    # kube-proxy's part: the stable Service spreads over both of its pods.
    assert len(before[stable["version"]]) == 2 and min(before[stable["version"]].values()) > 0

    # The weighted split lives in an HTTPRoute (what the operator writes for a Standard canary).
    host = f"iris-split.{namespace}.{INGRESS_DOMAIN}"
    custom.create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes",
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "iris-split"},
         "spec": {"hostnames": [host], "rules": [{"backendRefs": [
             {"name": "iris-predictor", "port": 80, "weight": 67},
             {"name": "iris-canary-predictor", "port": 80, "weight": 33}]}]}},
    )  # fmt: skip
    wait_for(lambda: answered(cluster, host), timeout=30, what="the router to serve the route")
    baseline = served(requests + 1)
    answers = Counter(predict(cluster, host, [CLASS_ROWS[1]])[0] for _ in range(requests))
    after = served(sum(sum(p.values()) for p in baseline.values()) + requests)

    def canary_total(counts: dict[str, dict[str, float]]) -> float:
        return sum(counts.get(canary["version"], {}).values())

    canary_served = canary_total(after) - canary_total(baseline)
    # Smooth weighted round robin: 33% of the requests, as MLServer's own counters measure it,
    # and exactly the requests the canary's constant answer (class 0) came back from.
    assert abs(canary_served - 0.33 * requests) <= 1.5, (baseline, after)
    assert canary_served == answers[0], (answers, baseline, after)


def answered(router: str, host: str) -> bool:
    try:
        predict(router, host, [CLASS_ROWS[1]])
    except urllib.error.HTTPError:
        return False
    return True


def test_a_job_reaches_mlflow_by_its_service_name(
    cluster: str,
    kubelet: Path,
    mlflow_server: MlflowServer,
    api_client: client.ApiClient,
    core: client.CoreV1Api,
    namespace: str,
    tmp_path: Path,
) -> None:
    """As a retraining Job will: the tracking URI is a Service name, not a host port."""
    train(mlflow_server, "iris-visible", "logistic", tmp_path)
    code = (
        "import json, urllib.request\n"
        "url = 'http://mlflow.modelops-system.svc.cluster.local/api/2.0/mlflow/registered-models/search'\n"
        "found = json.load(urllib.request.urlopen(url, timeout=10))\n"
        "print(sorted(m['name'] for m in found['registered_models']))\n"
    )
    wait_for(lambda: core.read_namespaced_service_account("default", namespace), what="the SA")
    batch = client.BatchV1Api(api_client)
    batch.create_namespaced_job(namespace, {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "reach-mlflow"},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "main", "image": "python:3.11-slim", "command": ["python", "-c", code]}]}}},
    })  # fmt: skip

    def finished() -> str | None:
        status = batch.read_namespaced_job_status("reach-mlflow", namespace).status
        done = [c.type for c in status.conditions or [] if c.status == "True"]
        return next((kind for kind in done if kind in ("Complete", "Failed")), None)

    outcome = wait_for(finished, timeout=90, what="the Job to finish")
    [log] = kubelet.glob(f"pods/{namespace}_reach-mlflow-*/main.log")
    assert outcome == "Complete", log.read_text()
    assert "iris-visible" in log.read_text()
