"""The router: Services and Ingress hosts to ready pods, balanced, with its own metrics."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.integration.conftest import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pod sandboxes need root")

# A tiny server that answers with the name of the pod it runs in.
WHOAMI = (
    "import http.server, os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = os.environ['POD_NAME'].encode()\n"
    "        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "    def log_message(self, *args): pass\n"
    "http.server.ThreadingHTTPServer(('0.0.0.0', 8000), H).serve_forever()\n"
)


def get(url: str, host: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def whoami(
    api_client: client.ApiClient, core: client.CoreV1Api, namespace: str, kubelet: Path
) -> str:
    """Two ready replicas behind the Service `whoami`."""
    wait_for(
        lambda: core.read_namespaced_service_account("default", namespace),
        what="the default ServiceAccount",
    )
    labels = {"app": "whoami"}
    container: dict[str, Any] = {
        "name": "web", "image": "python:3.11-slim", "command": ["python", "-c", WHOAMI],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "ports": [{"name": "http", "containerPort": 8000}],
        "readinessProbe": {"tcpSocket": {"port": 8000}, "periodSeconds": 2},
    }  # fmt: skip
    client.AppsV1Api(api_client).create_namespaced_deployment(namespace, {
        "metadata": {"name": "whoami"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}},
    })  # fmt: skip
    core.create_namespaced_service(namespace, {"metadata": {"name": "whoami"}, "spec": {
        "selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})  # fmt: skip
    discovery = client.DiscoveryV1Api(api_client)

    def ready_endpoints() -> int:
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=whoami"
        )
        return sum(1 for s in slices.items for e in s.endpoints or [] if e.conditions.ready)

    wait_for(lambda: ready_endpoints() == 2, timeout=90, what="two ready endpoints")
    return namespace


def test_a_service_host_reaches_its_pods_in_turn(
    router: str, whoami: str, core: client.CoreV1Api
) -> None:
    host = f"whoami.{whoami}.svc.cluster.local"
    wait_for(
        lambda: get(router, host)[0] == 200, timeout=30, what="the router to see the endpoints"
    )
    answers = Counter(get(router + "/", host)[1] for _ in range(20))
    pods = {
        p.metadata.name for p in core.list_namespaced_pod(whoami, label_selector="app=whoami").items
    }
    assert set(answers) == pods
    assert all(count == 10 for count in answers.values())  # round robin over ready endpoints

    # Counted in Istio's standard schema, as a gateway reports it, per workload.
    metrics = get(router + "/metrics", "router")[1]
    line = next(
        m
        for m in metrics.splitlines()
        if m.startswith("istio_requests_total{")
        and f'destination_service_namespace="{whoami}"' in m
        and 'destination_workload="whoami"' in m
        and 'response_code="200"' in m
    )
    assert 'destination_service_name="whoami"' in line and 'reporter="source"' in line
    assert float(line.rsplit(" ", 1)[1]) >= 20


def test_an_ingress_host_routes_to_its_service(
    router: str, whoami: str, api_client: client.ApiClient
) -> None:
    client.NetworkingV1Api(api_client).create_namespaced_ingress(whoami, {
        "metadata": {"name": "whoami"},
        "spec": {"ingressClassName": "modelops-router", "rules": [{"host": f"whoami-{whoami}.modelops.test", "http": {
            "paths": [{"path": "/", "pathType": "Prefix",
                       "backend": {"service": {"name": "whoami", "port": {"number": 80}}}}]}}]},
    })  # fmt: skip
    _, body = wait_for(
        lambda: (answer := get(router + "/", f"whoami-{whoami}.modelops.test"))[0] == 200 and answer,
        timeout=30, what="the Ingress route",
    )  # fmt: skip
    assert body.startswith("whoami-")


def test_unknown_hosts_and_services_without_endpoints_are_told_apart(
    router: str, namespace: str, core: client.CoreV1Api
) -> None:
    assert get(router, "nowhere.example")[0] == 404
    core.create_namespaced_service(namespace, {"metadata": {"name": "empty"}, "spec": {
        "selector": {"app": "none"}, "ports": [{"port": 80}]}})  # fmt: skip
    _, body = wait_for(lambda: (a := get(router, f"empty.{namespace}"))[0] == 503 and a, timeout=30,
                            what="the router to see the Service")  # fmt: skip
    assert "no ready endpoint" in body
    # Envoy's way: a 503 with the flag UH (no healthy upstream), counted for the Service.
    metrics = get(router + "/metrics", "router")[1]
    assert any(
        f'destination_service_namespace="{namespace}"' in m and 'response_code="503"' in m
        and 'response_flags="UH"' in m for m in metrics.splitlines()
    )  # fmt: skip
