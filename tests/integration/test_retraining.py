"""The retraining loop on the local cluster: a trigger fires, the real Job controller runs the
example trainer (examples/retrain) in a pod the process kubelet starts, the trainer registers
a validated version in the real MLflow, and the operator rolls it out as the next canary and
promotes it. Failed Jobs back off; a restart between the decision and the Job's creation
still creates exactly one Job."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest
from kubernetes import client
from mlflow import MlflowClient

from modelops_dev.environments import MODELS
from modelops_dev.images import TRAINER_SCRIPT
from modelops_dev.servers import MlflowServer, Prometheus
from tests.integration.conftest import Operator, holds, wait_for
from tests.integration.helpers import status

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cluster needs root")

MD = ("modelops.io", "v1alpha1")
TRAINER = {"name": "train", "image": "ghcr.io/modelops/trainer:0.1.0"}


@pytest.fixture(scope="module")
def cluster(serving_cluster: str) -> str:
    return serving_cluster


def first_version(mlflow: MlflowServer, name: str) -> str:
    """Version 1, trained by the example trainer itself (nothing serving yet: proposed)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow.url, "MODEL_NAME": name,
           "MODELOPS_TRIGGER_ID": "initial", "MODELOPS_CANDIDATE_ALIAS": "champion"}  # fmt: skip
    result = subprocess.run([str(MODELS.bin("python")), str(TRAINER_SCRIPT)], env=env,
                            capture_output=True, text=True, timeout=180, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    version: str = json.loads(result.stdout.strip().splitlines()[-1])["version"]
    return version


def deployment(name: str, mlflow: MlflowServer, prometheus: Prometheus, container: dict[str, Any],
               **retraining: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "apiVersion": "modelops.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name},
        "spec": {
            "model": {"name": name, "alias": "champion",
                      "registry": {"trackingUri": mlflow.url, "pollInterval": "2s"}},
            "serving": {"storage": {"mode": "StorageInitializer"}},
            "rollout": {"strategy": "Canary", "steps": [{"traffic": 50, "duration": "5s"}],
                        "promoteAlias": "champion"},
            # The candidate's canary is judged too; a query that always passes keeps this test
            # about the loop (test_rollout covers verdicts on real traffic).
            "analysis": {"prometheus": {"url": prometheus.url}, "interval": "5s",
                         "metrics": [{"name": "scrapes-up", "query": "vector(1)", "min": 1}]},
            "retraining": {
                # A quality query that is always in breach: the trigger fires once its `for`
                # has passed, and the cooldown keeps it from firing again.
                "triggers": [{"name": "quality", "metric": {"query": "vector(0.5)", "min": 0.9},
                              "for": "6s"}],
                "cooldown": "1h",
                "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": {"containers": [container]}}}},
                **retraining,
            },
        },
    }  # fmt: skip


def jobs(batch: client.BatchV1Api, namespace: str) -> list[Any]:
    return list(batch.list_namespaced_job(namespace, label_selector="modelops.io/deployment").items)


@pytest.mark.timeout(600)
def test_a_trigger_runs_the_example_trainer_and_its_version_is_rolled_out_and_promoted(
    cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
    custom: client.CustomObjectsApi,
    api_client: client.ApiClient,
    namespace: str,
) -> None:
    name = "wine"
    registry = MlflowClient(mlflow_server.url)
    first = first_version(mlflow_server, name)
    custom.create_namespaced_custom_object(
        *MD, namespace, "modeldeployments",
        deployment(name, mlflow_server, prometheus, TRAINER, candidate={"alias": "challenger"}),
    )  # fmt: skip
    batch = client.BatchV1Api(api_client)
    [job] = wait_for(
        lambda: jobs(batch, namespace), timeout=240, interval=1, what="the retraining Job"
    )
    env = {e.name: e.value for e in job.spec.template.spec.containers[0].env}
    assert env["MODELOPS_DEPLOYMENT"] == name and env["MODELOPS_NAMESPACE"] == namespace
    assert env["MODEL_NAME"] == name and env["MODEL_VERSION"] == first
    assert env["MLFLOW_TRACKING_URI"] == mlflow_server.url
    assert env["MODELOPS_TRIGGER"].startswith("quality: 0.5 < min 0.9 for ")
    assert env["MODELOPS_TRIGGER_ID"].startswith("quality-")
    assert env["MODELOPS_CANDIDATE_ALIAS"] == "challenger"
    assert job.metadata.owner_references[0].name == name

    def promoted() -> Any:
        found = status(custom, namespace, name)
        retraining = found.get("retraining") or {}
        stable = (found.get("stable") or {}).get("version")
        return (
            found
            if retraining.get("phase") == "Succeeded" and stable not in (None, first)
            else None
        )

    found = wait_for(promoted, timeout=300, interval=1, what="the retrained version's promotion")
    run = found["retraining"]["history"][-1]
    assert run["result"] == "Succeeded" and run["candidateVersion"] == found["stable"]["version"]
    candidate = found["stable"]["version"]
    version = registry.get_model_version(name, candidate)
    assert version.tags["modelops.io/trigger-id"] == env["MODELOPS_TRIGGER_ID"]
    assert (
        registry.get_run(version.run_id)
        .data.tags["modelops.io/data-version"]
        .startswith("sklearn-wine-")
    )
    assert [h["event"] for h in found["history"]][-2:] == ["RolloutStarted", "Promoted"]
    wait_for(lambda: registry.get_model_version_by_alias(name, "champion").version == candidate,
             timeout=30, what="the alias champion to move to the retrained version")  # fmt: skip
    completed = batch.read_namespaced_job(job.metadata.name, namespace)
    assert completed.status.succeeded == 1
    assert len(jobs(batch, namespace)) == 1  # the cooldown holds the still-breaching trigger
    assert operator.metric("modelops_retraining_total", result="succeeded") >= 1


