"""Install paths against a real API server of their own (a fresh control plane, so the CRD
can be installed, upgraded and removed): `helm install/upgrade/uninstall` with the chart's
CRD, `kubectl apply --server-side -k manifests/`, and the plain manifests equal to the chart."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelops_dev.binaries import REPO_ROOT, ensure_binaries, ensure_helm
from modelops_dev.control_plane import ControlPlane
from modelops_dev.manifests import OUT, manifests, render
from tests.integration.helpers import CHART

CRD = "modeldeployments.modelops.io"
NAMESPACE = "modelops-system"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    fresh = ControlPlane(tmp_path_factory.mktemp("install-plane"))
    fresh.start()
    try:
        yield fresh
    finally:
        fresh.stop()


def run(plane: ControlPlane, tool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tool), "--kubeconfig", str(plane.kubeconfig), *args],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


def kubectl(plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    return run(plane, ensure_binaries().kubectl, *args)


def helm(plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    result = run(plane, ensure_helm(), *args)
    assert result.returncode == 0, result.stderr
    return result


def get(plane: ControlPlane, *what: str) -> dict[str, Any] | None:
    result = kubectl(plane, "get", *what, "-o", "json")
    if result.returncode != 0:
        assert "NotFound" in result.stderr, result.stderr
        return None
    found: dict[str, Any] = yaml.safe_load(result.stdout)
    return found


def without_crd(plane: ControlPlane) -> None:
    result = kubectl(plane, "delete", "crd", CRD, "--ignore-not-found", "--wait")
    assert result.returncode == 0, result.stderr


MODEL = {"apiVersion": "modelops.io/v1alpha1", "kind": "ModelDeployment",
         "metadata": {"name": "iris", "namespace": "default"},
         "spec": {"model": {"name": "iris", "version": "1"}}}  # fmt: skip


def test_the_committed_manifests_are_the_chart_rendered(tmp_path: Path) -> None:
    rendered = manifests(render(ensure_helm()))
    committed = {p.name: p.read_text() for p in OUT.glob("*.yaml")}
    assert committed == rendered, "manifests/install drifted from the chart: run `make manifests`"


def test_kubectl_apply_k_installs_the_crd_rbac_and_operator(
    plane: ControlPlane, tmp_path: Path
) -> None:
    without_crd(plane)
    applied = kubectl(plane, "apply", "--server-side", "-k", str(REPO_ROOT / "manifests"))
    assert applied.returncode == 0, applied.stderr
    assert (
        "customresourcedefinition.apiextensions.k8s.io/modeldeployments.modelops.io serverside-applied"
        in applied.stdout
    )
    established = kubectl(
        plane, "wait", "--for=condition=Established", f"crd/{CRD}", "--timeout=30s"
    )
    assert established.returncode == 0, established.stderr
    deployment = get(plane, "deployment", "modelops", "-n", NAMESPACE)
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "modelops"
    binding = get(plane, "clusterrolebinding", "modelops")
    assert binding is not None and binding["subjects"][0]["namespace"] == NAMESPACE
    # The CRD works: a ModelDeployment is accepted; applying again changes nothing.
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(MODEL))
    created = kubectl(plane, "apply", "--server-side", "-f", str(tmp_path / "model.yaml"))
    assert created.returncode == 0, created.stderr
    again = kubectl(plane, "apply", "--server-side", "-k", str(REPO_ROOT / "manifests"))
    assert again.returncode == 0, again.stderr
    kubectl(plane, "delete", "-k", str(REPO_ROOT / "manifests"), "--wait")


def test_helm_install_upgrade_with_a_crd_change_and_uninstall_keeping_the_crd(
    plane: ControlPlane, tmp_path: Path
) -> None:
    without_crd(plane)
    release = ["--namespace", NAMESPACE]
    helm(plane, "install", "modelops", str(CHART), *release, "--create-namespace")
    crd = get(plane, "crd", CRD)
    assert crd is not None and crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert get(plane, "clusterrole", "modelops") is not None
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(MODEL))
    assert (
        kubectl(plane, "apply", "--server-side", "-f", str(tmp_path / "model.yaml")).returncode == 0
    )

    # An upgrade carries a CRD change (a template, unlike crds/, which Helm never upgrades).
    changed = tmp_path / "modelops"
    shutil.copytree(CHART, changed)
    template = changed / "templates" / "crds.yaml"
    text = template.read_text()
    assert "additionalPrinterColumns:" in text
    column = "    - {name: Upgraded, type: string, jsonPath: .metadata.name}\n"
    template.write_text(
        text.replace("additionalPrinterColumns:\n", "additionalPrinterColumns:\n" + column, 1)
    )
    helm(plane, "upgrade", "modelops", str(changed), *release)
    crd = get(plane, "crd", CRD)
    assert crd is not None
    columns = [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert "Upgraded" in columns
    history = helm(plane, "history", "modelops", *release, "-o", "json").stdout
    assert [entry["revision"] for entry in yaml.safe_load(history)] == [1, 2]

    # Uninstall removes the operator but keeps the CRD, and with it every ModelDeployment.
    helm(plane, "uninstall", "modelops", *release, "--wait")
    assert get(plane, "clusterrole", "modelops") is None
    assert get(plane, "deployment", "modelops", *release) is None
    assert get(plane, "crd", CRD) is not None
    assert get(plane, "modeldeployment", "iris", "-n", "default") is not None

    # Installing again adopts the kept CRD; with crds.keep=false, uninstall removes it.
    helm(plane, "install", "modelops", str(CHART), *release, "--set", "crds.keep=false")
    helm(plane, "uninstall", "modelops", *release, "--wait")
    assert get(plane, "crd", CRD) is None
