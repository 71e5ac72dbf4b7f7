"""A model-server pod killed mid-canary: the canary's only pod deleted at once (no grace) while
its step takes a share of steady traffic. The Deployment replaces it; the operator sees the
canary lose readiness, moves the traffic off it, lets it back once the new pod has been ready
for the sustained interval, and promotes it; nothing is rolled back. What users see between the
kill and the route change is counted."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from mlflow import MlflowClient

from modelops_dev.servers import MlflowServer, Prometheus
from tests.conftest import MEASURED
from tests.integration.conftest import Operator, wait_for
from tests.integration.helpers import (
    ERRORS,
    ROUTES,
    Traffic,
    predictor_pods,
    serve_first_version,
    serving,
    status,
    train,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cluster needs root")


def canary_weight(custom: client.CustomObjectsApi, namespace: str, name: str) -> int:
    route = custom.get_namespaced_custom_object(*ROUTES[:2], namespace, ROUTES[2], name)
    backends = route["spec"]["rules"][0]["backendRefs"]
    return sum(int(b.get("weight", 1)) for b in backends[1:])


@pytest.mark.timeout(900)
def test_a_killed_canary_pod_loses_its_traffic_until_replaced_and_is_then_promoted(
    serving_cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    namespace: str,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    name = "iris"
    # Longer steps than the default: the replacement pod's start and sustained readiness fit
    # inside the rollout.
    steps = [{"traffic": 30, "duration": "30s"}, {"traffic": 60, "duration": "15s"}]
    serve_first_version(custom, mlflow_server, prometheus, namespace, name, tmp_path, [ERRORS],
                        changes={"spec__rollout__steps": steps})  # fmt: skip
    second = train(mlflow_server, name, "slow-0", tmp_path)["version"]

    def canary_pods() -> list[str]:
        pods = predictor_pods(core, namespace, name)
        return [pod for pod, (version, _) in pods.items() if version == second]

    with Traffic(serving_cluster, f"{name}.{namespace}.test", name) as traffic:
        MlflowClient(mlflow_server.url).set_registered_model_alias(name, "champion", second)
        wait_for(lambda: (status(custom, namespace, name).get("canary") or {}).get("stepStartedAt"),
                 timeout=240, interval=0.5, what="the first step")  # fmt: skip
        wait_for(lambda: canary_weight(custom, namespace, name) == 30, timeout=30,
                 what="the canary's share on the route")  # fmt: skip
        [killed] = canary_pods()
        before = traffic.non_2xx()
        started = time.monotonic()
        core.delete_namespaced_pod(killed, namespace, grace_period_seconds=0)

        def off() -> Any:
            found = status(custom, namespace, name)
            return found if not (found.get("canary") or {}).get("stepStartedAt") else None

        lost = wait_for(off, timeout=60, interval=0.2, what="the canary's loss of readiness")
        wait_for(lambda: canary_weight(custom, namespace, name) == 0, timeout=30, interval=0.2,
                 what="the traffic moved off the canary")  # fmt: skip
        moved_off = time.monotonic() - started
        failed_meanwhile = traffic.non_2xx() - before
        wait_for(lambda: (status(custom, namespace, name).get("canary") or {}).get("stepStartedAt"),
                 timeout=240, interval=0.5, what="the replaced canary back in its step")  # fmt: skip
        back = time.monotonic() - started
        failed_by_then = traffic.non_2xx()
        found = serving(custom, namespace, name, second)
    assert killed not in canary_pods()
    assert lost["canary"]["step"] == 0 and lost["canary"]["waitingSince"]
    assert "not ready" in lost["message"], lost["message"]
    events = [h["event"] for h in found["history"]]
    assert events.count("Promoted") == 1 and "RolledBack" not in events, events
    failures = traffic.non_2xx()
    assert failures == failed_by_then, str(traffic)  # none once the new pod had its share
    record_property(MEASURED, f"canary pod killed: traffic off it {moved_off:.1f} s later "
                              f"({failed_meanwhile} non-2xx of ~{int(moved_off * 25 * 0.3)} "
                              f"requests to its share), back in its step {back:.0f} s later, "
                              "promoted once")  # fmt: skip
