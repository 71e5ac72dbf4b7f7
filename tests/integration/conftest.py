"""Fixtures on a real control plane (etcd, kube-apiserver, controller-manager, scheduler)
with KServe's CRDs, started once per test run, and the operator as a real process."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from modelops_dev.control_plane import OPERATOR_USER, READ_VERBS, ControlPlane
from modelops_dev.environments import ensure_all
from modelops_dev.fault_proxy import FaultProxy
from modelops_dev.kserve import KServeController
from modelops_dev.network import PodNetwork
from modelops_dev.servers import MlflowServer, Prometheus

pytestmark = pytest.mark.integration

_state: dict[str, Any] = {}

# `make test` runs the test modules on parallel pytest-xdist workers (gw0, gw1, ...): each
# worker starts a whole stack of its own, on bridges and address ranges of its own.
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or "0")
# The KServe manager's sandbox network and the process kubelet's pod network.
KSERVE_CIDR = f"10.{213 + 20 * WORKER}.0.0/16"
KSERVE_BRIDGE = f"mokserve{WORKER}"
KUBELET_CIDR = f"10.{215 + 20 * WORKER}.0.0/16"
KUBELET_BRIDGE = f"mokubelet{WORKER}"
# The bridge's host address: pods reach the router (Services) and MLflow there.
KUBELET_GATEWAY = str(next(ipaddress.ip_network(KUBELET_CIDR).hosts()))


def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float = 30,
    interval: float = 0.1,
    what: str = "condition",
) -> Any:
    """Poll until `predicate` returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except client.ApiException as error:
            last_error = error
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what} (last error: {last_error})"
    )


def holds(predicate: Callable[[], Any], seconds: float, what: str) -> None:
    """Assert that `predicate` stays true for `seconds` (polled): the negative of wait_for."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert predicate(), f"{what} stopped holding"
        time.sleep(0.5)


def liveness_ok(port: int) -> bool:
    """Whether kopf's liveness endpoint on this loopback port answers 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path_factory.mktemp("control-plane"))
    plane.start(progress=True)
    _state["control_plane"] = plane
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def api_client(control_plane: ControlPlane) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(control_plane.kubeconfig))


@pytest.fixture(scope="session")
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture(scope="session")
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    try:
        core.delete_namespace(name)
    except client.ApiException as error:
        if error.status != 404:  # a test may have deleted it itself
            raise


@pytest.fixture(scope="session")
def kubelet(
    control_plane: ControlPlane, core: client.CoreV1Api, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("kubelet")
    log = (control_plane.logs / "kubelet.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "modelops_dev.kubelet", "--kubeconfig", str(control_plane.kubeconfig),
         "--node", "modelops-local", "--state", str(state), "--cidr", KUBELET_CIDR, "--bridge", KUBELET_BRIDGE],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip

    def node_ready() -> bool:
        if process.poll() is not None:
            raise AssertionError("the kubelet exited; see kubelet.log")
        node = core.read_node("modelops-local")
        ready = [c for c in node.status.conditions or [] if c.type == "Ready"]
        untainted = not any(t.key == "node.kubernetes.io/not-ready" for t in node.spec.taints or [])
        return bool(ready and ready[0].status == "True" and untainted)

    try:
        wait_for(node_ready, timeout=60, what="the Node to be Ready and untainted")
        yield state
    finally:
        process.terminate()
        process.wait(timeout=60)
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout
    assert KUBELET_BRIDGE not in links, "the kubelet left its bridge behind"


@pytest.fixture(scope="session")
def router(
    control_plane: ControlPlane, kubelet: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The router on a loopback port (yielded as a URL) and on the pod gateway's ports 80 and
    8081 (Service ports pods connect to)."""
    port = free_port()
    ready = tmp_path_factory.mktemp("router") / "ready"
    log = (control_plane.logs / "router.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "modelops_dev.router", "--kubeconfig", str(control_plane.kubeconfig),
         "--listen", f"127.0.0.1:{port}", "--listen", f"{KUBELET_GATEWAY}:80",
         # The chart's metrics Service port (its `helm test` pod connects to it by name).
         "--listen", f"{KUBELET_GATEWAY}:8081", "--ready-file", str(ready)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(
            lambda: ready.exists() or process.poll() is not None, timeout=30, what="the router"
        )
        assert process.poll() is None, "the router exited; see router.log"
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="session")
def kserve(control_plane: ControlPlane) -> Iterator[KServeController]:
    """The real KServe manager and webhooks (in a sandbox on a bridge of its own)."""
    network = PodNetwork(
        control_plane.directory / "network", cidr=KSERVE_CIDR, bridge=KSERVE_BRIDGE
    )
    controller = KServeController(control_plane, network)
    try:
        controller.start(progress=True)
        yield controller
    finally:
        controller.stop()
        network.down()


@pytest.fixture(scope="session")
def model_environments() -> None:
    """The Python environments the MLServer and storage-initializer images run from."""
    ensure_all()


@pytest.fixture(scope="session")
def mlflow_server(
    control_plane: ControlPlane,
    kubelet: Path,
    model_environments: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[MlflowServer]:
    """`mlflow server` on the pod gateway, registered as the Service mlflow.modelops-system."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"), host=KUBELET_GATEWAY)
    server.start(control_plane.logs)
    server.register(control_plane)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def prometheus(
    control_plane: ControlPlane, router: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    server = Prometheus(
        tmp_path_factory.mktemp("prometheus"),
        control_plane.kubeconfig,
        router=router.removeprefix("http://"),
    )
    server.start(control_plane.logs)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def prometheus_proxy(prometheus: Prometheus) -> Iterator[FaultProxy]:
    """The session's Prometheus behind the devstack's fault proxy (slow, failing, counting)."""
    proxy = FaultProxy(prometheus.url)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def mlflow_proxy(mlflow_server: MlflowServer) -> Iterator[FaultProxy]:
    """The session's MLflow behind the fault proxy, for the operator's registry lookups (pods
    still download through the in-cluster Service, which points at MLflow itself)."""
    proxy = FaultProxy(mlflow_server.url)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="module")
