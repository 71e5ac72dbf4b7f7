"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager
and kube-scheduler, with the KServe CRDs and the project's CRD installed.

    python -m modelops_dev.control_plane up|down|env   (wrapped by hack/control-plane)

`up` starts the processes detached and records them in <state dir>/state.json; `down` stops
exactly those processes. The test suite starts its own instance in a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelops_dev.binaries import REPO_ROOT, Binaries, ensure_binaries, ensure_kserve

DEFAULT_STATE_DIR = Path(
    os.environ.get(
        "MODELOPS_CONTROL_PLANE_DIR", Path.home() / ".cache" / "modelops" / "run" / "control-plane"
    )
)
# KServe's own CRDs come from the module its manager is built from (config/crd/full), so schema,
# defaults and controller are always one version. MODELOPS_KSERVE_CRDS names another folder.
KSERVE_CRD_FILES = (
    "serving.kserve.io_inferenceservices.yaml",
    "serving.kserve.io_servingruntimes.yaml",
    "serving.kserve.io_clusterservingruntimes.yaml",
    "clusterstoragecontainer/serving.kserve.io_clusterstoragecontainers.yaml",
)


def kserve_crds() -> list[Path]:
    override = os.environ.get("MODELOPS_KSERVE_CRDS")
    if override:
        return sorted(Path(override).glob("*.yaml"))
    full = ensure_kserve() / "config" / "crd" / "full"
    return [full / name for name in KSERVE_CRD_FILES]


OWN_CRDS_DIR = REPO_ROOT / "crds"

# Users of the token file. The operator has its own user so its API writes can be counted in
# the audit log; it is a cluster admin here (least privilege is proven with the Helm chart).
ADMIN_USER = "admin"
OPERATOR_USER = "modelops-operator"
# The verbs that only read; the audit log holds the operator's reads and writes.
READ_VERBS = frozenset({"get", "list", "watch"})

AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        # Reads too: the idle benchmark counts them (readers of writes filter by verb).
        {"level": "Metadata", "users": [OPERATOR_USER]},
        # Everything in-cluster clients do (the operator on the chart's RBAC, for one): a
        # request its Role does not allow shows as a 403 here.
        {"level": "Metadata", "userGroups": ["system:serviceaccounts"]},
        {"level": "None"},
    ],
}


