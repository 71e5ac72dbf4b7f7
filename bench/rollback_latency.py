"""Benchmark: from a breach becoming visible in Prometheus to the rollback write.

For each (interval, failureLimit) pair, K deployments serve version 1 and get version 2 as a
canary whose analysis reads one PromQL series per deployment, `bench_error_ratio`, exported by
this script and scraped by a real Prometheus (max 0.1). The script plays KServe's part (it
reports each InferenceService and its canary Ready, and gives the canary's Service a ready
endpoint). Once a canary has traffic, after a random part of an interval (so breaches fall at
every phase of the analysis rounds), its series goes to 1.0. Measured per deployment:
  visible   the first instant Prometheus answers the operator's query with the breach,
  rollback  the first InferenceService event in which the canary has no traffic left.
Goal: rollback - visible <= interval x (failureLimit + 1) + 2 s.

    .venv/bin/python bench/rollback_latency.py [--per-case 5] [--case 5:1 --case 30:2 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from modelops_dev.control_plane import ControlPlane
from modelops_dev.servers import Prometheus

sys.path.insert(0, str(Path(__file__).parent))
from idle_cost import NAMESPACE
from latency import start_operator, stop
from reconcile_throughput import ISVC_PATH, MD_PATH, Client, deployment

CASES = ["5:1", "5:2", "30:1", "30:2"]
THRESHOLD = 0.1
SLICES = "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def canary_deployment(name: str, prometheus: str, interval: int, failure_limit: int) -> Any:
    body = deployment(name)
    body["spec"]["rollout"] = {
        "strategy": "Canary", "steps": [{"traffic": 50, "duration": "30m"}],
    }  # fmt: skip
    body["spec"]["analysis"] = {
        "prometheus": {"url": prometheus}, "interval": f"{interval}s",
        "failureLimit": failure_limit, "inconclusiveLimit": 5,
        "metrics": [{"name": "errors", "max": THRESHOLD,
                     "query": 'bench_error_ratio{deployment="{{ deployment }}"}'}],
    }  # fmt: skip
    return body


class KServeStandIn:
    """KServe's part for the deployments under test: every InferenceService Ready, addressed at
    its stable predictor, each canary entry ready, and each canary's Service with a ready
    endpoint (a pod named as KServe names the canary's)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.slices: set[str] = set()

    async def serve(self, name: str) -> bool:
        """KServe's part for one InferenceService; whether its status had to change."""
        path = ISVC_PATH.format(ns=NAMESPACE) + f"/{name}"
        try:
            service = await self.client.call("GET", path)
        except RuntimeError:
            return False
        spec = service["spec"]
        predictor = spec["predictor"].get("name")
        host = f"{name}-{predictor}-predictor" if predictor else f"{name}-predictor"
        entries = spec.get("canary") or []
        status = {
            "address": {"url": f"http://{host}.{NAMESPACE}.svc.cluster.local"},
            "conditions": [{"type": "Ready", "status": "True"},
                           {"type": "PredictorReady", "status": "True"}],
            "canaryStatuses": [{"name": entry["predictor"]["name"], "ready": True,
                                "trafficPercent": entry.get("trafficPercent", 0)}
                               for entry in entries],
        }  # fmt: skip
        changed = service.get("status", {}) != {**service.get("status", {}), **status}
        if changed:
            await self.client.call(
                "PATCH", path + "/status", {"status": status}, "application/merge-patch+json"
            )
        for entry in entries:
            await self.endpoint(f"{name}-{entry['predictor']['name']}-predictor")
        return changed

    async def endpoint(self, service: str) -> None:
        if service in self.slices:
            return
        await self.client.call("POST", SLICES.format(ns=NAMESPACE), {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-bench", "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "bench"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True},
                           "targetRef": {"kind": "Pod", "namespace": NAMESPACE,
                                         "name": f"{service}-0-bench"}}],
            "ports": [{"port": 8080}],
        })  # fmt: skip
        self.slices.add(service)

    async def run(self, names: list[str]) -> None:
        while True:
            for answer in await asyncio.gather(
                *(self.serve(name) for name in names), return_exceptions=True
            ):
                if isinstance(answer, BaseException):  # said; served again in half a second
                    print(f"KServe's part failed: {answer!r}", file=sys.stderr)
            await asyncio.sleep(0.5)