def serving_cluster(
    kserve: KServeController,
    kubelet: Path,
    router: str,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
) -> str:
    """Everything a served model needs (KServe, kubelet, router, MLflow, Prometheus); the
    router's URL."""
    return router


class Operator:
    """`modelops run` as a subprocess, with the operator's own credentials."""

    def __init__(self, plane: ControlPlane, log: Path, *args: str) -> None:
        self.plane = plane
        self.log = log
        self.args = args  # extra `modelops run` flags (--shard)
        self.process: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.liveness_port = 0

    def start(self) -> None:
        self.metrics_port, self.liveness_port = free_port(), free_port()
        env = {**os.environ, "KUBECONFIG": str(self.plane.operator_kubeconfig)}
        command = [
            sys.executable, "-m", "modelops.cli", "run",
            "--liveness", f"http://127.0.0.1:{self.liveness_port}/healthz",
            "--metrics-address", "127.0.0.1", "--metrics-port", str(self.metrics_port),
            *self.args,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_for(self.healthy, timeout=60, what="the operator's liveness endpoint")

    def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"the operator exited with {self.process.returncode}:\n{self.tail()}"
            )
        return liveness_ok(self.liveness_port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no last writes (a crash, or a node lost)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include `labels`."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            text = r.read().decode()
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{key}="{value}"' in line for key, value in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def operator(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    running = Operator(control_plane, tmp_path_factory.mktemp("operator") / "operator.log")
    running.start()
    _state["operator"] = running
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def no_session_operator() -> Iterator[None]:
    """No session operator while a test runs its own (the chart's, or shards: two operators would
    both reconcile every namespace); the session's comes back afterwards."""
    running: Operator | None = _state.get("operator")
    if running is None or running.process is None:
        yield
        return
    running.stop()
    try:
        yield
    finally:
        running.start()


def operator_writes(
    plane: ControlPlane, namespace: str, *, include_events: bool = False
) -> list[dict[str, Any]]:
    """The operator's write requests in `namespace`, from the API server's audit log."""
    writes = []
    for line in plane.audit_log.read_text().splitlines():
        entry = json.loads(line)
        ref = entry.get("objectRef", {})
        if (entry["user"]["username"] != OPERATOR_USER or entry["verb"] in READ_VERBS
                or ref.get("namespace") != namespace):  # fmt: skip
            continue
        if ref.get("resource") == "events" and not include_events:
            continue
        writes.append(entry)
    return writes


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        if "operator" in _state:
            report.sections.append(("operator log (tail)", _state["operator"].tail()))
        if "control_plane" in _state:
            report.sections.append(
                ("control plane logs (tail)", _state["control_plane"].log_tails(15))
            )
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The closed loop runs last: it is the longest (a failure elsewhere shows sooner)."""
    items.sort(key=lambda item: item.get_closest_marker("closed_loop") is not None)
