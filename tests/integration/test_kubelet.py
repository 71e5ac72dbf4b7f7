"""The process kubelet on the real control plane: the scheduler binds pods to its Node, it runs
them as processes in their own network namespaces, and the real controllers react."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from modelops_dev.binaries import REPO_ROOT
from tests.integration.conftest import KUBELET_CIDR as CIDR
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pod sandboxes need root")


def service_account_ready(core: client.CoreV1Api, namespace: str) -> None:
    wait_for(
        lambda: core.read_namespaced_service_account("default", namespace),
        what="the default ServiceAccount",
    )


def job(name: str, code: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "main", "image": "python:3.11-slim", "command": ["python", "-c", code],
             "env": [{"name": "GREETING", "value": "hello"},
                     {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}}},
    }  # fmt: skip


def job_condition(batch: client.BatchV1Api, namespace: str, name: str, kind: str) -> bool:
    status = batch.read_namespaced_job_status(name, namespace).status
    return any(c.type == kind and c.status == "True" for c in status.conditions or [])


def job_pod(core: client.CoreV1Api, namespace: str, name: str) -> Any:
    [pod] = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
    return pod


def test_a_job_that_succeeds_is_marked_complete(
    kubelet: Path, api_client: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    service_account_ready(core, namespace)
    batch = client.BatchV1Api(api_client)
    code = "import os; print(os.environ['GREETING'], 'from', os.environ['POD_NAME'])"
    batch.create_namespaced_job(namespace, job("hello", code))
    wait_for(
        lambda: job_condition(batch, namespace, "hello", "Complete"),
        timeout=90,
        what="the Job to complete",
    )
    pod = job_pod(core, namespace, "hello")
    assert pod.status.phase == "Succeeded"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(CIDR)
    [log] = kubelet.glob(f"pods/{namespace}_{pod.metadata.name}_*/main.log")
    assert log.read_text().strip() == f"hello from {pod.metadata.name}"


def test_a_failing_job_is_marked_failed_with_the_exit_code(
    kubelet: Path, api_client: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    service_account_ready(core, namespace)
    batch = client.BatchV1Api(api_client)
    batch.create_namespaced_job(namespace, job("broken", "import sys; sys.exit(3)"))
    wait_for(
        lambda: job_condition(batch, namespace, "broken", "Failed"),
        timeout=90,
        what="the Job to fail",
    )
    pod = job_pod(core, namespace, "broken")
    assert pod.status.phase == "Failed"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 3


def test_an_image_without_a_local_command_waits_with_a_clear_reason(
    kubelet: Path, core: client.CoreV1Api, namespace: str
) -> None:
    service_account_ready(core, namespace)
    core.create_namespaced_pod(namespace, {"metadata": {"name": "web"}, "spec": {
        "containers": [{"name": "nginx", "image": "nginx:1.27"}]}})  # fmt: skip

    def waiting_reason() -> str | None:
        statuses = core.read_namespaced_pod("web", namespace).status.container_statuses or []
        waiting = statuses[0].state.waiting if statuses else None
        return waiting.reason if waiting else None

    # The kubelet reports PodInitializing first (as a real one reports ContainerCreating), then
    # the reason; it never starts anything in between.
    seen: list[str | None] = []

    def unrunnable() -> bool:
        seen.append(waiting_reason())
        return seen[-1] == "ImageNotRunnableLocally"

    wait_for(unrunnable, timeout=60, what="waiting with ImageNotRunnableLocally")
    assert set(seen) <= {None, "PodInitializing", "ImageNotRunnableLocally"}, seen


def test_a_ready_pod_becomes_an_endpoint_and_deleting_it_stops_its_process(
    kubelet: Path, api_client: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    service_account_ready(core, namespace)
    core.create_namespaced_pod(namespace, {"metadata": {"name": "server", "labels": {"app": "server"}}, "spec": {
        "containers": [{"name": "http", "image": "python:3.11-slim",
                        "command": ["python", "-m", "http.server", "--bind", "0.0.0.0", "8000"],
                        "ports": [{"name": "http", "containerPort": 8000}],
                        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 2}}]}})  # fmt: skip
    core.create_namespaced_service(namespace, {"metadata": {"name": "server"}, "spec": {
        "selector": {"app": "server"}, "ports": [{"port": 80, "targetPort": 8000}]}})  # fmt: skip
    pod = wait_for(
        lambda: (p := core.read_namespaced_pod("server", namespace)).status.phase == "Running"
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []) and p,
        timeout=60, what="the pod to be Ready",
    )  # fmt: skip
    discovery = client.DiscoveryV1Api(api_client)

    def ready_addresses() -> list[str]:
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=server"
        )
        return [
            a
            for s in slices.items
            for e in s.endpoints or []
            if e.conditions.ready
            for a in e.addresses
        ]

    assert wait_for(ready_addresses, timeout=60, what="a ready endpoint") == [pod.status.pod_ip]

    core.delete_namespaced_pod("server", namespace)
    wait_for(lambda: not core.list_namespaced_pod(namespace, field_selector="metadata.name=server").items,
             timeout=60, what="the kubelet to finish the pod's deletion")  # fmt: skip
    assert pod.status.pod_ip not in subprocess.run(
        ["ip", "-br", "addr"], capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "http.server --bind 0.0.0.0 8000" not in subprocess.run(
        ["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout  # fmt: skip


def test_volumes_appear_at_their_mount_paths_and_nothing_lands_on_the_host(
    kubelet: Path, core: client.CoreV1Api, namespace: str
) -> None:
    service_account_ready(core, namespace)
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "settings"}, "data": {"threshold": "0.5"}}
    )
    writer = "open('/mnt/models/model.txt', 'w').write('weights')"
    reader = (
        "import os; print(open('/mnt/models/model.txt').read(), open('/etc/modelops-test/threshold').read(),"
        " os.path.getsize('/var/run/secrets/kubernetes.io/serviceaccount/token') > 0,"
        " open('/var/run/secrets/kubernetes.io/serviceaccount/namespace').read())"
    )
    models = {"name": "models", "mountPath": "/mnt/models"}
    core.create_namespaced_pod(namespace, {"metadata": {"name": "volumes"}, "spec": {
        "restartPolicy": "Never",
        "volumes": [{"name": "models", "emptyDir": {}}, {"name": "settings", "configMap": {"name": "settings"}}],
        "initContainers": [{"name": "writer", "image": "python:3.11-slim", "command": ["python", "-c", writer],
                            "volumeMounts": [models]}],
        "containers": [{"name": "reader", "image": "python:3.11-slim", "command": ["python", "-c", reader],
                        "volumeMounts": [{**models, "readOnly": True},
                                         {"name": "settings", "mountPath": "/etc/modelops-test"}]}],
    }})  # fmt: skip
    wait_for(
        lambda: core.read_namespaced_pod("volumes", namespace).status.phase in ("Succeeded", "Failed"),
        timeout=90, what="the pod to finish",
    )  # fmt: skip
    [log] = kubelet.glob(f"pods/{namespace}_volumes_*/reader.log")
    assert log.read_text().strip() == f"weights 0.5 True {namespace}"
    assert core.read_namespaced_pod("volumes", namespace).status.phase == "Succeeded"
    assert not Path("/mnt/models").exists()
    assert not Path("/etc/modelops-test").exists()


IN_CLUSTER_CLIENT = """
import json, os, ssl, urllib.error, urllib.request
folder = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(folder + "/token").read()
namespace = open(folder + "/namespace").read()
context = ssl.create_default_context(cafile=folder + "/ca.crt")
base = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
def get(path):
    request = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)
