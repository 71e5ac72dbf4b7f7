"""The operator installed by `helm install` and run for real: the chart's Deployment makes
the pod, the process kubelet runs it with its ServiceAccount token projected and the API
server at KUBERNETES_SERVICE_HOST, and a canary is rolled out and promoted with exactly the
chart's RBAC, the operator upgraded (both replicas rolled) in the middle of it. The audit log proves no request was refused; a request outside it is denied.
The chart's pod template is also admitted by the real PodSecurity admission ("restricted")."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from mlflow import MlflowClient

from modelops_dev.binaries import ensure_helm
from modelops_dev.control_plane import ControlPlane
from modelops_dev.servers import MlflowServer, Prometheus
from tests.integration.conftest import KUBELET_GATEWAY, free_port, wait_for
from tests.integration.helpers import CHART, ERRORS, Traffic, create, render, serving, status, train

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cluster needs root")

RELEASE = "modelops"


def helm(plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ensure_helm()), "--kubeconfig", str(plane.kubeconfig), *args],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


@pytest.fixture
def prometheus_for_pods(prometheus: Prometheus, control_plane: ControlPlane) -> Iterator[str]:
    """Prometheus listens on loopback; pods reach it through a forwarder on the gateway."""
    port = free_port()
    log = (control_plane.logs / "prometheus-forwarder.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "modelops_dev.forwarder", f"{KUBELET_GATEWAY}:{port}",
         prometheus.url.removeprefix("http://")],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield f"http://{KUBELET_GATEWAY}:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def release(
    no_session_operator: None,
    serving_cluster: str,
    control_plane: ControlPlane,
    mlflow_server: MlflowServer,
    prometheus_for_pods: str,
    core: client.CoreV1Api,
) -> Iterator[str]:
    """`helm install` of the chart (the CRD is the session's) into a namespace of its own."""
    namespace = f"modelops-{uuid.uuid4().hex[:6]}"
    installed = helm(
        control_plane, "install", RELEASE, str(CHART), "--namespace", namespace,
        "--create-namespace", "--set", "crds.install=false", "--set", "logFormat=text",
        "--set", f"registry.trackingUri={mlflow_server.url}",
        "--set", f"prometheus.url={prometheus_for_pods}", "--wait", "--timeout", "180s",
    )  # fmt: skip
    try:
        assert installed.returncode == 0, installed.stderr + pod_phases(core, namespace)
        yield namespace
    finally:
        removed = helm(control_plane, "uninstall", RELEASE, "--namespace", namespace, "--wait")
        core.delete_namespace(namespace)
        assert removed.returncode == 0, removed.stderr


def pod_phases(core: client.CoreV1Api, namespace: str) -> str:
    """The pods of the release and their phases (for failure messages)."""
    with_logs = []
    for pod in core.list_namespaced_pod(namespace).items:
        with_logs.append(f"{pod.metadata.name}: {pod.status.phase} {pod.status.message or ''}")
    return "\n".join(with_logs)


def operator_metric(core: client.CoreV1Api, release: str, name: str, **labels: str) -> float:
    """Sum over the operator's running pods (the leader and its standby) of the samples of
    `name` whose labels include `labels` (the host reaches pod addresses over the bridge)."""
    wanted = {f'{key}="{value}"' for key, value in labels.items()}
    total = 0.0
    for pod in core.list_namespaced_pod(
        release, label_selector="app.kubernetes.io/name=modelops"
    ).items:
        if pod.status.phase != "Running" or not pod.status.pod_ip:
            continue
        url = f"http://{pod.status.pod_ip}:8081/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        for line in text.splitlines():
            series, _, value = line.rpartition(" ")
            metric, _, label_text = series.partition("{")
            if metric == name and wanted <= set(label_text.rstrip("}").split(",")):
                total += float(value)
    return total


def service_account_user(namespace: str) -> str:
    return f"system:serviceaccount:{namespace}:{RELEASE}"


def audit_entries(plane: ControlPlane, user: str) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in plane.audit_log.read_text().splitlines()]
    return [e for e in entries if e["user"]["username"] == user]


