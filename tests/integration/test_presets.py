"""Every MLServer and Istio preset (the router exports Istio's schema) against real MLServer pods scraped by Prometheus: a version
that answers every request, one that refuses about a third of them, one that refuses all, and
one that gets no traffic. Error rates give Pass, Fail, Fail, Inconclusive; a latency answers for
every version that got requests (a version that only fails reads +Inf, a Fail) and is
Inconclusive for the one without. The queries are the operator's own, sent by its adapter."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from modelops.adapters.prometheus import Prometheus as PrometheusClient
from modelops.adapters.prometheus import PrometheusConnection
from modelops.api.delivery import AnalysisSpec, MetricSpec
from modelops.core.analysis import Answer, Context, QueryFailed, Subject, judge, query_for
from modelops.core.rollout.traffic import predictor_service
from modelops_dev.servers import MlflowServer, Prometheus
from tests.integration.conftest import Operator, wait_for
from tests.integration.helpers import MD, Traffic, ingress_host, status, train

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cluster needs root")

# deployment name -> model kind (train_model.py)
KINDS = {"healthy": "slow-0", "flaky": "flaky", "broken": "refuse-all", "idle": "slow-0"}
WINDOW = "30s"
ERROR_RATES = ["mlserver-error-rate", "mlserver-http-error-rate", "istio-error-rate"]
LATENCIES = ["mlserver-latency-mean", "mlserver-latency-p95", "mlserver-latency-p99",
             "istio-latency-p95", "istio-latency-p99"]  # fmt: skip


def pinned(name: str, version: str, tracking_uri: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelops.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name},
        "spec": {"model": {"name": f"presets-{name}", "version": version,
                           "registry": {"trackingUri": tracking_uri}},
                 "serving": {"storage": {"mode": "StorageInitializer"}}},
    }  # fmt: skip


@pytest.fixture(scope="module")
def served(
    serving_cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, str]]:
    """The four versions served, traffic flowing to all but `idle` for longer than the window;
    the deployments' versions by name."""
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    folder = tmp_path_factory.mktemp("presets")
    versions = {}
    for name, kind in KINDS.items():
        versions[name] = train(mlflow_server, f"presets-{name}", kind, Path(folder))["version"]
        custom.create_namespaced_custom_object(
            *MD, namespace, "modeldeployments", pinned(name, versions[name], mlflow_server.url)
        )
    for name in KINDS:
        wait_for(lambda n=name: status(custom, namespace, n).get("phase") == "Healthy",  # type: ignore[misc]
                 timeout=300, interval=1, what=f"{name} to be served")  # fmt: skip
    with ExitStack() as stack:
        for name in ("healthy", "flaky", "broken"):
            stack.enter_context(
                Traffic(serving_cluster, ingress_host(name, namespace), name, rate=8)
            )

        def full_window() -> bool:
            # Every series of the three versions, in the model server's metrics and the
            # router's, has a full window of samples (one per 2 s scrape) behind its rate.
            query = (
                f'min(count_over_time(model_infer_request_failure_total{{namespace="{namespace}"}}[{WINDOW}]))'
                f' >= 14 and on() count(count_over_time(model_infer_request_failure_total{{namespace="{namespace}"}}[{WINDOW}])) >= 3'
                f' and on() count(rate(istio_requests_total{{destination_service_namespace="{namespace}"}}[{WINDOW}])) >= 3'
            )
            return bool(asyncio.run(ask(prometheus.url, query)))

        wait_for(
            full_window, timeout=180, interval=2, what="a full window of traffic in Prometheus"
        )
        # The predictor each version is served by (named after the version since #16).
        predictors = {
            f"{name}/predictor": status(custom, namespace, name)["stable"].get("predictor") or ""
            for name in KINDS
        }
        yield {"namespace": namespace, **versions, **predictors}
    core.delete_namespace(namespace)


async def query(url: str, expression: str) -> Answer:
    """An instant query through the operator's own Prometheus adapter."""
    prometheus = PrometheusClient(PrometheusConnection(url))
    try:
        return await prometheus.query(expression)
    finally:
        await prometheus.close()


async def ask(url: str, expression: str) -> list[Any]:
    answer = await query(url, expression)
    assert not isinstance(answer, QueryFailed), answer
    return list(answer)


def measure(
    prometheus: Prometheus, served: dict[str, str], preset: str, name: str, maximum: float
) -> Any:
    """The verdict the operator reaches for `preset` on deployment `name`."""
    fields: dict[str, Any] = {"name": "m", "preset": preset, "max": maximum, "window": WINDOW}
    metric = MetricSpec.model_validate(fields)
    analysis = AnalysisSpec.model_validate({"metrics": [fields], "interval": "10s"})

    subject = Subject(
        served[name], predictor_service(name, served[f"{name}/predictor"] or None), ""
    )
    context = Context(served["namespace"], name, name, subject, None)
    expression = query_for(metric, analysis, context, 0)
    assert isinstance(expression, str), expression
    return judge(metric, asyncio.run(query(prometheus.url, expression)))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("preset", ERROR_RATES)
def test_error_rate_presets_fail_any_failing_version_and_have_no_verdict_without_requests(
    served: dict[str, str], prometheus: Prometheus, preset: str
) -> None:
    verdicts = {name: measure(prometheus, served, preset, name, 0.05) for name in KINDS}
    assert {n: m.verdict for n, m in verdicts.items()} == {
        "healthy": "Pass", "flaky": "Fail", "broken": "Fail", "idle": "Inconclusive",
    }, {n: m.message for n, m in verdicts.items()}  # fmt: skip
    assert verdicts["healthy"].value == 0
    assert 0.2 < verdicts["flaky"].value < 0.5  # 4 of the 12 rows are refused
    assert verdicts["broken"].value == 1


@pytest.mark.timeout(600)
@pytest.mark.parametrize("preset", LATENCIES)
def test_latency_presets_answer_for_every_version_with_requests_and_fail_one_that_only_fails(
    served: dict[str, str], prometheus: Prometheus, preset: str
) -> None:
    verdicts = {name: measure(prometheus, served, preset, name, 1.0) for name in KINDS}
    assert {n: m.verdict for n, m in verdicts.items()} == {
        "healthy": "Pass", "flaky": "Pass", "broken": "Fail", "idle": "Inconclusive",
    }, {n: m.message for n, m in verdicts.items()}  # fmt: skip
    assert 0 < verdicts["healthy"].value < 1.0 and 0 < verdicts["flaky"].value < 1.0
    assert "no request to the version succeeded" in verdicts["broken"].message
