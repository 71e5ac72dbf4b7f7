"""Find the control-plane binaries, or build them from Go modules and cache them.

Order of precedence for each binary: $KUBEBUILDER_ASSETS (setup-envtest's layout), then PATH,
then ~/.cache/modelops/bin/<component>-<version>/, building into that cache when it is empty.
A binary is only taken when it reports the expected version.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ETCD_VERSION = os.environ.get("ETCD_VERSION", "v3.6.14")
KUBERNETES_VERSION = os.environ.get("KUBERNETES_VERSION", "v1.35.4")
KSERVE_VERSION = os.environ.get("KSERVE_VERSION", "v0.20.0")
HELM_VERSION = os.environ.get("HELM_VERSION", "v3.22.0")
CACHE_ROOT = Path(os.environ.get("MODELOPS_CACHE", Path.home() / ".cache" / "modelops"))
REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-binaries"

KUBERNETES_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path


def _reported_version(path: Path) -> str:
    try:
        result = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return ""
    return result.stdout + result.stderr


def _acceptable(name: str, path: Path) -> bool:
    text = _reported_version(path)
    if name == "etcd":
        match = re.search(r"etcd Version: (\d+)\.(\d+)", text)
        return match is not None and (int(match[1]), int(match[2])) >= (3, 6)
    if name == "kubectl":
        match = re.search(r"Client Version: (v[\d.]+)", text)
        wanted = KUBERNETES_VERSION.rsplit(".", 1)[0]
        return match is not None and match[1].startswith(wanted + ".")
    return KUBERNETES_VERSION.rsplit(".", 1)[0] + "." in text


def _candidates(name: str) -> list[Path]:
    found: list[Path] = []
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        found.append(Path(assets) / name)
    on_path = shutil.which(name)
    if on_path:
        found.append(Path(on_path))
    return found


def _cached(name: str) -> Path:
    if name == "etcd":
        return CACHE_ROOT / "bin" / f"etcd-{ETCD_VERSION}" / "etcd"
    return CACHE_ROOT / "bin" / f"kubernetes-{KUBERNETES_VERSION}" / name


def locate(name: str) -> Path | None:
    """The first acceptable binary for `name`, or None when it must be built."""
    for candidate in _candidates(name):
        if candidate.is_file() and _acceptable(name, candidate):
            return candidate
    cached = _cached(name)
    return cached if cached.is_file() else None


def build(component: str) -> None:
    """Run hack/build-binaries for 'etcd' or 'kubernetes' (progress goes to stderr)."""
    if not BUILD_SCRIPT.is_file():
        raise RuntimeError(f"cannot build {component}: {BUILD_SCRIPT} is missing")
    env = {
        **os.environ,
        "ETCD_VERSION": ETCD_VERSION,
        "KUBERNETES_VERSION": KUBERNETES_VERSION,
        "KSERVE_VERSION": KSERVE_VERSION,
        "HELM_VERSION": HELM_VERSION,
    }
    env["MODELOPS_CACHE"] = str(CACHE_ROOT)
    subprocess.run([str(BUILD_SCRIPT), component], check=True, env=env, stdout=sys.stderr)


def ensure_binaries() -> Binaries:
    """Every binary of the control plane, building what is missing."""
    if locate("etcd") is None:
        build("etcd")
    if any(locate(name) is None for name in KUBERNETES_BINARIES):
        build("kubernetes")
    paths = {name: locate(name) for name in ("etcd", *KUBERNETES_BINARIES)}
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        raise RuntimeError(f"binaries still missing after the build: {', '.join(missing)}")
    return Binaries(
        etcd=paths["etcd"],  # type: ignore[arg-type]
        kube_apiserver=paths["kube-apiserver"],  # type: ignore[arg-type]
        kube_controller_manager=paths["kube-controller-manager"],  # type: ignore[arg-type]
        kube_scheduler=paths["kube-scheduler"],  # type: ignore[arg-type]
        kubectl=paths["kubectl"],  # type: ignore[arg-type]
    )


def kserve_home() -> Path:
    """The KServe manager and agent binaries and the module's config/ folder they come from."""
    return CACHE_ROOT / "bin" / f"kserve-{KSERVE_VERSION}"


def ensure_kserve() -> Path:
    home = kserve_home()
    if not all(
        [
            (home / "manager").is_file(),
            (home / "agent").is_file(),
            (home / "config").is_dir(),
            (home / "gateway-api").is_dir(),
        ]
    ):
        build("kserve")
    return home


def ensure_helm() -> Path:
    """helm, built from its Go module (helm.sh/helm/v3/cmd/helm) once and cached."""
    minor = KUBERNETES_VERSION.split(".")[1]
    # Keyed by the Kubernetes version too: it is helm's default, set at build time.
    binary = CACHE_ROOT / "bin" / f"helm-{HELM_VERSION}-k8s1.{minor}" / "helm"
    if not binary.is_file():
        build("helm")
    return binary


if __name__ == "__main__":
    print(f"kserve: {ensure_kserve()}")
    print(f"helm: {ensure_helm()}")
    binaries = ensure_binaries()
    for field, value in vars(binaries).items():
        print(f"{field}: {value}")
