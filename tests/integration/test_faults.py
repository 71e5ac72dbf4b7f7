"""Faults of the control plane under a running rollout: the API server restarted (every watch
stream breaks, the operator lists again), etcd paused for 10 s (every request hangs), and
KServe's manager frozen (nothing reconciles InferenceServices, its webhooks time out). The
operator recovers without a restart of its own, the rollout is promoted once, and the times
to recover are measured."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from mlflow import MlflowClient

from modelops_dev.control_plane import OPERATOR_USER, READ_VERBS, ControlPlane
from modelops_dev.kserve import KServeController
from modelops_dev.servers import MlflowServer, Prometheus
from tests.conftest import MEASURED
from tests.integration.conftest import Operator, holds, wait_for
from tests.integration.helpers import (
    ERRORS,
    Traffic,
    condition,
    serve_first_version,
    serving,
    status,
    train,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cluster needs root")

ETCD_PAUSE = 10.0


def first_after(plane: ControlPlane, moment: datetime, namespace: str | None = None) -> float:
    """Seconds from `moment` to the operator's first request after it: a write in `namespace`,
    or with no namespace any request (its watches listing again)."""

    def found() -> datetime | None:
        times = []
        for line in plane.audit_log.read_text().splitlines():
            entry = json.loads(line)
            if entry["user"]["username"] != OPERATOR_USER:
                continue
            if namespace is not None and (entry["verb"] in READ_VERBS or (
                    entry.get("objectRef") or {}).get("namespace") != namespace):  # fmt: skip
                continue
            received = datetime.fromisoformat(
                entry["requestReceivedTimestamp"].replace("Z", "+00:00")
            )
            if received > moment:
                times.append(received)
        return min(times) if times else None

    first = wait_for(found, timeout=120, interval=0.5, what="the operator's next request")
    return (first - moment).total_seconds()


@pytest.mark.timeout(900)
def test_the_operator_rides_out_an_api_server_restart_and_an_etcd_pause_mid_rollout(
    serving_cluster: str,
    operator: Operator,
    control_plane: ControlPlane,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
    custom: client.CustomObjectsApi,
    namespace: str,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    name = "iris"
    serve_first_version(custom, mlflow_server, prometheus, namespace, name, tmp_path, [ERRORS])
    registry = MlflowClient(mlflow_server.url)
    assert operator.process is not None
    pid = operator.process.pid

    def in_first_step() -> Any:
        canary = status(custom, namespace, name).get("canary") or {}
        return canary if canary.get("stepStartedAt") and canary.get("step") == 0 else None

    def promoted(version: str) -> Any:
        def check() -> Any:
            found = status(custom, namespace, name)
            return found if (found.get("stable") or {}).get("version") == version else None

        return wait_for(check, timeout=300, interval=0.5, what=f"version {version} promoted")

    with Traffic(serving_cluster, f"{name}.{namespace}.test", name) as traffic:
        # 1. The API server restarted while the canary's first step runs.
        second = train(mlflow_server, name, "slow-0", tmp_path)["version"]
        registry.set_registered_model_alias(name, "champion", second)
        wait_for(in_first_step, timeout=240, interval=0.5, what="the first step")
        down = control_plane.restart_apiserver()
        back = datetime.now().astimezone()
        # The next step's write comes from the same process, through re-listed watches.
        found = promoted(second)
        assert [h["event"] for h in found["history"]].count("Promoted") == 1
        assert found["history"][-1]["event"] == "Promoted"
        relisted = first_after(control_plane, back)
        written = first_after(control_plane, back, namespace)
        record_property(MEASURED, f"API server down {down:.1f} s; the operator's watches back "
                                  f"{relisted:.1f} s and its next write {written:.1f} s after "
                                  "it was ready (the step's timer)")  # fmt: skip
        assert status(custom, namespace, name).get("canary") is None

        # 2. etcd paused for 10 s during the next canary's first step.
        third = train(mlflow_server, name, "slow-0", tmp_path)["version"]
        registry.set_registered_model_alias(name, "champion", third)
        wait_for(in_first_step, timeout=240, interval=0.5, what="the next first step")
        with control_plane.etcd_paused():
            time.sleep(ETCD_PAUSE)  # the fault's length, not a wait for a condition
        resumed = datetime.now().astimezone()
        found = promoted(third)
        assert [h["event"] for h in found["history"]].count("Promoted") == 2
        written = first_after(control_plane, resumed, namespace)
        record_property(MEASURED, f"etcd paused {ETCD_PAUSE:.0f} s; the operator's next write "
                                  f"{written:.1f} s after it resumed")  # fmt: skip

    # The model servers and the router never needed the control plane to answer.
    assert set(traffic.codes) == {200}, str(traffic)
    assert operator.process is not None and operator.process.pid == pid, "never restarted"
    assert operator.process.poll() is None


@pytest.mark.timeout(900)
@pytest.mark.parametrize("outage", ["frozen", "killed"])
def test_a_canary_holds_while_kserve_is_down_and_is_promoted_once_it_is_back(
    outage: str,
    serving_cluster: str,
    operator: Operator,
    kserve: KServeController,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    namespace: str,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    """KServe's manager frozen (its webhooks time out) or killed (refused at once) during the
    first canary step: the steps the route carries go on, but the promotion (which needs KServe to move the stable predictor) is held with
    KServeAnswering=False and one Warning; nothing is rolled back; once KServe is back the
    promotion goes through, once, and every request was answered."""
    name = "iris"
    first = serve_first_version(
        custom, mlflow_server, prometheus, namespace, name, tmp_path, [ERRORS]
    )
    registry = MlflowClient(mlflow_server.url)
    second = train(mlflow_server, name, "slow-0", tmp_path)["version"]

    def answering() -> str:
        return str(condition(status(custom, namespace, name), "KServeAnswering").get("status"))

    with Traffic(serving_cluster, f"{name}.{namespace}.test", name) as traffic:
        registry.set_registered_model_alias(name, "champion", second)
        wait_for(lambda: (status(custom, namespace, name).get("canary") or {}).get("stepStartedAt"),
                 timeout=240, interval=0.5, what="the first step")  # fmt: skip
        with kserve.paused() if outage == "frozen" else kserve.killed():
            wait_for(lambda: answering() == "False", timeout=120, interval=0.5,
                     what="the promotion held for KServe")  # fmt: skip

            def held() -> bool:
                found = status(custom, namespace, name)
                events = [h["event"] for h in found["history"]]
                return bool(found["stable"]["version"] == first["version"] and found.get("canary")
                            and "RolledBack" not in events and events.count("Promoted") == 0)  # fmt: skip

            holds(held, 20, "the held promotion while KServe is down")
        resumed = time.monotonic()
        found = serving(custom, namespace, name, second)
        back = time.monotonic() - resumed
    assert answering() == "True"
    events = [h["event"] for h in found["history"]]
    assert events.count("Promoted") == 1 and "RolledBack" not in events, events
    warnings = [
        e for e in core.list_namespaced_event(namespace).items if e.reason == "KServeNotAnswering"
    ]
    assert len(warnings) == 1 and "KServe did not answer" in warnings[0].message
    assert set(traffic.codes) == {200}, str(traffic)
    record_property(MEASURED, f"KServe {outage} mid-canary: promotion held; promoted {back:.1f} s "
                              "after KServe was back; every request answered 200")  # fmt: skip
