"""Zero-loss traffic shifting on the local cluster: under steady traffic, a canary start, each
step, a promotion and a rollback of healthy models answer every single request with 200, and
the pods of every version that stays are left alone (no restart, no replacement). Once with an
HTTPRoute splitting by weight, once without (a replica split: the canary sized by replicas, the
stable shrinking and growing around it, clients of KServe's own host and of all pods)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from mlflow import MlflowClient

from modelops.core.requests import ROLLBACK_ANNOTATION
from modelops_dev.servers import MlflowServer, Prometheus
from tests.integration.conftest import Operator, wait_for
from tests.integration.helpers import (
    ERRORS,
    MD,
    ROWS,
    PodLog,
    Traffic,
    ingress_host,
    predict_once,
    predictor_pods,
    serve_first_version,
    status,
    train,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cluster needs root")

REPLICA_SPLIT = {
    "spec__serving__httpRoute": None,
    "spec__serving__minReplicas": 2,
    "spec__serving__maxReplicas": 4,
}


def settled(custom: client.CustomObjectsApi, namespace: str, name: str, version: str) -> Any:
    """Healthy on `version` with nothing draining and no canary entry left on the service."""

    def check() -> Any:
        found = status(custom, namespace, name)
        if (found.get("stable") or {}).get("version") != version or found.get("canary"):
            return None
        if found.get("retiring"):
            return None
        service = custom.get_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", namespace, "inferenceservices", name
        )
        return found if not service["spec"].get("canary") else None

    return wait_for(check, timeout=300, interval=0.5, what=f"{name} settled on {version}")


def roll_out_promote_and_roll_back(
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    mlflow_server: MlflowServer,
    namespace: str,
    name: str,
    traffic: Traffic,
    tmp_path: Path,
) -> PodLog:
    """v2 walks both steps and is promoted; v3 is rolled back by a person in its first step."""
    registry = MlflowClient(mlflow_server.url)
    with PodLog(core, namespace, name) as pods:
        second = train(mlflow_server, name, "slow-0", tmp_path)
        registry.set_registered_model_alias(name, "champion", second["version"])
        steps: set[int] = set()

        def promoted() -> bool:
            found = status(custom, namespace, name)
            steps.add((found.get("canary") or {}).get("step", -1))
            return bool((found.get("stable") or {}).get("version") == second["version"])

        wait_for(promoted, timeout=300, interval=0.3, what="v2 promoted")
        assert {0, 1} <= steps
        settled(custom, namespace, name, second["version"])

        third = train(mlflow_server, name, "slow-0", tmp_path)
        registry.set_registered_model_alias(name, "champion", third["version"])

        def in_step() -> bool:
            canary = status(custom, namespace, name).get("canary") or {}
            return bool(canary.get("version") == third["version"] and canary.get("stepStartedAt"))

        wait_for(in_step, timeout=300, interval=0.3, what="v3 in its first step")
        custom.patch_namespaced_custom_object(
            *MD, namespace, "modeldeployments", name,
            {"metadata": {"annotations": {ROLLBACK_ANNOTATION: f"{third['version']}/1"}}},
        )  # fmt: skip
        found = settled(custom, namespace, name, second["version"])
        assert [r["version"] for r in found["rejectedVersions"]] == [third["version"]]
        assert traffic.codes[200] > 0
    return pods


def assert_untouched(pods: PodLog, versions: list[str]) -> None:
    assert set(pods.names) == set(versions), pods.names
    assert pods.replaced() == {}, f"pods replaced: {pods.replaced()} (at most {dict(pods.most)})"
    assert all(count == 0 for count in pods.restarts.values()), pods.restarts


@pytest.mark.timeout(900)
def test_a_route_split_rollout_promotion_and_rollback_lose_no_request(
    serving_cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    namespace: str,
    tmp_path: Path,
) -> None:
    name = "steady"
    first = serve_first_version(
        custom, mlflow_server, prometheus, namespace, name, tmp_path, [ERRORS]
    )
    with Traffic(serving_cluster, f"{name}.{namespace}.test", name) as traffic:
        pods = roll_out_promote_and_roll_back(
            custom, core, mlflow_server, namespace, name, traffic, tmp_path
        )
    assert set(traffic.codes) == {200}, str(traffic)
    assert_untouched(pods, [first["version"], str(int(first["version"]) + 1),
                            str(int(first["version"]) + 2)])  # fmt: skip
    # What remains serves v2 from the pod it had as a canary (the rejected version's pod goes
    # once KServe has dropped its Deployment).
    remaining = wait_for(
        lambda: (found := predictor_pods(core, namespace, name)) and len(found) == 1 and found,
        timeout=60, interval=0.5, what="only the promoted version's pod left",
    )  # fmt: skip
    [(version, restarts)] = remaining.values()
    assert (version, restarts) == (str(int(first["version"]) + 1), 0)


@pytest.mark.timeout(900)
def test_a_replica_split_rollout_promotion_and_rollback_lose_no_request(
    serving_cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    namespace: str,
    tmp_path: Path,
) -> None:
    name = "split"
    first = serve_first_version(
        custom, mlflow_server, prometheus, namespace, name, tmp_path, [ERRORS], REPLICA_SPLIT
    )
    # A replica split reaches clients that spread over every predictor pod, here a Service
    # selecting them all; KServe's own host reaches only the stable. Both keep answering while
    # the stable shrinks to 1 pod at the 60% step, and the promotion moves KServe's Ingress.
    core.create_namespaced_service(namespace, {
        "metadata": {"name": f"{name}-all"},
        "spec": {"selector": {"serving.kserve.io/inferenceservice": name},
                 "ports": [{"port": 80, "targetPort": 8080}]},
    })  # fmt: skip
    # The router learns of a new Service before its EndpointSlice exists (503, no endpoint), as
    # any proxy may: the counted traffic starts once the Service answers.
    wait_for(lambda: predict_once(serving_cluster, f"{name}-all.{namespace}", name, ROWS[0])[0] == 200,
             timeout=30, interval=0.2, what=f"{name}-all answering")  # fmt: skip
    with (
        Traffic(serving_cluster, ingress_host(name, namespace), name, rate=12) as kserve_host,
        Traffic(serving_cluster, f"{name}-all.{namespace}", name, rate=12) as traffic,
    ):
        pods = roll_out_promote_and_roll_back(
            custom, core, mlflow_server, namespace, name, traffic, tmp_path
        )
    assert set(kserve_host.codes) == {200}, str(kserve_host)
    assert set(traffic.codes) == {200}, str(traffic)
    versions = [first["version"], str(int(first["version"]) + 1), str(int(first["version"]) + 2)]
    assert_untouched(pods, versions)
    assert pods.most[versions[0]] == 2 and pods.most[versions[1]] == 2
