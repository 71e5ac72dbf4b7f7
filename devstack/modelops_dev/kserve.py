"""The real KServe controller and webhooks (v0.20.0, built from its Go module) on the local
control plane.

The manager runs in its own network namespace: its webhook server binds every interface
(v0.20's main has no host flag), and inside a sandbox "every interface" is the sandbox's own.
It reaches the API server through a forwarder on the bridge address; the API server calls its
webhooks by URL at the sandbox address with the CA of a certificate made here.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from modelops_dev.binaries import ensure_kserve
from modelops_dev.control_plane import ADMIN_USER, ControlPlane, _free_port, _object_path
from modelops_dev.network import PodNetwork, Sandbox

NAMESPACE = "kserve"
WEBHOOK_PORT = 9443
INGRESS_CLASS = "modelops-router"
INGRESS_DOMAIN = "modelops.test"
# The runtimes the local stack can run (the process kubelet maps their images to commands).
RUNTIMES = ("kserve-mlserver", "kserve-sklearnserver")


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def inferenceservice_config(config: Path) -> dict[str, Any]:
    """KServe's own ConfigMap, set for this stack: Standard mode by default, Ingress objects
    of our router's class under a reserved test domain."""
    [configmap] = _documents(config / "configmap" / "inferenceservice.yaml")
    data = configmap["data"]
    data.pop("_example", None)
    ingress = json.loads(data["ingress"])
    ingress.update(
        ingressClassName=INGRESS_CLASS,
        ingressDomain=INGRESS_DOMAIN,
        disableIstioVirtualHost=True,
        enableGatewayApi=False,
    )
    data["ingress"] = json.dumps(ingress, indent=2)
    data["deploy"] = json.dumps({"defaultDeploymentMode": "Standard"})
    configmap["metadata"]["namespace"] = NAMESPACE
    return configmap


def serving_runtimes(config: Path) -> list[dict[str, Any]]:
    """The ClusterServingRuntimes with real image names (kustomize's `images`, applied here)."""
    kustomization = yaml.safe_load((config / "runtimes" / "kustomization.yaml").read_text())
    images = {i["name"]: f"{i['newName']}:{i['newTag']}" for i in kustomization.get("images", [])}
    runtimes = []
    for name in RUNTIMES:
        [runtime] = _documents(config / "runtimes" / f"{name}.yaml")
        for container in runtime["spec"]["containers"]:
            base = container["image"].split(":")[0]
            container["image"] = images.get(base, container["image"])
        annotations = runtime["spec"].get("annotations") or {}
        if name == "kserve-mlserver" and annotations.get("prometheus.kserve.io/port") == "8080":
            # KServe's runtime still names 8080, but MLServer >= 1.1 serves /metrics on its
            # metrics port (8082); scraping 8080 finds nothing. Real clusters need this too.
            annotations["prometheus.kserve.io/port"] = "8082"
        runtimes.append(runtime)
    return runtimes


def webhook_configurations(config: Path, url_base: str, ca_bundle: str) -> list[dict[str, Any]]:
    """KServe's webhook registrations, pointed at a URL instead of an in-cluster Service."""
    configurations = _documents(config / "webhook" / "manifests.yaml")
    for configuration in configurations:
        configuration["metadata"].pop("creationTimestamp", None)
        for hook in configuration.get("webhooks", []):
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": url_base + path, "caBundle": ca_bundle}
    return configurations


def crds(config: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted((config / "crd" / "full").rglob("*.yaml")):
        # Some files under full/ are kustomize patches of a CRD, not whole CRDs.
        found += [
            d for d in _documents(path)
            if d.get("kind") == "CustomResourceDefinition" and d.get("spec", {}).get("versions")
        ]  # fmt: skip
    return found


def gateway_api_crds(home: Path) -> list[dict[str, Any]]:
    """The Gateway API CRDs cached beside KServe's config (HTTPRoute carries canary weights)."""
    found = []
    for path in sorted((home / "gateway-api").glob("*.yaml")):
        found += [d for d in _documents(path) if d.get("kind") == "CustomResourceDefinition"]
    return found


def _make_certificate(folder: Path, address: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "3650", "-subj", "/CN=modelops-kserve-webhook-ca")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr",
            "-subj", "/CN=kserve-webhook-server")  # fmt: skip
    (folder / "san.ext").write_text(f"subjectAltName=IP:{address}\n")
    openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "tls.crt", "-days", "3650", "-extfile", "san.ext")  # fmt: skip