@dataclass
class ControlPlane:
    """A running (or recorded) control plane."""

    directory: Path
    server: str = ""
    pids: dict[str, int] = field(default_factory=dict)
    # Off for benchmarks that compare the operator with a floor the audit log does not record.
    audited: bool = True
    # Each process's command line, to start it again the same way (fault tests).
    commands: dict[str, list[str]] = field(default_factory=dict, repr=False)

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "admin.kubeconfig"

    @property
    def operator_kubeconfig(self) -> Path:
        return self.directory / "operator.kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.directory / "audit.log"

    @property
    def logs(self) -> Path:
        return self.directory / "logs"

    def token(self, user: str = ADMIN_USER) -> str:
        return (self.directory / "tokens" / user).read_text().strip()

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self, binaries: Binaries | None = None, *, progress: bool = False) -> None:
        binaries = binaries or ensure_binaries()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        _say(progress, "certificates and tokens")
        self._write_credentials()
        etcd_port, peer_port, api_port = _free_port(), _free_port(), _free_port()
        self.server = f"https://127.0.0.1:{api_port}"
        self._write_kubeconfigs()
        try:
            _say(progress, f"etcd on 127.0.0.1:{etcd_port}")
            self._spawn("etcd", _etcd_args(binaries, self.directory, etcd_port, peer_port))
            _wait_for_port(etcd_port, deadline=30, what="etcd", log=self.logs / "etcd.log")
            _say(progress, f"kube-apiserver on {self.server}")
            self._spawn("kube-apiserver", self._apiserver_args(binaries, etcd_port, api_port))
            self._wait_ready()
            _say(progress, "kube-controller-manager and kube-scheduler")
            self._spawn("kube-controller-manager", self._controller_manager_args(binaries))
            self._spawn("kube-scheduler", self._scheduler_args(binaries))
            self.save()
            _say(progress, "CRDs (KServe and modelops)")
            self.install_crds()
            self.wait_for_default_service_account()
        except BaseException:
            self.stop()
            raise
        _say(progress, "ready")

    def stop(self) -> None:
        """Stop the recorded processes, newest first, and wait for them to exit."""
        for name in reversed(list(self.pids)):
            pid = self.pids[name]
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            if not _wait_exit(pid, 15):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                _wait_exit(pid, 5)
        self.pids.clear()
        self.save()

    # ---- faults (tests/integration/test_faults.py) ----------------------------------------

    def restart_apiserver(self) -> float:
        """Stop kube-apiserver (SIGTERM: every watch stream breaks) and start it again with the
        same flags and port; returns the seconds it was not ready."""
        pid = self.pids["kube-apiserver"]
        started = time.monotonic()
        os.killpg(pid, signal.SIGTERM)
        if not _wait_exit(pid, 30):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _wait_exit(pid, 5)
        self._spawn("kube-apiserver", self.commands["kube-apiserver"])
        self._wait_ready()
        return time.monotonic() - started

    @contextlib.contextmanager
    def etcd_paused(self) -> Iterator[None]:
        """SIGSTOP etcd for the block (the API server's storage hangs), SIGCONT after."""
        pid = self.pids["etcd"]
        os.killpg(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(pid, signal.SIGCONT)

    def save(self) -> None:
        state = {"server": self.server, "pids": self.pids}
        (self.directory / "state.json").write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, directory: Path) -> ControlPlane:
        state = json.loads((directory / "state.json").read_text())
        return cls(directory=directory, server=state["server"], pids=state["pids"])

    def log_tails(self, lines: int = 30) -> str:
        parts = []
        for path in sorted(self.logs.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(parts)

    # ---- API access ----------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        user: str = ADMIN_USER,
    ) -> Any:
        """One call to the API server; returns the decoded JSON body."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.server + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token(user)}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        context = ssl.create_default_context(cafile=str(self.directory / "pki" / "ca.crt"))
        try:
            with urllib.request.urlopen(request, context=context, timeout=60) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            # Keep the API server's explanation: it names the field and the rule.
            detail = error.read().decode(errors="replace")
            with contextlib.suppress(ValueError, KeyError):
                detail = json.loads(detail)["message"]
            error.msg = f"{error.msg}: {method} {path}: {detail}"
            raise
        if not payload.startswith((b"{", b"[")):
            return payload.decode()
        return json.loads(payload)

    def apply(self, manifest: dict[str, Any]) -> Any:
        """Server-side apply (no last-applied annotation: KServe's CRDs are too big for it)."""
        path = _object_path(manifest)
        query = "?fieldManager=modelops-devstack&force=true"
        return self.request("PATCH", path + query, manifest, "application/apply-patch+yaml")

    def install_crds(self) -> None:
        kserve = kserve_crds()
        if not kserve or not all(path.is_file() for path in kserve):
            raise RuntimeError(
                f"KServe's CRDs are missing ({', '.join(map(str, kserve)) or 'none'}): "
                "run `make binaries`, or set MODELOPS_KSERVE_CRDS to a folder of them"
            )
        crd_files = kserve + sorted(OWN_CRDS_DIR.glob("*.yaml"))
        names = []
        for path in crd_files:
            for document in yaml.safe_load_all(path.read_text()):
                if document and document.get("kind") == "CustomResourceDefinition":
                    self.apply(document)
                    names.append(document["metadata"]["name"])
        for name in names:
            self.wait_for(
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}",
                lambda crd: _condition_true(crd, "Established"),
                what=f"CRD {name} Established",
            )

    def wait_for_default_service_account(self) -> None:
        # The serviceaccount controller creating it proves the controller-manager works.
        self.wait_for(
            "/api/v1/namespaces/default/serviceaccounts/default",
            lambda _: True,
            what="the controller-manager to create the default ServiceAccount",
        )

    def wait_for(self, path: str, predicate: Any, *, what: str, deadline: float = 60) -> Any:
        end = time.monotonic() + deadline
        last_error = ""
        while time.monotonic() < end:
            try:
                found = self.request("GET", path)
                if predicate(found):
                    return found
            except urllib.error.HTTPError as error:
                last_error = f"HTTP {error.code}"
            time.sleep(0.2)
        raise TimeoutError(f"timed out after {deadline}s waiting for {what} ({last_error})")

    # ---- internals -----------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.directory,
        )
        self.pids[name] = process.pid
        self.commands[name] = args
        self.save()

    def _wait_ready(self) -> None:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                if self.request("GET", "/readyz") == "ok":
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            pid = self.pids["kube-apiserver"]
            if not _alive(pid):
                raise RuntimeError("kube-apiserver exited:\n" + self.log_tails())
            time.sleep(0.1)
        raise TimeoutError("kube-apiserver not ready after 60s:\n" + self.log_tails())

    def _write_credentials(self) -> None:
        pki = self.directory / "pki"
        pki.mkdir(exist_ok=True)
        if not (pki / "apiserver.crt").exists():
            _make_pki(pki)
        tokens = self.directory / "tokens"
        tokens.mkdir(exist_ok=True)
        lines = []
        for user, groups in ((ADMIN_USER, "system:masters"), (OPERATOR_USER, "system:masters")):
            token_file = tokens / user
            if not token_file.exists():
                token_file.write_text(os.urandom(24).hex())
            lines.append(f'{token_file.read_text().strip()},{user},{user}-uid,"{groups}"')
        (self.directory / "tokens.csv").write_text("\n".join(lines) + "\n")
        policy = AUDIT_POLICY if self.audited else {**AUDIT_POLICY, "rules": [{"level": "None"}]}
        (self.directory / "audit-policy.yaml").write_text(yaml.safe_dump(policy))

    def _write_kubeconfigs(self) -> None:
        for user, path in (
            (ADMIN_USER, self.kubeconfig),
            (OPERATOR_USER, self.operator_kubeconfig),
        ):
            path.write_text(
                yaml.safe_dump(
                    _kubeconfig(
                        self.server, self.directory / "pki" / "ca.crt", self.token(user), user
                    )
                )
            )

    def _apiserver_args(self, binaries: Binaries, etcd_port: int, api_port: int) -> list[str]:
        pki = self.directory / "pki"
        return [
            str(binaries.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--token-auth-file={self.directory / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--allow-privileged=true",
            "--profiling=false",
            # Loopback cannot be an endpoint of the kubernetes Service; nothing here needs it.
            "--endpoint-reconciler-type=none",
            f"--audit-policy-file={self.directory / 'audit-policy.yaml'}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-maxbackup=1",
        ]

    def _controller_manager_args(self, binaries: Binaries) -> list[str]:
        pki = self.directory / "pki"
        return [
            str(binaries.kube_controller_manager),
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            "--use-service-account-credentials=false",
            "--controllers=*",
        ]

    def _scheduler_args(self, binaries: Binaries) -> list[str]:
        return [
            str(binaries.kube_scheduler),
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
        ]


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"[control-plane] {message}", file=sys.stderr, flush=True)


def _etcd_args(binaries: Binaries, directory: Path, port: int, peer_port: int) -> list[str]:
    peer = f"http://127.0.0.1:{peer_port}"
    return [
        str(binaries.etcd),
        "--name=default",
        f"--data-dir={directory / 'etcd'}",
        f"--listen-client-urls=http://127.0.0.1:{port}",
        f"--advertise-client-urls=http://127.0.0.1:{port}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        # KServe's InferenceService CRD is about 640 KB as JSON: above etcd's 1.5 MiB default
        # once wrapped, so allow larger requests.
        "--max-request-bytes=10485760",
        "--quota-backend-bytes=8589934592",
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def _make_pki(pki: Path) -> None:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=pki)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "3650",
        "-subj",
        "/CN=modelops-local-ca",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "apiserver.key",
        "-out",
        "apiserver.csr",
        "-subj",
        "/CN=kube-apiserver",
    )
    (pki / "san.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc\n"
    )
    openssl(
        "x509",
        "-req",
        "-in",
        "apiserver.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "apiserver.crt",
        "-days",
        "3650",
        "-extfile",
        "san.ext",
    )
    openssl("genrsa", "-out", "sa.key", "2048")
    openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")