class RollbackWatch:
    """When each InferenceService first left its canary (version 2's storageUri) no traffic."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.armed: set[str] = set()
        self.rolled_back: dict[str, float] = {}

    async def run(self) -> None:
        url = f"{self.client.server}{ISVC_PATH.format(ns=NAMESPACE)}?watch=true"
        async with self.client.session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as r:
            async for line in r.content:
                event = json.loads(line)
                body = event["object"]
                name = body.get("metadata", {}).get("name", "")
                if name not in self.armed or name in self.rolled_back:
                    continue
                canary_traffic = sum(
                    entry.get("trafficPercent", 0)
                    for entry in body.get("spec", {}).get("canary") or []
                    if entry["predictor"]["model"]["storageUri"].endswith("-v2")
                )
                if canary_traffic == 0:
                    self.rolled_back[name] = time.time()


async def step_started(client: Client, name: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        found = await client.call("GET", MD_PATH.format(ns=NAMESPACE) + f"/{name}")
        if ((found.get("status") or {}).get("canary") or {}).get("stepStartedAt"):
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{name}: the canary never got traffic")


async def breach_visible(prometheus: Prometheus, name: str, deadline: float) -> float:
    query = f'bench_error_ratio{{deployment="{name}"}}'
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(prometheus.query, query)
        if found and float(found[0]["value"][1]) > THRESHOLD:
            return time.time()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{name}: the breach never showed in Prometheus")


async def one(client: Client, prometheus: Prometheus, gauge: Gauge, watch: RollbackWatch,
              name: str, interval: int) -> float:  # fmt: skip
    deadline = time.monotonic() + 600
    await step_started(client, name, deadline)
    await asyncio.sleep(random.uniform(0, interval))
    watch.armed.add(name)
    gauge.labels(deployment=name).set(1.0)
    visible = await breach_visible(prometheus, name, deadline)
    while name not in watch.rolled_back:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: no rollback")
        await asyncio.sleep(0.1)
    return watch.rolled_back[name] - visible


async def measure(cases: list[tuple[int, int]], per_case: int) -> list[dict[str, Any]]:
    registry = CollectorRegistry()
    gauge = Gauge("bench_error_ratio", "The canary's error ratio (the benchmark's series).",
                  ["deployment"], registry=registry)  # fmt: skip
    exporter = free_port()
    start_http_server(exporter, addr="127.0.0.1", registry=registry)
    with tempfile.TemporaryDirectory(prefix="modelops-rollback-") as folder:
        plane = ControlPlane(Path(folder))
        plane.start(progress=True)
        # The exporter is scraped as Prometheus's one static target.
        prometheus = Prometheus(
            Path(folder) / "prometheus", plane.kubeconfig, f"127.0.0.1:{exporter}"
        )
        prometheus.start(plane.logs)
        client = Client(plane)
        operator = start_operator(plane)
        tasks: list[asyncio.Task[Any]] = []
        try:
            await client.namespace(NAMESPACE)
            names = {
                case: [f"i{case[0]}-f{case[1]}-{k}" for k in range(per_case)] for case in cases
            }
            every = [name for group in names.values() for name in group]
            for name in every:
                gauge.labels(deployment=name).set(0.0)
            await asyncio.gather(*(
                client.call("POST", MD_PATH.format(ns=NAMESPACE),
                            canary_deployment(name, prometheus.url, *case))
                for case, group in names.items() for name in group
            ))  # fmt: skip
            stand_in, watch = KServeStandIn(client), RollbackWatch(client)
            tasks = [asyncio.create_task(stand_in.run(every)), asyncio.create_task(watch.run())]
            await settled(client, every)
            await asyncio.gather(*(
                client.call("PATCH", MD_PATH.format(ns=NAMESPACE) + f"/{name}",
                            {"spec": {"model": {"version": "2"},
                                      "serving": {"storageUri": f"s3://bench/{name}-v2"}}},
                            "application/merge-patch+json")
                for name in every
            ))  # fmt: skip
            latencies = await asyncio.gather(*(
                one(client, prometheus, gauge, watch, name, case[0])
                for case, group in names.items() for name in group
            ))  # fmt: skip
        finally:
            for task in tasks:
                task.cancel()
            stop(operator)
            await client.close()
            prometheus.stop()
            plane.stop()
    results, position = [], 0
    for interval, failure_limit in cases:
        found = sorted(latencies[position : position + per_case])
        position += per_case
        goal = interval * (failure_limit + 1) + 2
        results.append({
            "interval_s": interval, "failure_limit": failure_limit, "samples": len(found),
            "min_s": round(found[0], 2), "max_s": round(found[-1], 2),
            "mean_s": round(sum(found) / len(found), 2), "goal_s": goal, "met": found[-1] <= goal,
        })  # fmt: skip
    return results


async def settled(client: Client, names: list[str]) -> None:
    """Every deployment Healthy on version 1 before the canaries start."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        listing = await client.call("GET", MD_PATH.format(ns=NAMESPACE))
        phases = {item["metadata"]["name"]: (item.get("status") or {}).get("phase")
                  for item in listing["items"]}  # fmt: skip
        if all(phases.get(name) == "Healthy" for name in names):
            return
        await asyncio.sleep(1)
    raise RuntimeError("the deployments did not all become Healthy")


def run(cases: list[str], per_case: int) -> int:
    parsed = [(int(i), int(f)) for i, f in (case.split(":") for case in cases)]
    results = asyncio.run(measure(parsed, per_case))
    print(
        f"{'interval':>8} {'failureLimit':>12} {'visible -> rollback min/mean/max':>34} {'goal':>7}"
    )
    for found in results:
        print(f"{found['interval_s']:>7}s {found['failure_limit']:>12} "
              f"{found['min_s']:>10.1f} / {found['mean_s']:.1f} / {found['max_s']:.1f} s "
              f"{found['goal_s']:>6}s {'met' if found['met'] else 'NOT MET'}")  # fmt: skip
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "rollback_latency.json").write_text(json.dumps(
        {"benchmark": "rollback latency", "results": results, "cpus": os.cpu_count(),
         "when": time.strftime("%Y-%m-%d")}, indent=2) + "\n")  # fmt: skip
    return 0  # a goal missed is reported, not an error: the next benchmark still runs


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-case", type=int, default=5)
    parser.add_argument("--case", action="append", help="interval:failureLimit (repeatable)")
    arguments = parser.parse_args()
    sys.exit(run(arguments.case or CASES, arguments.per_case))
