"""Benchmark: the operator's memory across a churn soak.

N deployments are made Healthy (the benchmark plays KServe's part, as bench/idle_cost.py does),
then for --minutes the benchmark keeps changing them, a few operations a second, each on a
random deployment:
  edit      its spec changes in place (minReplicas),
  version   it moves to a new version (model.version and storageUri), served once KServe's
            part reports it Ready,
  recreate  it is deleted (its InferenceService goes with it) and created again.
The operator's RSS is sampled every --sample seconds. Growth is the last sample against the
one after the warm-up (the first sixth of the soak, when the caches have filled). Goal: < 5%.
At the end every deployment must be Healthy again (the operator kept up with the churn).

    .venv/bin/python bench/soak.py [--count 1000] [--minutes 30] [--rate 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from modelops_dev.control_plane import ControlPlane

sys.path.insert(0, str(Path(__file__).parent))
from idle_cost import NAMESPACE, healthy, settle
from latency import start_operator, stop
from reconcile_throughput import MD_PATH, Client, deployment, rss_mib
from rollback_latency import KServeStandIn

RESULTS = Path(__file__).parent / "results"
OPERATIONS = ("edit", "version", "recreate")


async def churn_once(client: Client, name: str, operation: str, version: int) -> None:
    path = MD_PATH.format(ns=NAMESPACE) + f"/{name}"
    if operation == "edit":
        patch: dict[str, Any] = {"spec": {"serving": {"minReplicas": random.randint(1, 3)}}}
    elif operation == "version":
        patch = {"spec": {"model": {"version": str(version)},
                          "serving": {"storageUri": f"s3://bench/{name}-v{version}"}}}  # fmt: skip
    else:
        await client.call("DELETE", path)
        for _ in range(100):  # the API server removes it once its finalizers (none) are done
            try:
                await client.call("GET", path)
            except RuntimeError:
                break
            await asyncio.sleep(0.1)
        await client.call("POST", MD_PATH.format(ns=NAMESPACE), deployment(name))
        return
    await client.call("PATCH", path, patch, "application/merge-patch+json")


async def serve_touched(
    client: Client, stand_in: KServeStandIn, touched: dict[str, float], late: Counter[str]
) -> None:
    """KServe's part for the deployments changed or served in the last two minutes (a new
    version goes through a canary, then its promotion): each InferenceService and canary Ready.
    Every 30 s the deployments not Healthy are served too, whenever they changed: those that
    had dropped out of the two minutes are counted in `late` (their rollout waited that long).
    Any failed answer (the object deleted between read and write by a re-create, an error page
    that is not JSON) is said and the rest goes on: an exception ending this task would stop
    KServe's part for the rest of the soak, and the canaries changed after it would be rolled
    back at their progressDeadline."""
    listed = 0.0
    while True:
        if time.monotonic() - listed > 30:
            listed = time.monotonic()
            try:
                listing = await client.call("GET", MD_PATH.format(ns=NAMESPACE))
            except Exception as error:  # said; listed again in 30 s
                print(f"listing the deployments failed: {error!r}", file=sys.stderr)
                listing = {"items": []}
            for item in listing["items"]:
                name = item["metadata"]["name"]
                if (item.get("status") or {}).get("phase") != "Healthy":
                    if name not in touched:
                        late[name] += 1
                    touched[name] = time.monotonic()
        for name, when in list(touched.items()):
            if time.monotonic() - when > 120:
                touched.pop(name, None)
                continue
            try:
                if await stand_in.serve(name):
                    touched[name] = time.monotonic()  # its rollout goes on: keep serving it
            except Exception as error:  # said; served at the next pass
                print(f"KServe's part for {name} failed: {error!r}", file=sys.stderr)
        await asyncio.sleep(1)


async def every_one_healthy(client: Client, stand_in: KServeStandIn, names: list[str]) -> None:
    """At the end: KServe's part for all of them until each is Healthy (it kept up)."""
    deadline = time.monotonic() + 300
    while await healthy(client) < len(names):
        if time.monotonic() > deadline:
            await settle(client, names, deadline_seconds=0)  # raises, naming the stuck ones
        await asyncio.gather(*(stand_in.serve(name) for name in names))
        await asyncio.sleep(2)


async def measure(count: int, minutes: float, rate: float, sample: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="modelops-soak-") as folder:
        plane = ControlPlane(Path(folder))
        plane.start(progress=True)
        client = Client(plane)
        operator = start_operator(plane)
        touched: dict[str, float] = {}
        stand_in = KServeStandIn(client)
        late: Counter[str] = Counter()
        server = asyncio.create_task(serve_touched(client, stand_in, touched, late))
        try:
            await client.namespace(NAMESPACE)
            names = [f"md-{i}" for i in range(count)]
            await asyncio.gather(
                *(client.call("POST", MD_PATH.format(ns=NAMESPACE), deployment(n)) for n in names)
            )
            await settle(client, names)
            late.clear()  # the creates' first serving is not the churn's
            samples: list[tuple[float, float]] = []
            done: Counter[str] = Counter()
            started = time.monotonic()
            next_sample, version = started, 2
            while (now := time.monotonic()) - started < minutes * 60:
                if now >= next_sample:
                    if server.done():  # KServe's part stopped: its exception ends the soak
                        server.result()
                        raise RuntimeError("KServe's stand-in stopped")
                    samples.append((round(now - started), round(rss_mib(operator.pid), 1)))
                    print(f"{samples[-1][0]:>6} s  RSS {samples[-1][1]} MiB  {dict(done)}",
                          flush=True)  # fmt: skip
                    next_sample += sample
                name, operation = random.choice(names), random.choice(OPERATIONS)
                version += 1
                await churn_once(client, name, operation, version)
                touched[name] = time.monotonic()
                done[operation] += 1
                await asyncio.sleep(1 / rate)
            samples.append((round(time.monotonic() - started), round(rss_mib(operator.pid), 1)))
            await every_one_healthy(client, stand_in, names)
        finally:
            server.cancel()
            stop(operator)
            await client.close()
            plane.stop()
    warm = next(rss for at, rss in samples if at >= minutes * 60 / 6)
    last = samples[-1][1]
    return {
        "benchmark": "soak", "count": count, "minutes": minutes, "operations": dict(done),
        "rss_after_warm_up_mib": warm, "rss_last_mib": last,
        "rss_max_mib": max(rss for _, rss in samples),
        "growth_percent": round((last - warm) / warm * 100, 1), "goal_growth_percent": 5,
        "not_healthy_after_two_minutes": len(late),
        "samples": samples, "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d"),
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=4, help="operations a second")
    parser.add_argument("--sample", type=float, default=30, help="seconds between RSS samples")
    arguments = parser.parse_args()
    result = asyncio.run(
        measure(arguments.count, arguments.minutes, arguments.rate, arguments.sample)
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['count']} deployments, {result['minutes']:g} min of churn: "
          f"{result['operations']}")  # fmt: skip
    print(f"RSS after warm-up {result['rss_after_warm_up_mib']} MiB, last "
          f"{result['rss_last_mib']} MiB, max {result['rss_max_mib']} MiB: growth "
          f"{result['growth_percent']}% (goal < 5%)")  # fmt: skip
    print(f"deployments still not Healthy two minutes after their last change: "
          f"{result['not_healthy_after_two_minutes']}")  # fmt: skip
    return 0  # a goal missed is reported, not an error: the next benchmark still runs


if __name__ == "__main__":
    sys.exit(main())
