"""Prometheus and MLflow answering slowly (past the operator's timeouts) and then with 5xx,
through the devstack's fault proxy, while a canary step runs under steady traffic.

Prometheus: every round is an Error verdict, the rollout pauses with a condition that says why,
nothing is promoted or rolled back, and it resumes and promotes once Prometheus answers again.
MLflow: the canary pauses in its step (the alias may have moved: nothing is promoted) and
resumes; a failing canary is still rolled back while the registry does not answer, and the
version it rejected is not served again. Meanwhile the event loop is not blocked: a new
deployment's InferenceService is written as fast as before the fault."""

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
from modelops.adapters.registry import REQUEST_TIMEOUT_SECONDS
from modelops_dev.fault_proxy import FaultProxy
from modelops_dev.servers import MlflowServer, Prometheus
from tests.conftest import MEASURED
from tests.integration.conftest import Operator, holds, wait_for
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
    custom: client.CustomObjectsApi,
    mlflow: MlflowServer,
    namespace: str,
    name: str,
    version: str,
    model: str = "iris",
) -> float:
    """A new deployment of `model` pinned to `version` on the registry itself: seconds from
    its create to its InferenceService (one deployment reconciled while another one waits on
    a dependency)."""
    started = time.monotonic()
    create(custom, namespace, name, mlflow.url, None, [ERRORS],
           changes={"spec__model__alias": None, "spec__model__version": version,
                    "spec__model__name": model, "spec__serving__httpRoute": None,
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


@pytest.mark.timeout(1200)
def test_a_slow_then_failing_registry_pauses_the_canary_and_a_failing_one_is_still_rolled_back(
    serving_cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    mlflow_proxy: FaultProxy,
    prometheus: Prometheus,
    custom: client.CustomObjectsApi,
    namespace: str,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    name = "wine"  # a model of its own in the session's registry
    registry = MlflowClient(mlflow_server.url)
    first = train(mlflow_server, name, "slow-0", tmp_path)["version"]
    registry.set_registered_model_alias(name, "champion", first)
    # The deployment asks the registry through the proxy; its pods download from MLflow itself.
    create(custom, namespace, name, mlflow_proxy.url, prometheus.url, [ERRORS])
    serving(custom, namespace, name, first)
    before = seconds_to_inference_service(custom, mlflow_server, namespace, "before", first, name)
    second = train(mlflow_server, name, "slow-0", tmp_path)["version"]
    bad = train(mlflow_server, name, "refuse-all", tmp_path)["version"]

    def silent(why: str) -> Callable[[], Any]:
        def check() -> Any:
            found = status(custom, namespace, name)
            reachable = condition(found, "RegistryReachable")
            paused = (found.get("canary") or {}).get("pausedReason") or ""
            done = reachable.get("status") == "False" and why in reachable.get("message", "")
            return found if done and "nothing is promoted" in paused else None

        return check

    with Traffic(serving_cluster, f"{name}.{namespace}.test", name) as traffic:
        registry.set_registered_model_alias(name, "champion", second)
        wait_for(lambda: condition(status(custom, namespace, name), "MetricsAvailable").get("status") == "True"
                 and (status(custom, namespace, name).get("canary") or {}).get("stepStartedAt"),
                 timeout=240, interval=0.5, what="the canary's first measured round")  # fmt: skip

        # 1. Slow: every lookup waits past the registry client's timeout.
        mlflow_proxy.delay = REQUEST_TIMEOUT_SECONDS + 5
        found = wait_for(silent("timed out"), timeout=120, interval=0.5, what="a pause (slow)")
        step = found["canary"]["step"]
        during = seconds_to_inference_service(
            custom, mlflow_server, namespace, "during", first, name
        )

        def held() -> bool:
            now = status(custom, namespace, name)
            return bool(
                (now.get("canary") or {}).get("step") == step
                and now["stable"]["version"] == first
                and not now.get("rejectedVersions")
            )

        # Longer than both steps: without the registry the canary would have been promoted.
        holds(held, 35, "the paused step while the registry is slow")

        # 2. Failing: the registry answers 500 at once.
        mlflow_proxy.delay = 0
        mlflow_proxy.failing = 500
        wait_for(silent("answered"), timeout=60, interval=0.5, what="a pause (500)")
        holds(held, INTERVAL * 2, "the paused step while the registry answers 500")

        # 3. Back: the canary goes on and is promoted, once.
        mlflow_proxy.failing = None
        serving(custom, namespace, name, second)
        clean = traffic.non_2xx()

        # 4. A canary that fails every request, judged while the registry answers 500.
        registry.set_registered_model_alias(name, "champion", bad)
        wait_for(lambda: (status(custom, namespace, name).get("canary") or {}).get("version") == bad,
                 timeout=60, interval=0.2, what="the bad version's canary")  # fmt: skip
        mlflow_proxy.failing = 500
        silenced = time.monotonic()

        def rejected() -> Any:
            found = status(custom, namespace, name)
            versions = [r["version"] for r in found.get("rejectedVersions", [])]
            return found if bad in versions and not found.get("canary") else None

        found = wait_for(rejected, timeout=300, interval=0.5, what="the rollback, registry down")
        rolled_back = time.monotonic() - silenced
        assert condition(found, "RegistryReachable")["status"] == "False", found["conditions"]
        assert mlflow_proxy.requests() > 0  # the registry was asked, and failed, meanwhile
        # 5. The registry answers again, still naming the bad version: it is not served again.
        mlflow_proxy.failing = None
        wait_for(lambda: condition(status(custom, namespace, name), "RegistryReachable")
                 .get("status") == "True", timeout=60, interval=0.5, what="the registry back")  # fmt: skip

        def stays() -> bool:
            now = status(custom, namespace, name)
            return now["stable"]["version"] == second and not now.get("canary")

        holds(stays, INTERVAL * 2, "the rejected version kept out")
    events = [entry["event"] for entry in found["history"]]
    assert events.count("Promoted") == 1 and events.count("RolledBack") == 1, events
    assert clean == 0, str(traffic)  # no failure before the bad version
    assert set(traffic.codes) <= {200, 500}, str(traffic)
    record_property(MEASURED, f"registry slow {REQUEST_TIMEOUT_SECONDS + 5:.0f} s then 500: "
                              f"create -> InferenceService {before:.2f} s before, {during:.2f} s "
                              f"during; canary paused, promoted once after; a failing canary "
                              f"rolled back {rolled_back:.1f} s after the registry failed, "
                              f"{traffic.non_2xx()} non-2xx from it")  # fmt: skip
    assert during < max(3 * before, 2.0), (before, during)