request = urllib.request.Request(base + "/apis/authentication.k8s.io/v1/selfsubjectreviews", method="POST",
    data=json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode(),
    headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
with urllib.request.urlopen(request, context=context, timeout=10) as response:
    who = json.load(response)["status"]["userInfo"]["username"]
denied, _ = get("/api/v1/namespaces/kube-system/secrets")
print(json.dumps({"user": who, "namespace": namespace, "secrets": denied}))
"""


def test_a_pod_reaches_the_api_server_as_its_service_account(
    kubelet: Path, api_client: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    """What in-cluster clients rely on: KUBERNETES_SERVICE_HOST/PORT, the projected token,
    CA and namespace at /var/run/secrets/kubernetes.io/serviceaccount, TLS verified."""
    service_account_ready(core, namespace)
    batch = client.BatchV1Api(api_client)
    body = job("in-cluster", IN_CLUSTER_CLIENT)
    # An emptyDir at /tmp (as the chart's pod has) must not hide the token's host folder (the
    # kubelet's state is under /tmp here), nor one over the checkout's parent folder the
    # interpreter and code that play the image's part.
    pod = body["spec"]["template"]["spec"]
    pod["volumes"] = [{"name": "tmp", "emptyDir": {}}, {"name": "cover", "emptyDir": {}}]
    pod["containers"][0]["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    # (A clone directly under /tmp has its parent covered by the /tmp emptyDir already.)
    if REPO_ROOT.parent not in (Path("/"), Path("/tmp")):
        pod["containers"][0]["volumeMounts"].append(
            {"name": "cover", "mountPath": str(REPO_ROOT.parent)}
        )
    batch.create_namespaced_job(namespace, body)
    wait_for(
        lambda: (
            job_condition(batch, namespace, "in-cluster", "Complete")
            or job_condition(batch, namespace, "in-cluster", "Failed")
        ),
        timeout=90,
        what="the in-cluster client Job to finish",
    )
    pod = job_pod(core, namespace, "in-cluster")
    [log] = kubelet.glob(f"pods/{namespace}_{pod.metadata.name}_*/main.log")
    assert pod.status.phase == "Succeeded", log.read_text()
    result = json.loads(log.read_text().strip().splitlines()[-1])
    assert result == {
        "user": f"system:serviceaccount:{namespace}:default",
        "namespace": namespace,
        "secrets": 403,
    }
