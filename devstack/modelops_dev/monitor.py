"""The chart's monitor on the local cluster: its objects rendered by helm (`monitor.yaml`) and
applied in a namespace of their own, the feedback token in a Secret, the pod ready. Used by the
demo's drift act and the closed-loop test."""

from __future__ import annotations

import secrets
import subprocess
import time
import urllib.error
from dataclasses import dataclass
from pathlib import Path

from modelops_dev.binaries import REPO_ROOT, ensure_binaries, ensure_helm
from modelops_dev.control_plane import ControlPlane

CHART = REPO_ROOT / "charts" / "modelops"
NAMESPACE = "modelops-monitor"


@dataclass(frozen=True)
class InstalledMonitor:
    url: str  # where KServe's logger sends (the Service, as pods resolve it)
    host: str  # the Service's host name, for feedback through the router
    token_file: Path
    namespace: str


def install_monitor(
    plane: ControlPlane, registry_uri: str, capture_store: Path | None, folder: Path,
    *, namespace: str = NAMESPACE, window: int = 300, min_samples: int = 100,
    deadline: float = 120,
) -> InstalledMonitor:  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    token_file = folder / "feedback-token"
    if not token_file.exists():
        token_file.write_text(secrets.token_urlsafe(24))
    rendered = subprocess.run(
        [str(ensure_helm()), "template", "modelops", str(CHART), "--namespace", namespace,
         "--show-only", "templates/monitor.yaml", "--set", "monitor.enabled=true",
         "--set", f"registry.trackingUri={registry_uri}",
         "--set", "monitor.feedbackTokenSecret=monitor-feedback",
         "--set", f"monitor.captureStore={capture_store or ''}",
         "--set", "monitor.captureFlushSeconds=5",
         "--set", f"monitor.window={window}", "--set", f"monitor.minSamples={min_samples}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    manifest = folder / "monitor.yaml"
    manifest.write_text(rendered.stdout)
    kubectl = [str(ensure_binaries().kubectl), "--kubeconfig", str(plane.kubeconfig)]
    if not _exists(plane, f"/api/v1/namespaces/{namespace}"):
        plane.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    if not _exists(plane, f"/api/v1/namespaces/{namespace}/secrets/monitor-feedback"):
        plane.request("POST", f"/api/v1/namespaces/{namespace}/secrets", {
            "metadata": {"name": "monitor-feedback"},
            "stringData": {"token": token_file.read_text()},
        })  # fmt: skip
    subprocess.run([*kubectl, "apply", "--server-side", "-f", str(manifest)],
                   capture_output=True, text=True, check=True)  # fmt: skip
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        pods = plane.request("GET", f"/api/v1/namespaces/{namespace}/pods").get("items", [])
        if any(
            all(s.get("ready") for s in (p.get("status") or {}).get("containerStatuses") or [{}])
            for p in pods
        ):
            host = f"modelops-monitor.{namespace}"
            return InstalledMonitor(f"http://{host}.svc/", host, token_file, namespace)
        time.sleep(1)
    raise RuntimeError(f"the monitor pod was not ready within {deadline:.0f}s")


def uninstall_monitor(plane: ControlPlane, namespace: str = NAMESPACE) -> None:
    """Remove what install_monitor applied (its namespace and cluster-wide RBAC)."""
    for path in (
        f"/api/v1/namespaces/{namespace}",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/modelops-monitor",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/modelops-monitor",
    ):
        if _exists(plane, path):
            plane.request("DELETE", path)


def _exists(plane: ControlPlane, path: str) -> bool:
    try:
        plane.request("GET", path)
        return True
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return False
        raise
