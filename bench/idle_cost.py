"""Benchmark: what 1,000 idle ModelDeployments cost the operator, the API server, the registry
and Prometheus.

N deployments are created and made Healthy (the benchmark plays KServe's part: it reports each
InferenceService Ready), then nothing changes for a window. Two runs, each on a fresh control
plane:
  pinned     every deployment names its storageUri: the operator's own idle cost;
  following  every deployment follows the alias `champion` of one of M registered models in a
             real `mlflow server`, and W of them carry a metric retraining trigger measured by
             a real Prometheus (which scrapes a gauge this script exports, never breached),
             both reached through the devstack's counting proxy.
Measured over the window: the operator's CPU time, its API writes and reads (from the API
server's audit log), its registry lookups (requests for an alias) and PromQL queries, against
their bounds: one lookup per model and one query per trigger per interval (30 s).

    .venv/bin/python bench/idle_cost.py [--count 1000] [--window 60] [--models 10] [--watched 100]
"""

from __future__ import annotations

import argparse
import asyncio
import calendar
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from modelops_dev.control_plane import OPERATOR_USER, READ_VERBS, ControlPlane
from modelops_dev.fault_proxy import FaultProxy
from modelops_dev.servers import MlflowServer, Prometheus

sys.path.insert(0, str(Path(__file__).parent))
from reconcile_throughput import ISVC_PATH, MD_PATH, Client, cpu_seconds, deployment

NAMESPACE = "idle"
POLL_SECONDS = 30  # the registry's default pollInterval and the triggers' default interval
ALIAS_LOOKUP = "/api/2.0/mlflow/registered-models/alias"
QUERY = "/api/v1/query"


def operator_requests(plane: ControlPlane, since: float) -> Counter[str]:
    """The operator's requests received since `since` (epoch seconds), by verb: one per
    audit ID (a watch logs when its response starts and when it ends)."""
    found: dict[str, str] = {}
    for line in plane.audit_log.read_text().splitlines():
        entry = json.loads(line)
        stamp = entry.get("requestReceivedTimestamp", "")
        if entry["user"]["username"] != OPERATOR_USER or not stamp:
            continue
        if calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) >= since:
            found[entry["auditID"]] = entry["verb"]
    return Counter(found.values())


def register_models(tracking_uri: str, models: int, folder: Path) -> None:
    """`idle-model-K`, version 1 (an MLmodel naming the sklearn flavor), aliased champion."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    run = client.create_run(client.create_experiment("idle"))
    model = folder / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors:\n  sklearn:\n    pickled_model: model.pkl\n")
    client.log_artifacts(run.info.run_id, str(model), artifact_path="model")
    client.set_terminated(run.info.run_id)
    for k in range(models):
        client.create_registered_model(f"idle-model-{k}")
        version = client.create_model_version(
            f"idle-model-{k}", f"{run.info.artifact_uri}/model", run_id=run.info.run_id
        )
        client.set_registered_model_alias(f"idle-model-{k}", "champion", version.version)


def idle_deployment(index: int, models: int, watched: bool) -> dict[str, Any]:
    if models == 0:
        return deployment(f"md-{index}")
    body: dict[str, Any] = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": f"md-{index}"},
        "spec": {
            "model": {"name": f"idle-model-{index % models}", "alias": "champion"},
            "serving": {
                "modelFormat": {"name": "sklearn"},
                "storage": {"mode": "StorageInitializer"},
            },
        },
    }
    if watched:
        body["spec"]["retraining"] = {
            "triggers": [{"name": "quality", "metric": {
                "query": 'bench_quality{deployment="{{ deployment }}"}', "min": 0.5}}],
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "train", "image": "trainer:1"}]}}}},
        }  # fmt: skip
    return body


async def ready(client: Client, name: str) -> bool:
    """KServe's part: report the InferenceService Ready, addressed at its predictor Service."""
    path = ISVC_PATH.format(ns=NAMESPACE) + f"/{name}"
    try:
        service = await client.call("GET", path)
    except RuntimeError:
        return False
    predictor = service["spec"]["predictor"].get("name")
    host = f"{name}-{predictor}-predictor" if predictor else f"{name}-predictor"
    status = {"status": {
        "address": {"url": f"http://{host}.{NAMESPACE}.svc.cluster.local"},
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "PredictorReady", "status": "True"}],
    }}  # fmt: skip
    await client.call("PATCH", path + "/status", status, "application/merge-patch+json")
    return True


async def healthy(client: Client) -> int:
    listing = await client.call("GET", MD_PATH.format(ns=NAMESPACE))
    return sum((i.get("status") or {}).get("phase") == "Healthy" for i in listing["items"])


async def settle(client: Client, names: list[str], deadline_seconds: float = 900) -> None:
    """Every deployment Healthy: its InferenceService reported Ready, the status written."""
    pending = set(names)
    deadline = time.monotonic() + deadline_seconds
    while pending and time.monotonic() < deadline:
        done = await asyncio.gather(*(ready(client, n) for n in sorted(pending)))
        pending -= {n for n, ok in zip(sorted(pending), done, strict=True) if ok}
        await asyncio.sleep(1)
    while await healthy(client) < len(names):
        if time.monotonic() > deadline:
            listing = await client.call("GET", MD_PATH.format(ns=NAMESPACE))
            stuck = [(i["metadata"]["name"], (i.get("status") or {}).get("phase"),
                      (i.get("status") or {}).get("message"))
                     for i in listing["items"] if (i.get("status") or {}).get("phase") != "Healthy"]  # fmt: skip
            raise RuntimeError(f"{len(stuck)} deployments not Healthy, for example {stuck[:5]}")
        await asyncio.sleep(2)


