"""spec.analysis.prometheus against a real Prometheus that demands basic auth over TLS:
credentials and the CA come from Secrets read through the real API server; wrong credentials
or an unverified certificate are Error verdicts that say why, never a Pass."""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import kopf
import pytest
import yaml
from kubernetes import client

from modelops.adapters.kubernetes import KubernetesApi
from modelops.api.resource import ModelDeployment
from modelops.controller.analysis import AnalysisRunner
from modelops.core.rollout.rounds import AnalysisRound, PlannedQuery
from modelops.handlers.connection import connection_from
from modelops_dev.control_plane import ControlPlane
from tests.integration.conftest import free_port, wait_for
from tests.unit.factories import deployment_body

PASSWORD = "s3cret-for-tests"


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def guarded_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Prometheus on 127.0.0.1 with TLS (our own CA) and one basic-auth user; (url, ca.crt)."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed (make packages)"
    folder = tmp_path_factory.mktemp("guarded-prometheus")
    ca_key, ca, key, csr, cert = (
        folder / n for n in ("ca.key", "ca.crt", "tls.key", "tls.csr", "tls.crt")
    )
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
            "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", str(key), "-out", str(csr))  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "1", "-extfile", str(folder / "san.ext"), "-out", str(cert))  # fmt: skip
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    (folder / "web.yml").write_text(yaml.safe_dump({
        "tls_server_config": {"cert_file": str(cert), "key_file": str(key)},
        "basic_auth_users": {"modelops": hashed},
    }))  # fmt: skip
    (folder / "prometheus.yml").write_text(yaml.safe_dump({"global": {"scrape_interval": "15s"}}))
    port = free_port()
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [binary, f"--config.file={folder / 'prometheus.yml'}", f"--web.config.file={folder / 'web.yml'}",
         f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(ca))
    token = base64.b64encode(f"modelops:{PASSWORD}".encode()).decode()

    def ready() -> bool:
        request = urllib.request.Request(
            url + "/-/ready", headers={"Authorization": f"Basic {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=2, context=context) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    try:
        wait_for(ready, timeout=60, interval=0.3, what="the guarded Prometheus")
        yield url, ca
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def secret(core: client.CoreV1Api, namespace: str, name: str, data: dict[str, str]) -> None:
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    core.create_namespaced_secret(namespace, {"metadata": {"name": name}, "data": encoded})


def test_credentials_and_ca_from_secrets_reach_a_guarded_prometheus(
    guarded_prometheus: tuple[str, Path],
    control_plane: ControlPlane,
    core: client.CoreV1Api,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, ca = guarded_prometheus
    secret(core, namespace, "prom-auth", {"username": "modelops", "password": PASSWORD})
    secret(core, namespace, "prom-wrong", {"username": "modelops", "password": "guess"})
    secret(core, namespace, "prom-ca", {"ca.crt": ca.read_text()})
    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    assert info is not None

    def deployment(prometheus: dict[str, object]) -> ModelDeployment:
        body = deployment_body(spec__analysis={
            "prometheus": {"url": url, **prometheus},
            "metrics": [{"name": "answer", "query": "vector(42)", "max": 50}],
        })  # fmt: skip
        body["metadata"]["namespace"] = namespace
        return ModelDeployment.model_validate(body)

    async def measure(prometheus: dict[str, object]) -> tuple[str, float | None, str]:
        api = KubernetesApi(connection_from(info))
        runner = AnalysisRunner(api)
        chosen = deployment(prometheus)
        assert chosen.spec.analysis is not None
        metric = chosen.spec.analysis.metrics[0]
        planned = AnalysisRound("canary", "8", (PlannedQuery(metric, "vector(42)"),))
        try:
            [measured] = await runner.run((namespace, "fraud"), chosen, planned)
        finally:
            await runner.close()
            await api.close()
        return measured.verdict, measured.value, measured.message

    import asyncio

    verified = asyncio.run(measure({"authSecret": "prom-auth", "tls": {"caSecret": "prom-ca"}}))
    assert verified[:2] == ("Pass", 42.0), verified
    wrong = asyncio.run(measure({"authSecret": "prom-wrong", "tls": {"caSecret": "prom-ca"}}))
    assert wrong[0] == "Error" and "refused the credentials (401)" in wrong[2]
    assert PASSWORD not in json.dumps(wrong) and "guess" not in json.dumps(wrong)
    unverified = asyncio.run(measure({"authSecret": "prom-auth"}))
    assert unverified[0] == "Error" and "CERTIFICATE_VERIFY_FAILED" in unverified[2]
    skipped = asyncio.run(measure({"authSecret": "prom-auth", "tls": {"insecureSkipVerify": True}}))
    assert skipped[:2] == ("Pass", 42.0), skipped
    missing = asyncio.run(measure({"authSecret": "nobody", "tls": {"caSecret": "prom-ca"}}))
    assert missing[0] == "Error" and f"Secret {namespace}/nobody does not exist" in missing[2]
