"""Benchmark: one change at a time among N idle deployments, and the memory of N.

N deployments are created and made Healthy (the benchmark plays KServe's part, as
bench/idle_cost.py does). The operator is then restarted, so its RSS is measured after a
start-up with N existing deployments (not after a burst). Then, one at a time:
  edits     the spec of an existing deployment changes (its minReplicas), timed from the
            PATCH returning to the InferenceService with that value seen on a watch;
  creates   a new deployment, timed from the POST returning to its InferenceService ADDED.
Reports p50/p99 of each (goal p99 <= 100 ms) and the RSS (goal <= 120 MiB at 1,000).

    .venv/bin/python bench/latency.py [--count 1000] [--changes 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from modelops_dev.control_plane import ControlPlane

sys.path.insert(0, str(Path(__file__).parent))
from idle_cost import NAMESPACE, settle
from reconcile_throughput import ISVC_PATH, MD_PATH, Client, deployment, rss_mib

RESULTS = Path(__file__).parent / "results"


def start_operator(plane: ControlPlane) -> subprocess.Popen[bytes]:
    log = open(plane.logs / "operator.log", "ab")  # noqa: SIM115
    env = {**os.environ, "KUBECONFIG": str(plane.operator_kubeconfig)}
    return subprocess.Popen(
        [sys.executable, "-m", "modelops.cli", "run", "-n", NAMESPACE, "--liveness", "none",
         "--metrics-port", "0"], stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)


class ServiceWatch:
    """When each (InferenceService, storageUri in its spec) was first seen on a watch."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: dict[tuple[str, str], float] = {}
        self.wanted: set[tuple[str, str]] = set()
        self.arrived = asyncio.Event()

    async def run(self, since: str) -> None:
        url = (f"{self.client.server}{ISVC_PATH.format(ns=NAMESPACE)}?watch=true"
               f"&resourceVersion={since}&allowWatchBookmarks=true")  # fmt: skip
        async with self.client.session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as r:
            async for line in r.content:
                event = json.loads(line)
                if event["type"] not in ("ADDED", "MODIFIED"):
                    continue
                body = event["object"]
                text = json.dumps(body.get("spec", {}))
                name = body["metadata"]["name"]
                for key in [k for k in self.wanted if k[0] == name and k[1] in text]:
                    self.seen.setdefault(key, time.perf_counter())
                    self.wanted.discard(key)
                    self.arrived.set()

    def expect(self, key: tuple[str, str]) -> None:
        """Look out for `key` (before the request that causes it: the event may come first)."""
        self.wanted.add(key)

    async def wait(self, key: tuple[str, str], started: float) -> float:
        while key not in self.seen:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), timeout=30)
        return self.seen[key] - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * share) - 1)]


async def measure(count: int, changes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="modelops-latency-") as folder:
        plane = ControlPlane(Path(folder))
        plane.start(progress=True)
        client = Client(plane)
        operator = start_operator(plane)
        try:
            await client.namespace(NAMESPACE)
            names = [f"md-{i}" for i in range(count)]
            await asyncio.gather(
                *(client.call("POST", MD_PATH.format(ns=NAMESPACE), deployment(n)) for n in names)
            )
            await settle(client, names)
            stop(operator)
            operator = start_operator(plane)
            await asyncio.sleep(15)  # start-up and its first pass over every deployment
            rss_after_start = rss_mib(operator.pid)

            listing = await client.call("GET", ISVC_PATH.format(ns=NAMESPACE))
            watch = ServiceWatch(client)
            watcher = asyncio.create_task(watch.run(listing["metadata"]["resourceVersion"]))
            edits, creates = [], []
            for i in range(changes):
                # An edit the stable predictor takes in place (a new version would go through
                # a canary entry, which needs KServe's defaulting webhook this bench does not run).
                name, replicas = names[i * (count // changes)], 2 + i % 3
                watch.expect((name, f'"minReplicas": {replicas}'))
                started = time.perf_counter()
                await client.call("PATCH", MD_PATH.format(ns=NAMESPACE) + f"/{name}",
                                  {"spec": {"serving": {"minReplicas": replicas}}},
                                  "application/merge-patch+json")  # fmt: skip
                edits.append(await watch.wait((name, f'"minReplicas": {replicas}'), started))
                await asyncio.sleep(0.2)
            for i in range(changes):
                name = f"new-{i}"
                body = deployment(name)
                uri = body["spec"]["serving"]["storageUri"]
                watch.expect((name, uri))
                started = time.perf_counter()
                await client.call("POST", MD_PATH.format(ns=NAMESPACE), body)
                creates.append(await watch.wait((name, uri), started))
                await asyncio.sleep(0.2)
            watcher.cancel()
            return {
                "count": count, "changes": changes,
                "rss_after_start_mib": round(rss_after_start, 1),
                "edit_p50_ms": round(statistics.median(edits) * 1000, 1),
                "edit_p99_ms": round(percentile(edits, 0.99) * 1000, 1),
                "create_p50_ms": round(statistics.median(creates) * 1000, 1),
                "create_p99_ms": round(percentile(creates, 0.99) * 1000, 1),
            }  # fmt: skip
        finally:
            stop(operator)
            await client.close()
            plane.stop()


async def run(counts: list[int], changes: int) -> int:
    results = [await measure(count, changes) for count in counts]
    print(
        f"{'deployments':>11} {'RSS after start-up':>19} {'edit p50/p99':>16} {'create p50/p99':>16}"
    )
    for found in results:
        print(f"{found['count']:>11} {found['rss_after_start_mib']:>15} MiB "
              f"{found['edit_p50_ms']:>6}/{found['edit_p99_ms']:>6} ms "
              f"{found['create_p50_ms']:>6}/{found['create_p99_ms']:>6} ms")  # fmt: skip
    print("goals: p99 <= 100 ms; RSS <= 120 MiB at 1,000")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latency.json").write_text(json.dumps(
        {"benchmark": "latency", "results": results, "cpus": os.cpu_count(),
         "when": time.strftime("%Y-%m-%d")}, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, action="append", help="repeatable (default 1000)")
    parser.add_argument("--changes", type=int, default=50)
    arguments = parser.parse_args()
    sys.exit(asyncio.run(run(arguments.count or [1000], arguments.changes)))