def test_a_failed_job_is_reported_and_backs_off(
    cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    api_client: client.ApiClient,
    namespace: str,
) -> None:
    name = "broken"
    first_version(mlflow_server, name)
    failing = {
        "name": "train",
        "image": "python:3.11",
        "command": ["python", "-c", "raise SystemExit(3)"],
    }
    body = deployment(name, mlflow_server, prometheus, failing)
    body["spec"]["retraining"]["cooldown"] = "1s"  # only the backoff holds the next firing
    custom.create_namespaced_custom_object(*MD, namespace, "modeldeployments", body)
    batch = client.BatchV1Api(api_client)

    def failed() -> Any:
        found = status(custom, namespace, name).get("retraining") or {}
        return found if found.get("phase") == "Failed" else None

    found = wait_for(failed, timeout=240, interval=1, what="the failed Job to be reported")
    assert found["history"][-1]["result"] == "Failed" and found["consecutiveFailures"] == 1
    events = [
        e for e in core.list_namespaced_event(namespace).items if e.reason == "RetrainingFailed"
    ]
    assert events and "next firing not before" in events[0].message
    # The trigger is still in breach and the cooldown is 1 s: only the 1 min backoff holds it.
    holds(lambda: len(jobs(batch, namespace)) == 1, 30, "no second Job inside the backoff")


def test_a_restart_between_the_decision_and_the_job_creates_exactly_one_job(
    cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    api_client: client.ApiClient,
    namespace: str,
) -> None:
    """A quota of zero Jobs makes the API server refuse the creation after the firing is
    recorded; the operator is SIGKILLed in that state, the quota lifted, the operator started:
    the Job named in status is created, once."""
    name = "restarted"
    first_version(mlflow_server, name)
    quota = {"metadata": {"name": "no-jobs"}, "spec": {"hard": {"count/jobs.batch": "0"}}}
    core.create_namespaced_resource_quota(namespace, quota)
    wait_for(lambda: core.read_namespaced_resource_quota("no-jobs", namespace).status.hard,
             timeout=30, what="the quota to be in force")  # fmt: skip
    body = deployment(name, mlflow_server, prometheus, TRAINER)
    custom.create_namespaced_custom_object(*MD, namespace, "modeldeployments", body)

    def decided() -> Any:
        found = status(custom, namespace, name).get("retraining") or {}
        return found.get("current") if found.get("phase") == "Running" else None

    current = wait_for(decided, timeout=240, interval=0.5, what="the firing to be recorded")
    batch = client.BatchV1Api(api_client)
    assert jobs(batch, namespace) == []  # the quota refused it
    operator.kill()
    core.delete_namespaced_resource_quota("no-jobs", namespace)
    operator.start()
    [job] = wait_for(
        lambda: jobs(batch, namespace), timeout=120, interval=1, what="the Job after the restart"
    )
    assert job.metadata.name == current["job"]
    wait_for(lambda: (status(custom, namespace, name).get("retraining") or {}).get("phase") == "Succeeded",
             timeout=240, interval=1, what="the Job to finish")  # fmt: skip
    assert len(jobs(batch, namespace)) == 1