def as_service_account(
    plane: ControlPlane, core: client.CoreV1Api, namespace: str, path: str
) -> int:
    """The HTTP status of a GET made with a token of the chart's ServiceAccount."""
    token = core.create_namespaced_service_account_token(
        RELEASE, namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token
    context = ssl.create_default_context(cafile=str(plane.directory / "pki" / "ca.crt"))
    request = urllib.request.Request(
        plane.server + path, headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.timeout(600)
def test_the_chart_installed_operator_promotes_a_canary_with_only_its_rbac(
    release: str,
    serving_cluster: str,
    control_plane: ControlPlane,
    mlflow_server: MlflowServer,
    prometheus_for_pods: str,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    namespace: str,
    tmp_path: Path,
) -> None:
    user = service_account_user(release)
    # The chart's default: two replicas, one leading on the shard's Lease.
    pods = core.list_namespaced_pod(release).items
    assert len(pods) == 2
    assert all(p.spec.service_account_name == RELEASE and p.status.phase == "Running" for p in pods)
    wait_for(lambda: operator_metric(core, release, "modelops_leader") == 1, timeout=60,
             what="one leader among the two replicas")  # fmt: skip

    name = "iris"
    registry = MlflowClient(mlflow_server.url)
    first = train(mlflow_server, name, "slow-20", tmp_path)
    registry.set_registered_model_alias(name, "champion", first["version"])
    # No analysis.prometheus: the chart's operator-wide prometheus.url is what it queries.
    steps = [{"traffic": 30, "duration": "45s"}, {"traffic": 60, "duration": "15s"}]
    create(custom, namespace, name, mlflow_server.url, None, [ERRORS],
           changes={"spec__rollout__steps": steps})  # fmt: skip
    serving(custom, namespace, name, first["version"])

    with Traffic(serving_cluster, f"{name}.{namespace}.test", name) as traffic:
        second = train(mlflow_server, name, "slow-20", tmp_path)
        registry.set_registered_model_alias(name, "champion", second["version"])
        # The operator upgraded mid-rollout: a new pod template (as a new image gives) rolls
        # both replicas one by one; the leader hands its lease on as it stops.
        wait_for(lambda: (status(custom, namespace, name).get("canary") or {}).get("stepStartedAt"),
                 timeout=240, interval=0.5, what="the canary's first step")  # fmt: skip
        before = operator_pod_names(core, release)
        upgraded = helm(control_plane, "upgrade", RELEASE, str(CHART), "--namespace", release,
                        "--reuse-values", "--set", "logFormat=json", "--wait", "--timeout", "180s")  # fmt: skip
        assert upgraded.returncode == 0, upgraded.stderr + pod_phases(core, release)
        wait_for(lambda: len(operator_pod_names(core, release)) == 2
                 and not operator_pod_names(core, release) & before,
                 timeout=120, what="both replicas replaced")  # fmt: skip

        def promoted() -> Any:
            found = status(custom, namespace, name)
            return (
                found if (found.get("stable") or {}).get("version") == second["version"] else None
            )

        found = wait_for(promoted, timeout=300, interval=1, what="the canary's promotion")
    assert [h["event"] for h in found["history"]][-2:] == ["RolloutStarted", "Promoted"]
    assert set(traffic.codes) == {200}, str(traffic)  # the upgrade cost users nothing
    # Judged through the chart's prometheus.url: passing rounds, no query errors.
    passed = operator_metric(core, release, "modelops_analysis_measurements_total",
                             namespace=namespace, deployment=name, verdict="Pass")  # fmt: skip
    assert passed > 0
    # No query of this deployment's failed (the operator also sees what other tests left in
    # their namespaces, so its process-wide error counter is not this test's).
    errors = operator_metric(core, release, "modelops_analysis_measurements_total",
                             namespace=namespace, deployment=name, verdict="Error")  # fmt: skip
    assert errors == 0
    wait_for(lambda: registry.get_model_version_by_alias(name, "production").version == second["version"],
             timeout=30, what="promoteAlias production to move (written from the pod)")  # fmt: skip

    # The chart's `helm test` pod reads the operator's metrics through its Service.
    tested = helm(control_plane, "test", RELEASE, "--namespace", release, "--timeout", "120s")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "Phase:          Succeeded" in tested.stdout, tested.stdout

    # Everything above was done by the pod's ServiceAccount, and nothing it asked was refused.
    entries = audit_entries(control_plane, user)
    done = {(e["verb"], e.get("objectRef", {}).get("resource"), e.get("objectRef", {}).get("subresource"))
            for e in entries if e["responseStatus"]["code"] < 300}  # fmt: skip
    # Server-side apply is a patch (that creates: RBAC asks `create` of it then).
    assert {("patch", "modeldeployments", "status"), ("patch", "inferenceservices", None),
            ("patch", "httproutes", None), ("create", "events", None),
            ("watch", "modeldeployments", None), ("watch", "inferenceservices", None),
            ("get", "leases", None), ("update", "leases", None)} <= done, done  # fmt: skip
    # Refused by RBAC (a 403 for a namespace being deleted is the API server's, after RBAC
    # allowed the request: other tests' namespaces go away while this operator watches all).
    refused = [(e["verb"], e["requestURI"]) for e in entries
               if (e.get("annotations") or {}).get("authorization.k8s.io/decision") == "forbid"]  # fmt: skip
    assert refused == []
    assert any((e.get("annotations") or {}).get("authorization.k8s.io/decision") == "allow"
               for e in entries)  # the audit log records the decisions checked above  # fmt: skip

    # Outside the chart's RBAC: Secrets may be read one by one, never listed; nothing deleted.
    assert (
        as_service_account(control_plane, core, release, "/api/v1/namespaces/kube-system/secrets")
        == 403
    )
    assert as_service_account(control_plane, core, release, "/api/v1/nodes") == 403
    assert as_service_account(
        control_plane, core, release, f"/apis/modelops.io/v1alpha1/namespaces/{namespace}/modeldeployments"
    ) == 200  # fmt: skip

    upgrade_to_the_monitor_and_back(control_plane, core, custom, release, namespace, name)


def upgrade_to_the_monitor_and_back(
    plane: ControlPlane, core: client.CoreV1Api, custom: client.CustomObjectsApi,
    release: str, namespace: str, name: str,
) -> None:  # fmt: skip
    """`helm upgrade` turns the monitor on in a running release: its pod becomes ready under
    restricted security, the operator rolls to a pod that logs monitored deployments to it, and
    the monitor reads with only its read-only role. A second upgrade removes it again."""
    operator_pods = operator_pod_names(core, release)
    core.create_namespaced_secret(release, {"metadata": {"name": "feedback"},
                                            "stringData": {"token": uuid.uuid4().hex}})  # fmt: skip
    upgraded = helm(
        plane, "upgrade", RELEASE, str(CHART), "--namespace", release, "--reuse-values",
        "--set", "monitor.enabled=true", "--set", "monitor.feedbackTokenSecret=feedback",
        "--wait", "--timeout", "180s",
    )  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stderr + pod_phases(core, release)
    [monitor] = core.list_namespaced_pod(
        release, label_selector="app.kubernetes.io/name=modelops-monitor"
    ).items
    assert all(s.ready for s in monitor.status.container_statuses), pod_phases(core, release)

    def rolled() -> bool:
        running = operator_pod_names(core, release)
        return len(running) == 2 and not running & operator_pods

    wait_for(rolled, timeout=120, what="the operator to roll to pods with the monitor's URL")
    # The old leader handed the lease on as it stopped: a new pod leads (and writes below).
    wait_for(lambda: operator_metric(core, release, "modelops_leader") == 1, timeout=60,
             what="one leader among the new replicas")  # fmt: skip

    # A deployment that turns drift monitoring on is logged to the release's monitor.
    custom.patch_namespaced_custom_object(
        "modelops.io", "v1alpha1", namespace, "modeldeployments", name,
        {"spec": {"monitoring": {"drift": {"enabled": True}}}},
    )  # fmt: skip

    def logger() -> Any:
        isvc = custom.get_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", namespace, "inferenceservices", name
        )
        return (isvc["spec"]["predictor"].get("logger") or {}).get("url")

    url = wait_for(logger, timeout=120, interval=1, what="the predictor's inference logger")
    assert url == f"http://modelops-monitor.{release}.svc/"
    # The monitor asks the API server only what its role allows (it looks the deployment up
    # once the agent's events arrive; here it has at least started and been scraped).
    monitor_user = f"system:serviceaccount:{release}:modelops-monitor"
    refused = [(e["verb"], e["requestURI"]) for e in audit_entries(plane, monitor_user)
               if (e.get("annotations") or {}).get("authorization.k8s.io/decision") == "forbid"]  # fmt: skip
    assert refused == []

    removed = helm(plane, "upgrade", RELEASE, str(CHART), "--namespace", release,
                   "--reuse-values", "--set", "monitor.enabled=false", "--wait",
                   "--timeout", "180s")  # fmt: skip
    assert removed.returncode == 0, removed.stderr
    apps = client.AppsV1Api(core.api_client)
    names = {d.metadata.name for d in apps.list_namespaced_deployment(release).items}
    assert names == {RELEASE}


def operator_pod_names(core: client.CoreV1Api, release: str) -> set[str]:
    """The operator's running pods that are not being deleted."""
    return {p.metadata.name for p in core.list_namespaced_pod(
        release, label_selector="app.kubernetes.io/name=modelops"
    ).items if p.status.phase == "Running" and p.metadata.deletion_timestamp is None}  # fmt: skip


def test_the_chart_pod_is_admitted_by_restricted_pod_security(
    control_plane: ControlPlane, core: client.CoreV1Api
) -> None:
    namespace = f"restricted-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest"}}})  # fmt: skip
    try:
        rendered = render(ensure_helm(), "--set", "monitor.enabled=true")
        deployments = [o for o in rendered if o["kind"] == "Deployment"]
        assert len(deployments) == 2  # the operator and the monitor
        for deployment in deployments:
            template = deployment["spec"]["template"]
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": deployment["metadata"]["name"],
                                "labels": template["metadata"]["labels"]},
                   "spec": {**template["spec"], "serviceAccountName": "default"}}  # fmt: skip
            core.create_namespaced_pod(namespace, pod, dry_run="All")

        # The admission is real: the same pod allowed to escalate privileges is refused.
        loose = json.loads(json.dumps(pod))
        loose["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
        with pytest.raises(client.ApiException) as refused:
            core.create_namespaced_pod(namespace, loose, dry_run="All")
        message = json.loads(refused.value.body)["message"]
        assert refused.value.status == 403
        assert 'violates PodSecurity "restricted:latest"' in message
        assert "allowPrivilegeEscalation" in message
    finally:
        core.delete_namespace(namespace)