class KServeController:
    """The KServe manager in a sandbox, with its CRDs, config, runtimes and webhooks."""

    def __init__(self, plane: ControlPlane, network: PodNetwork) -> None:
        self.plane = plane
        self.network = network
        self.directory = plane.directory / "kserve"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.sandbox: Sandbox | None = None
        self.registered: list[dict[str, Any]] = []
        self._manager: tuple[list[str], dict[str, str]] = ([], {})
        """The manager's command and environment, to start it again."""

    def start(self, *, progress: bool = False) -> None:
        home = ensure_kserve()
        config = home / "config"
        self.directory.mkdir(parents=True, exist_ok=True)
        _say(progress, "KServe CRDs (from the module version the manager was built from)")
        for crd in [*crds(config), *gateway_api_crds(home)]:
            self.plane.apply(crd)
        self.plane.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        self.plane.apply(inferenceservice_config(config))

        self.network.up()
        self.sandbox = self.network.add("kserve-controller")
        certificates = self.directory / "tmp" / "k8s-webhook-server" / "serving-certs"
        _make_certificate(certificates, self.sandbox.address)

        api_port = int(self.plane.server.rsplit(":", 1)[1])
        forward_port = _free_port()
        self._spawn("api-forwarder", [sys.executable, "-m", "modelops_dev.forwarder",
                    f"{self.network.gateway}:{forward_port}", f"127.0.0.1:{api_port}"])  # fmt: skip
        self._wait_for_port(self.network.gateway, forward_port, "api-forwarder")
        kubeconfig = self.directory / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(self._kubeconfig(f"https://{self.network.gateway}:{forward_port}"))
        )

        _say(progress, f"KServe manager in sandbox {self.sandbox.address}")
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": NAMESPACE,
               "TMPDIR": str(self.directory / "tmp")}  # fmt: skip
        self._manager = (self.sandbox.command([
            str(home / "manager"), "--leader-elect=false", f"--webhook-port={WEBHOOK_PORT}",
            "--metrics-addr=127.0.0.1:8080", "--health-probe-addr=127.0.0.1:8081",
        ]), env)  # fmt: skip
        self._spawn("kserve-manager", *self._manager)
        self._wait_for_webhook_server()

        bundle = base64.b64encode((certificates / "ca.crt").read_bytes()).decode()
        url_base = f"https://{self.sandbox.address}:{WEBHOOK_PORT}"
        for configuration in webhook_configurations(config, url_base, bundle):
            self.plane.apply(configuration)
            self.registered.append(configuration)
        _say(progress, "ClusterServingRuntimes (validated by KServe's webhook)")
        for runtime in serving_runtimes(config):
            self._apply_when_webhook_answers(runtime)
        _say(progress, "KServe ready")

    def stop(self) -> None:
        # Unregister the webhooks first: with failurePolicy Fail, a registered webhook whose
        # server is gone would refuse every InferenceService and Pod created afterwards.
        for configuration in self.registered:
            with contextlib.suppress(urllib.error.HTTPError):
                self.plane.request("DELETE", _object_path(configuration))
        self.registered.clear()
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()
        if self.sandbox is not None:
            self.network.remove(self.sandbox.name)
            self.sandbox = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """KServe's manager (its controller and its webhooks: one process, as in its pod)
        frozen for the block: nothing reconciles InferenceServices and the API server's calls to
        its webhooks time out, as when its pod is gone with the webhooks still registered."""
        process = self.processes["kserve-manager"]
        process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            process.send_signal(signal.SIGCONT)

    @contextlib.contextmanager
    def killed(self) -> Iterator[None]:
        """KServe's manager killed for the block, as when its pod is gone and not yet replaced:
        the API server's calls to its webhooks are refused at once. Started again after it."""
        process = self.processes["kserve-manager"]
        process.kill()
        process.wait()
        try:
            yield
        finally:
            self._spawn("kserve-manager", *self._manager)
            self._wait_for_webhook_server()

    # ---- internals -----------------------------------------------------------------------

    def _kubeconfig(self, server: str) -> dict[str, Any]:
        pki = self.plane.directory / "pki"
        return {
            "apiVersion": "v1", "kind": "Config", "current-context": "local",
            # The API server's certificate names 127.0.0.1/localhost, not the bridge address.
            "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt"), "tls-server-name": "localhost"}}],
            "users": [{"name": "kserve", "user": {"token": self.plane.token(ADMIN_USER)}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "kserve"}}],
        }  # fmt: skip

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.plane.logs / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )

    def _wait_for_webhook_server(self) -> None:
        assert self.sandbox is not None
        self._wait_for_port(self.sandbox.address, WEBHOOK_PORT, "kserve-manager", deadline=120)

    def _wait_for_port(self, host: str, port: int, process: str, deadline: float = 30) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.processes[process].poll() is not None:
                raise RuntimeError(f"{process} exited:\n" + self._tail(process))
            with socket.socket() as sock:
                sock.settimeout(1)
                if sock.connect_ex((host, port)) == 0:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"{process} did not listen on {host}:{port}:\n" + self._tail(process))

    def _apply_when_webhook_answers(self, manifest: dict[str, Any], deadline: float = 60) -> None:
        end = time.monotonic() + deadline
        while True:
            try:
                self.plane.apply(manifest)
                return
            except Exception:
                if time.monotonic() > end:
                    raise
                time.sleep(0.5)

    def _tail(self, name: str, lines: int = 40) -> str:
        path = self.plane.logs / f"{name}.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"[kserve] {message}", file=sys.stderr, flush=True)