def _kubeconfig(server: str, ca: Path, token: str, user: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "modelops-local",
                "cluster": {"server": server, "certificate-authority": str(ca)},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": "modelops-local",
                "context": {"cluster": "modelops-local", "user": user, "namespace": "default"},
            }
        ],
        "current-context": "modelops-local",
    }


# kind -> (plural, namespaced) for the objects the local stack installs.
_KINDS = {
    "CustomResourceDefinition": ("customresourcedefinitions", False),
    "Namespace": ("namespaces", False),
    "ConfigMap": ("configmaps", True),
    "Secret": ("secrets", True),
    "Service": ("services", True),
    "EndpointSlice": ("endpointslices", True),
    "ClusterServingRuntime": ("clusterservingruntimes", False),
    "ClusterStorageContainer": ("clusterstoragecontainers", False),
    "MutatingWebhookConfiguration": ("mutatingwebhookconfigurations", False),
    "ValidatingWebhookConfiguration": ("validatingwebhookconfigurations", False),
}


def _object_path(manifest: dict[str, Any]) -> str:
    api_version, kind = manifest["apiVersion"], manifest["kind"]
    if kind not in _KINDS:
        raise ValueError(f"apply() knows no path for {kind}")
    plural, namespaced = _KINDS[kind]
    prefix = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
    metadata = manifest["metadata"]
    scope = f"/namespaces/{metadata.get('namespace', 'default')}" if namespaced else ""
    return f"{prefix}{scope}/{plural}/{metadata['name']}"


def _condition_true(obj: dict[str, Any], kind: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, *, deadline: float, what: str, log: Path) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on {port} within {deadline}s; see {log}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child still "exists"; reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _wait_exit(pid: int, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/control-plane", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "env", "build"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_STATE_DIR, help="state folder")
    args = parser.parse_args(argv)
    directory: Path = args.dir
    if args.command == "build":
        ensure_binaries()
        return 0
    if args.command == "up":
        if (directory / "state.json").exists():
            existing = ControlPlane.load(directory)
            if existing.pids and all(_alive(pid) for pid in existing.pids.values()):
                print(f"export KUBECONFIG={existing.kubeconfig}")
                return 0
            existing.stop()
        plane = ControlPlane(directory)
        plane.start(progress=True)
        print(f"export KUBECONFIG={plane.kubeconfig}")
        return 0
    if not (directory / "state.json").exists():
        print(f"no control plane recorded in {directory}", file=sys.stderr)
        return 1 if args.command == "env" else 0
    plane = ControlPlane.load(directory)
    if args.command == "env":
        print(f"export KUBECONFIG={plane.kubeconfig}")
    else:
        plane.stop()
        print(f"stopped the control plane in {directory}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
