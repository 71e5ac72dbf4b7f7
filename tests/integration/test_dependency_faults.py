"""Prometheus answering slowly (past the operator's query timeout) and then with 503, through
the devstack's fault proxy, while a canary step runs under steady traffic: every round is an
Error verdict, the rollout pauses with a condition that says why, nothing is promoted or rolled
back, and it resumes and promotes once Prometheus answers again. Meanwhile the event loop is
not blocked: a new deployment's InferenceService is written as fast as before the fault."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from mlflow import MlflowClient

from modelops.adapters.prometheus import QUERY_TIMEOUT_SECONDS
from modelops_dev.fault_proxy import FaultProxy
from modelops_dev.servers import MlflowServer
from tests.integration.conftest import MEASURED, Operator, holds, wait_for
from tests.integration.helpers import (
    ERRORS,
    INTERVAL,
    Traffic,
    condition,
    create,
    serving,
    status,
    train,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cluster needs root")


def seconds_to_inference_service(
    custom: client.CustomObjectsApi, mlflow: MlflowServer, namespace: str, name: str, version: str
) -> float:
    """A new deployment pinned to `version`: seconds from its create to its InferenceService
    (the reconcile of one deployment while another one's analysis is in flight)."""
    started = time.monotonic()
    create(custom, namespace, name, mlflow.url, None, [ERRORS],
           changes={"spec__model__alias": None, "spec__model__version": version,
                    "spec__model__name": "iris", "spec__serving__httpRoute": None,
                    "spec__analysis": None, "spec__rollout": None})  # fmt: skip

    def written() -> bool:
        try:
            custom.get_namespaced_custom_object(
                "serving.kserve.io", "v1beta1", namespace, "inferenceservices", name
            )
        except client.ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    wait_for(written, timeout=60, interval=0.05, what=f"{name}'s InferenceService")
    took = time.monotonic() - started
    custom.delete_namespaced_custom_object(
        "modelops.io", "v1alpha1", namespace, "modeldeployments", name
    )
    return took


@pytest.mark.timeout(900)
def test_a_slow_then_failing_prometheus_pauses_the_canary_and_blocks_nothing_else(
    serving_cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    prometheus_proxy: FaultProxy,
    custom: client.CustomObjectsApi,
    namespace: str,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    name = "iris"
    registry = MlflowClient(mlflow_server.url)
    first = train(mlflow_server, name, "slow-0", tmp_path)
    registry.set_registered_model_alias(name, "champion", first["version"])
    # The deployment asks Prometheus through the proxy.
    create(custom, namespace, name, mlflow_server.url, prometheus_proxy.url, [ERRORS])
    serving(custom, namespace, name, first["version"])
    before = seconds_to_inference_service(
        custom, mlflow_server, namespace, "before", first["version"]
    )

    def paused(why: str) -> Callable[[], Any]:
        def check() -> Any:
            found = status(custom, namespace, name)
            metrics = condition(found, "MetricsAvailable")
            paused = (found.get("canary") or {}).get("pausedReason")
            done = metrics.get("status") == "False" and why in metrics.get("message", "")
            return found if done and paused else None

        return check

    second = train(mlflow_server, name, "slow-0", tmp_path)["version"]
    with Traffic(serving_cluster, f"{name}.{namespace}.test", name) as traffic:
        registry.set_registered_model_alias(name, "champion", second)
        wait_for(lambda: condition(status(custom, namespace, name), "MetricsAvailable").get("status") == "True"
                 and (status(custom, namespace, name).get("canary") or {}).get("stepStartedAt"),
                 timeout=240, interval=0.5, what="the canary's first measured round")  # fmt: skip

        # 1. Slow: every query waits past the operator's timeout.
        prometheus_proxy.delay = QUERY_TIMEOUT_SECONDS + 5
        found = wait_for(paused("unreachable"), timeout=120, interval=0.5, what="a pause (slow)")
        step = found["canary"]["step"]
        during = seconds_to_inference_service(
            custom, mlflow_server, namespace, "during", first["version"]
        )

        def held() -> bool:
            now = status(custom, namespace, name)
            canary = now.get("canary") or {}
            return bool(
                canary.get("step") == step
                and now["stable"]["version"] == first["version"]
                and not now.get("rejectedVersions")
            )

        holds(held, INTERVAL * 3, "the paused step while Prometheus is slow")

        # 2. Failing: Prometheus answers 503 at once.
        prometheus_proxy.delay = 0
        prometheus_proxy.failing = 503
        wait_for(paused("injected by the fault proxy"), timeout=60, interval=0.5,
                 what="a pause (503)")  # fmt: skip
        holds(held, INTERVAL * 2, "the paused step while Prometheus answers 503")

        # 3. Back: the analysis resumes and the canary is promoted, once.
        prometheus_proxy.failing = None
        found = serving(custom, namespace, name, second)
    events = [entry["event"] for entry in found["history"]]
    assert events.count("Promoted") == 1 and "RolledBack" not in events, events
    assert set(traffic.codes) == {200}, str(traffic)
    record_property(MEASURED, f"create -> InferenceService {before:.2f} s before the fault, "
                              f"{during:.2f} s while every query to Prometheus hung "
                              f"{QUERY_TIMEOUT_SECONDS + 5:.0f} s")  # fmt: skip
    # Not blocked: the loop served the new deployment while the analysis waited on Prometheus.
    assert during < max(3 * before, 2.0), (before, during)
