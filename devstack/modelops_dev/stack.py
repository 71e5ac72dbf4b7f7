"""`modelops-dev up | down | status | env`: the whole local stack with a state folder.

It starts the control plane, the real KServe controller and webhooks (in a sandbox), the
process kubelet, the router, `mlflow server` and Prometheus, after building (once) the Python
environments the model-server and storage-initializer images run from. Every process is
recorded by pid in <dir>/stack.json, and `down` stops exactly those (with their children), then
removes the network namespaces, veths and bridges they made.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
from pathlib import Path
from typing import Any

from modelops_dev.binaries import ensure_binaries, ensure_kserve
from modelops_dev.control_plane import (
    ControlPlane,
    _alive,
    _free_port,
    _object_path,
    _wait_exit,
)
from modelops_dev.environments import ensure_all
from modelops_dev.kserve import KServeController
from modelops_dev.network import PodNetwork
from modelops_dev.servers import MlflowServer, Prometheus, stop_group

DEFAULT_DIR = Path(
    os.environ.get("MODELOPS_DEV_DIR", Path.home() / ".cache" / "modelops" / "run" / "dev")
)


def network_settings() -> tuple[str, str, str]:
    """(KServe sandbox range, pod range, bridge name prefix) the stack owns; override them
    (MODELOPS_KSERVE_CIDR, MODELOPS_POD_CIDR, MODELOPS_BRIDGE_PREFIX) when they clash."""
    return (
        os.environ.get("MODELOPS_KSERVE_CIDR", "10.213.0.0/16"),
        os.environ.get("MODELOPS_POD_CIDR", "10.215.0.0/16"),
        os.environ.get("MODELOPS_BRIDGE_PREFIX", "mo"),
    )


def say(message: str, started: float) -> None:
    print(f"[dev] {time.monotonic() - started:6.1f}s  {message}", file=sys.stderr, flush=True)


class Stack:
    def __init__(self, directory: Path = DEFAULT_DIR) -> None:
        self.directory = directory
        self.state_file = directory / "stack.json"

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def _record(self, **values: Any) -> None:
        self.state_file.write_text(json.dumps({**self.state(), **values}, indent=2))

    def up(self) -> dict[str, Any]:
        started = time.monotonic()
        if self.state().get("processes"):
            alive = [n for n, pid in self.state()["processes"].items() if _alive(pid)]
            if alive:
                say("already up", started)
                return self.state()
            self.down()
        self.directory.mkdir(parents=True, exist_ok=True)
        say("binaries (a first run builds them from Go modules: several minutes)", started)
        binaries = ensure_binaries()
        ensure_kserve()
        say("python environments of the model-server images (a first run installs them)", started)
        ensure_all()
        kserve_cidr, pod_cidr, prefix = network_settings()
        plane = ControlPlane(self.directory / "control-plane")
        plane.start(binaries)
        self._record(
            control_plane=str(plane.directory),
            server=plane.server,
            kubeconfig=str(plane.kubeconfig),
            processes={},
        )
        say(f"control plane at {plane.server}", started)

        kserve = KServeController(
            plane,
            PodNetwork(
                self.directory / "kserve-network",
                cidr=kserve_cidr,
                bridge=f"{prefix}kserve0",
            ),
        )
        kserve.start()
        processes = {name: p.pid for name, p in kserve.processes.items()}
        webhooks = [_object_path(c) for c in kserve.registered]
        self._record(processes=processes, webhooks=webhooks)
        say(f"KServe {kserve.sandbox.address if kserve.sandbox else ''} with webhooks", started)

        logs = plane.logs
        kubelet = subprocess.Popen(
            [sys.executable, "-m", "modelops_dev.kubelet", "--kubeconfig", str(plane.kubeconfig),
             "--node", "modelops-local", "--state", str(self.directory / "kubelet"), "--cidr", pod_cidr,
             "--bridge", f"{prefix}kubelet0"],
            stdout=(logs / "kubelet.log").open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        processes["kubelet"] = kubelet.pid
        self._record(processes=processes)
        plane.wait_for(
            "/api/v1/nodes/modelops-local",
            lambda node: any(c["type"] == "Ready" and c["status"] == "True"
                             for c in (node.get("status") or {}).get("conditions", [])),
            what="the process kubelet's Node",
        )  # fmt: skip
        # The kubelet made the pod bridge; its gateway address is where pods reach Services.
        gateway = PodNetwork(self.directory / "kubelet").gateway
        router_port = _free_port()
        ready = self.directory / "router.ready"
        ready.unlink(missing_ok=True)
        router = subprocess.Popen(
            [sys.executable, "-m", "modelops_dev.router", "--kubeconfig", str(plane.kubeconfig),
             "--listen", f"127.0.0.1:{router_port}", "--listen", f"{gateway}:80", "--ready-file", str(ready)],
            stdout=(logs / "router.log").open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        processes["router"] = router.pid
        self._record(processes=processes, router=f"http://127.0.0.1:{router_port}")
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        say(f"kubelet (node modelops-local) and router at http://127.0.0.1:{router_port}", started)

        mlflow = MlflowServer(self.directory / "mlflow", host=gateway)
        mlflow.start(logs)
        processes["mlflow"] = mlflow.pid
        in_cluster = mlflow.register(plane)
        self._record(processes=processes, mlflow=mlflow.url, mlflow_in_cluster=in_cluster,
                     artifacts=str(mlflow.artifacts))  # fmt: skip
        say(f"mlflow server at {mlflow.url} (pods: {in_cluster})", started)
        prometheus = Prometheus(
            self.directory / "prometheus", plane.kubeconfig, router=f"127.0.0.1:{router_port}"
        )
        prometheus.start(logs)
        processes.update(prometheus.pids)
        self._record(processes=processes, prometheus=prometheus.url)
        say(f"prometheus at {prometheus.url}", started)
        return self.state()

    def adopt(self, name: str, pid: int) -> None:
        """Record a process the caller started (the demo's operator), so `down` stops it."""
        processes = {**self.state().get("processes", {}), name: pid}
        self._record(processes=processes)

    def down(self) -> None:
        state = self.state()
        if not state:
            return
        plane = (
            ControlPlane.load(Path(state["control_plane"])) if state.get("control_plane") else None
        )
        if plane is not None and plane.pids:
            for path in state.get("webhooks", []):
                with contextlib.suppress(urllib.error.URLError, OSError):
                    plane.request("DELETE", path)
        # The kubelet first: on SIGTERM it stops its pods and removes their sandboxes.
        order = sorted(state.get("processes", {}).items(), key=lambda item: item[0] != "kubelet")
        for name, pid in order:
            if _leads_group(pid):
                # The kubelet gives each pod up to 30 s to stop (KServe's agent drains) and then
                # removes the sandboxes: more than that before it is killed.
                stop_group(pid, grace=75 if name == "kubelet" else 30)
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not _wait_exit(pid, 30):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _wait_exit(pid, 5)
        try:
            for network_dir in (self.directory / "kserve-network", self.directory / "kubelet"):
                if (network_dir / "network.json").exists():
                    PodNetwork(network_dir).down()
        finally:
            if plane is not None:
                plane.stop()  # whatever happened to the network
        self._record(processes={}, webhooks=[])

    def status(self) -> list[tuple[str, int, bool]]:
        state = self.state()
        rows = [(name, pid, _alive(pid)) for name, pid in state.get("processes", {}).items()]
        if state.get("control_plane"):
            plane = ControlPlane.load(Path(state["control_plane"]))
            rows = [(name, pid, _alive(pid)) for name, pid in plane.pids.items()] + rows
        return rows


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def main(command: str, directory: Path) -> int:
    stack = Stack(directory)
    if command == "up":
        state = stack.up()
        print(f"export KUBECONFIG={state['kubeconfig']}")
        print(f"# router (Ingress and Service hosts): {state['router']}")
        print(f"# MLflow UI and tracking URI: {state['mlflow']}")
        print(f"# Prometheus UI: {state['prometheus']}")
        return 0
    if command == "down":
        stack.down()
        print(f"stopped the local stack in {directory}", file=sys.stderr)
        return 0
    if command == "env":
        state = stack.state()
        if not state.get("kubeconfig"):
            print(f"no local stack in {directory}", file=sys.stderr)
            return 1
        print(f"export KUBECONFIG={state['kubeconfig']}")
        return 0
    rows = stack.status()
    if not rows:
        print(f"no local stack in {directory}")
        return 1
    for name, pid, alive in rows:
        print(f"{name:26} pid {pid:<8} {'running' if alive else 'STOPPED'}")
    return 0 if all(alive for *_, alive in rows) else 1
