"""A person deleting what the operator made, on the local cluster: the HTTPRoute (applied again
as soon as the watch reports it), the InferenceService (created again and served), a running
retraining Job (recorded as failed, not created again), and then the whole namespace (everything
goes; nothing waits on a finalizer of ours). Each says so with a Warning Event; the gaps users
see are counted and measured."""

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
from tests.integration.conftest import Operator, holds, wait_for
from tests.integration.helpers import (
    ERRORS,
    MD,
    ROUTES,
    Traffic,
    create,
    events,
    serving,
    status,
    train,
)
from tests.integration.test_retraining import deployment as retrained_deployment
from tests.integration.test_retraining import first_version, jobs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cluster needs root")

SERVICES = ("serving.kserve.io", "v1beta1", "inferenceservices")


def uid(custom: client.CustomObjectsApi, kind: tuple[str, str, str], ns: str, name: str) -> Any:
    try:
        found = custom.get_namespaced_custom_object(kind[0], kind[1], ns, kind[2], name)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return found["metadata"]["uid"]


@pytest.mark.timeout(600)
def test_a_deleted_route_and_inference_service_are_made_again(
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
    first = train(mlflow_server, name, "slow-0", tmp_path)
    MlflowClient(mlflow_server.url).set_registered_model_alias(name, "champion", first["version"])
    create(custom, namespace, name, mlflow_server.url, prometheus.url, [ERRORS])
    serving(custom, namespace, name, first["version"])
    route = uid(custom, ROUTES, namespace, name)
    assert route is not None

    with Traffic(serving_cluster, f"{name}.{namespace}.test", name) as traffic:
        wait_for(lambda: traffic.codes[200] >= 10, timeout=30, what="traffic answered")
        deleted = time.monotonic()
        custom.delete_namespaced_custom_object(*ROUTES[:2], namespace, ROUTES[2], name)
        again = wait_for(lambda: uid(custom, ROUTES, namespace, name) not in (None, route),
                         timeout=30, interval=0.05, what="the route applied again")  # fmt: skip
        route_back = time.monotonic() - deleted
        assert again
        answered = traffic.codes[200]
        wait_for(lambda: traffic.codes[200] >= answered + 10, timeout=30,
                 what="traffic answered through the new route")  # fmt: skip
        route_failures = traffic.non_2xx()

        service = uid(custom, SERVICES, namespace, name)
        deleted = time.monotonic()
        custom.delete_namespaced_custom_object(*SERVICES[:2], namespace, SERVICES[2], name)
        wait_for(lambda: uid(custom, SERVICES, namespace, name) not in (None, service),
                 timeout=60, interval=0.2, what="the InferenceService created again")  # fmt: skip
        service_back = time.monotonic() - deleted

        def new_one_ready() -> bool:
            found = custom.get_namespaced_custom_object(*SERVICES[:2], namespace, SERVICES[2], name)
            conditions = (found.get("status") or {}).get("conditions") or []
            return found["metadata"]["uid"] != service and any(
                c["type"] == "Ready" and c["status"] == "True" for c in conditions
            )

        wait_for(new_one_ready, timeout=240, interval=0.5, what="the new InferenceService Ready")
        serving_back = time.monotonic() - deleted
        answered = traffic.codes[200]
        wait_for(lambda: traffic.codes[200] >= answered + 25, timeout=60,
                 what="traffic answered by the new predictor")  # fmt: skip
    found = status(custom, namespace, name)
    assert found["stable"]["version"] == first["version"] and found["phase"] == "Healthy"
    recreated = [e.message for e in events(core, namespace, "Recreated")]
    assert any("HTTPRoute" in m for m in recreated), recreated
    assert any("InferenceService" in m for m in recreated), recreated
    failures = traffic.non_2xx()
    record_property(MEASURED, f"HTTPRoute deleted: applied again {route_back:.2f} s later, "
                              f"{route_failures} non-2xx answers at 25 req/s; InferenceService "
                              f"deleted: created again {service_back:.1f} s later, answering again "
                              f"{serving_back:.0f} s later ({failures - route_failures} non-2xx)")  # fmt: skip


@pytest.mark.timeout(600)
def test_a_deleted_running_job_is_recorded_and_a_deleted_namespace_takes_everything(
    serving_cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    api_client: client.ApiClient,
    namespace: str,
    record_property: Callable[[str, object], None],
) -> None:
    name = "sleepy"
    first_version(mlflow_server, name)
    sleeping = {"name": "train", "image": "python:3.11",
                "command": ["python", "-c", "import time; time.sleep(600)"]}  # fmt: skip
    body = retrained_deployment(name, mlflow_server, prometheus, sleeping)
    body["spec"]["retraining"]["cooldown"] = "1s"  # only the backoff holds the next firing
    custom.create_namespaced_custom_object(*MD, namespace, "modeldeployments", body)
    batch = client.BatchV1Api(api_client)
    [job] = wait_for(lambda: jobs(batch, namespace), timeout=240, interval=1, what="the Job")
    wait_for(lambda: (batch.read_namespaced_job(job.metadata.name, namespace).status.active or 0) > 0,
             timeout=120, interval=1, what="the Job's pod running")  # fmt: skip

    batch.delete_namespaced_job(job.metadata.name, namespace, propagation_policy="Background")

    def recorded() -> Any:
        found = status(custom, namespace, name).get("retraining") or {}
        return found if found.get("phase") == "Failed" else None

    found = wait_for(recorded, timeout=60, interval=0.5, what="the deleted Job recorded")
    assert found["history"][-1]["job"] == job.metadata.name
    assert found["history"][-1]["result"] == "Failed"
    said = [e.message for e in core.list_namespaced_event(namespace).items
            if e.reason == "RetrainingJobDeleted"]  # fmt: skip
    assert len(said) == 1 and "not created again" in said[0], said
    # The trigger is still in breach, the cooldown 1 s: only the backoff holds the next Job.
    holds(lambda: jobs(batch, namespace) == [], 15, "no Job created again")

    # The namespace goes with the deployment, its InferenceService and pods: nothing of ours
    # holds a finalizer.
    started = time.monotonic()
    core.delete_namespace(namespace)

    def gone() -> bool:
        try:
            core.read_namespace(namespace)
        except client.ApiException as error:
            return error.status == 404
        return False

    wait_for(gone, timeout=180, interval=0.5, what=f"namespace {namespace} deleted")
    took = time.monotonic() - started
    record_property(MEASURED, f"namespace with a served deployment deleted in {took:.1f} s")
    assert operator.process is not None and operator.process.poll() is None