async def measure(count: int, window: float, models: int, watched: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="modelops-idle-") as folder:
        plane = ControlPlane(Path(folder))
        plane.start(progress=True)
        gauges = CollectorRegistry()
        quality = Gauge("bench_quality", "A watched deployment's quality (never breached).",
                        ["deployment"], registry=gauges)  # fmt: skip
        exporter, _ = start_http_server(0, addr="127.0.0.1", registry=gauges)
        mlflow = MlflowServer(Path(folder) / "mlflow")
        mlflow.start(plane.logs)
        prometheus = Prometheus(
            Path(folder) / "prometheus", plane.kubeconfig, f"127.0.0.1:{exporter.server_port}"
        )
        prometheus.start(plane.logs)
        registry_proxy, prometheus_proxy = FaultProxy(mlflow.url), FaultProxy(prometheus.url)
        registry_proxy.start()
        prometheus_proxy.start()
        register_models(mlflow.url, models, Path(folder))
        client = Client(plane)
        env = {**os.environ, "KUBECONFIG": str(plane.operator_kubeconfig)}
        log = open(plane.logs / "operator.log", "ab")  # noqa: SIM115
        operator = subprocess.Popen(
            [sys.executable, "-m", "modelops.cli", "run", "-n", NAMESPACE, "--liveness", "none",
             "--metrics-port", "0", "--registry-uri", registry_proxy.url,
             "--prometheus-url", prometheus_proxy.url], stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        try:
            await client.namespace(NAMESPACE)
            names = [f"md-{i}" for i in range(count)]
            for name in names[:watched]:
                quality.labels(deployment=name).set(0.9)
            await asyncio.gather(*(
                client.call("POST", MD_PATH.format(ns=NAMESPACE), idle_deployment(i, models, i < watched))
                for i in range(count)
            ))  # fmt: skip
            await settle(client, names)
            await asyncio.sleep(10)  # the last writes settle; the window starts quiet
            started_wall, started_cpu = time.time(), cpu_seconds(operator.pid)
            registry_proxy.reset()
            prometheus_proxy.reset()
            profile = os.environ.get("BENCH_PROFILE")  # a py-spy raw profile of the window
            if profile:
                subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-p",
                                  str(operator.pid), "-d", str(int(window)), "-f", "raw",
                                  "-o", profile])  # fmt: skip
            await asyncio.sleep(window)
            used = cpu_seconds(operator.pid) - started_cpu
            lookups, queries = (
                registry_proxy.requests(ALIAS_LOOKUP),
                prometheus_proxy.requests(QUERY),
            )
            requests = operator_requests(plane, started_wall)
            rounds = math.ceil(window / POLL_SECONDS) + 1
            return {
                "cpu_per_minute": round(used * 60 / window, 3),
                "writes": sum(n for verb, n in requests.items() if verb not in READ_VERBS),
                "reads": {verb: n for verb, n in requests.items() if verb in READ_VERBS},
                "registry_lookups": lookups, "registry_lookups_bound": models * rounds,
                "registry_requests": registry_proxy.requests(),
                "registry_requests_by_path": dict(registry_proxy.counts),
                "promql_queries": queries, "promql_queries_bound": watched * rounds,
                "healthy": await healthy(client),
            }  # fmt: skip
        finally:
            operator.terminate()
            operator.wait(timeout=30)
            await client.close()
            registry_proxy.stop()
            prometheus_proxy.stop()
            prometheus.stop()
            mlflow.stop()
            exporter.shutdown()
            plane.stop()


async def run(count: int, window: float, models: int, watched: int) -> int:
    results = {
        "pinned": await measure(count, window, 0, 0),
        "following": await measure(count, window, models, watched),
    }
    print(f"{count} idle deployments, {window:.0f} s window ({os.cpu_count()} cores); pinned, "
          f"then following {models} models' aliases, {watched} with a metric trigger")  # fmt: skip
    for label, found in results.items():
        print(f"  {label:10} CPU {found['cpu_per_minute']:.2f} s/min (goal <= 0.5 pinned), "
              f"{found['writes']} API writes, reads {found['reads'] or 0}, "
              f"{found['healthy']} Healthy")  # fmt: skip
    found = results["following"]
    print(f"  registry: {found['registry_lookups']} alias lookups (bound "
          f"{found['registry_lookups_bound']}), {found['registry_requests']} requests in all; "
          f"PromQL: {found['promql_queries']} queries (bound {found['promql_queries_bound']})")  # fmt: skip
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "idle_cost.json").write_text(json.dumps(
        {"count": count, "window": window, "models": models, "watched": watched,
         "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d"), **results}, indent=2) + "\n"
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--window", type=float, default=60)
    parser.add_argument("--models", type=int, default=10, help="registered models followed")
    parser.add_argument("--watched", type=int, default=100, help="deployments with a trigger")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.count, args.window, args.models, args.watched)))
