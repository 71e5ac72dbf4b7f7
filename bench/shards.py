"""Benchmark: N ModelDeployments over several namespaces and S shards (S operator processes).

Measured in one run on one real control plane:
  floor     a bare aiohttp client doing, for every deployment, its create plus the operator's
            necessary writes (create the InferenceService, write the status), 64 in flight,
            all inside its clock;
  shaped    the same with the shards' own bodies (the InferenceService and status their core
            decides) written by apply, their "Created" Events and each shard's three watches
            open and read: the API server's share of what the shards do;
  shards    S `modelops run --shard sK` processes; the N deployments (labelled round robin
            modelops.io/shard=sK) created at once, timed from the first create until the last
            InferenceService is seen on a watch (--cold-start: the deployments exist first and
            the clock starts with the processes).
Reports both times and their ratio (goal <= 1.5 at 10,000 over 4 shards), each process's RSS
and CPU, and checks from the API server's audit log that every deployment was written by
exactly one process: its own shard (user agent `modelops shard=sK`). Counts the 429s the API
server answered in the measured window (its apiserver_request_total).

    .venv/bin/python bench/shards.py [--count 10000] [--shards 4] [--namespaces 4]
                                     [--kube-api-qps 0] [--cold-start]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from modelops_dev.control_plane import OPERATOR_USER, READ_VERBS, ControlPlane

sys.path.insert(0, str(Path(__file__).parent))
from reconcile_throughput import (
    ISVC_PATH,
    MD_PATH,
    Client,
    cpu_seconds,
    deployment,
    drain,
    inference_service,
    operator_bodies,
    rss_mib,
    watch_added,
    write_as_operator,
)

RESULTS = Path(__file__).parent / "results"
ALL_SERVICES = "/apis/serving.kserve.io/v1beta1/inferenceservices"
SHARD_LABEL = "modelops.io/shard"
STATUS = {"status": {"observedGeneration": 1, "phase": "Pending", "inferenceService": "x"}}


def proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds, RSS MiB) of a process."""
    return cpu_seconds(pid), rss_mib(pid)


def labelled(name: str, shard: str) -> dict[str, Any]:
    body = deployment(name)
    body["metadata"]["labels"] = {SHARD_LABEL: shard}
    return body


async def floor(client: Client, count: int, namespaces: list[str]) -> float:
    """The same creates and the necessary writes, by a bare client, all in its clock."""

    async def one(i: int) -> None:
        ns, name = namespaces[i % len(namespaces)], f"md-{i}"
        created = await client.call("POST", MD_PATH.format(ns=ns), deployment(name))
        await client.call("POST", ISVC_PATH.format(ns=ns),
                          inference_service(name, created["metadata"]["uid"]))  # fmt: skip
        await client.call("PATCH", MD_PATH.format(ns=ns) + f"/{name}/status", STATUS,
                          "application/merge-patch+json")  # fmt: skip

    for ns in namespaces:
        await client.namespace(ns)
    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - started


async def shaped_floor(client: Client, count: int, shards: int, namespaces: list[str]) -> float:
    """The floor with the shards' own bodies (the InferenceService and status their core
    decides, computed before the clock starts) written by apply, their Events, and each shard's
    three watches open and read: the API server's share of the shards' work."""
    for ns in namespaces:
        await client.namespace(ns)
    # Shard labels the shards started later do not own (they would reconcile these).
    watches = [
        asyncio.create_task(drain(client, path, f"{SHARD_LABEL}=floor-s{k}"))
        for k in range(shards)
        for path in (
            "/apis/modelops.io/v1alpha1/modeldeployments",
            ALL_SERVICES,
            "/apis/batch/v1/jobs",
        )
    ]
    await asyncio.sleep(0.5)
    placed = [
        (namespaces[i % len(namespaces)], f"md-{i}", f"floor-s{i % shards}") for i in range(count)
    ]
    bodies = {name: operator_bodies(name, ns, {SHARD_LABEL: shard}) for ns, name, shard in placed}

    async def one(ns: str, name: str, shard: str) -> None:
        created = await client.call("POST", MD_PATH.format(ns=ns), labelled(name, shard))
        await write_as_operator(client, ns, name, created["metadata"]["uid"], bodies[name])

    started = time.perf_counter()
    await asyncio.gather(*(one(*where) for where in placed))
    elapsed = time.perf_counter() - started
    for watch in watches:
        watch.cancel()
    await asyncio.gather(*watches, return_exceptions=True)
    return elapsed


def start_shards(plane: ControlPlane, shards: int, limit: list[str]) -> dict[str, Any]:
    env = {**os.environ, "KUBECONFIG": str(plane.operator_kubeconfig)}
    processes = {}
    for k in range(shards):
        log = open(plane.logs / f"shard-s{k}.log", "ab")  # noqa: SIM115
        processes[f"s{k}"] = subprocess.Popen(
            [sys.executable, "-m", "modelops.cli", "run", "--shard", f"s{k}",
             "--liveness", "none", "--metrics-port", "0", *limit],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    return processes


async def rejected_429(client: Client) -> int:
    """Requests the API server has answered 429 so far (its own apiserver_request_total)."""
    async with client.session.get(client.server + "/metrics") as response:
        text = await response.text()
    return int(sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
        if line.startswith("apiserver_request_total{") and 'code="429"' in line
    ))  # fmt: skip


async def sharded(client: Client, plane: ControlPlane, count: int, shards: int,
                  namespaces: list[str], limit: list[str], cold: bool) -> dict[str, Any]:  # fmt: skip
    """Time to every InferenceService. Burst: the shards run, the deployments are created at
    once. Cold start: the deployments exist first, then the shards start (start-up counted)."""
    for ns in namespaces:
        await client.namespace(ns)

    async def create(i: int) -> None:
        ns = namespaces[i % len(namespaces)]
        await client.call("POST", MD_PATH.format(ns=ns), labelled(f"md-{i}", f"s{i % shards}"))

    seen: dict[str, float] = {}
    watcher = asyncio.create_task(watch_added(client, ALL_SERVICES, seen, count, "shard-"))
    if cold:
        await asyncio.gather(*(create(i) for i in range(count)))
    processes = start_shards(plane, shards, limit)
    try:
        if not cold:
            await asyncio.sleep(8)  # start-up is not what is measured
        before = {name: proc_stats(p.pid) for name, p in processes.items()}
        refused_before = await rejected_429(client)
        started = time.perf_counter()
        if not cold:
            await asyncio.gather(*(create(i) for i in range(count)))
        await asyncio.wait_for(watcher, timeout=1800)
        elapsed = max(seen.values()) - started
        after = {name: proc_stats(p.pid) for name, p in processes.items()}
        return {
            "elapsed": elapsed,
            "api_server_429s": await rejected_429(client) - refused_before,
            "processes": {
                name: {
                    "cpu_s": round(after[name][0] - before[name][0], 1),
                    "rss_mib": round(after[name][1], 1),
                }
                for name in processes
            },
        }
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=30)


def writers_by_deployment(
    plane: ControlPlane,
) -> tuple[dict[tuple[str, str], set[str]], Counter[str]]:
    """(namespace, name) -> the user agents of the operator's writes to it and its objects;
    and the writes counted by resource."""
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    counted: Counter[str] = Counter()
    with plane.audit_log.open() as log:
        for line in log:
            entry = json.loads(line)
            ref = entry.get("objectRef") or {}
            if (entry["user"]["username"] == OPERATOR_USER
                    and entry["verb"] not in READ_VERBS
                    and ref.get("resource") in ("modeldeployments", "inferenceservices")
                    and str(ref.get("namespace", "")).startswith("shard-")):  # fmt: skip
                found[ref["namespace"], ref["name"]].add(entry.get("userAgent", ""))
                counted["/".join(filter(None, (ref["resource"], ref.get("subresource"))))] += 1
    return found, counted


async def run(count: int, shards: int, namespace_count: int, qps: str | None, cold: bool) -> int:
    limit = [] if qps is None else ["--kube-api-qps", qps]
    with tempfile.TemporaryDirectory(prefix="modelops-bench-") as folder:
        plane = ControlPlane(Path(folder))
        plane.start(progress=True)
        client = Client(plane)
        try:
            base = await floor(client, count, [f"floor-{n}" for n in range(namespace_count)])
            print(f"floor: {base:.1f} s", flush=True)
            shaped = await shaped_floor(
                client, count, shards, [f"shaped-{n}" for n in range(namespace_count)]
            )
            print(f"floor with the shards' bodies, Events and watches: {shaped:.1f} s", flush=True)
            measured = await sharded(client, plane, count, shards,
                                     [f"shard-{n}" for n in range(namespace_count)], limit, cold)  # fmt: skip
            writers, writes = writers_by_deployment(plane)
        finally:
            await client.close()
            plane.stop()
    wrong = {key: agents for key, agents in writers.items()
             if agents != {f"modelops shard=s{int(key[1].split('-')[1]) % shards}"}}  # fmt: skip
    ratio = measured["elapsed"] / base
    result = {
        "benchmark": "shards", "count": count, "shards": shards, "namespaces": namespace_count,
        "floor_s": round(base, 2), "operator_s": round(measured["elapsed"], 2),
        "ratio": round(ratio, 2), "goal_ratio": 1.5, "processes": measured["processes"],
        "floor_shaped_s": round(shaped, 2), "ratio_to_shaped": round(measured["elapsed"] / shaped, 2),
        "mode": "cold start" if cold else "burst", "kube_api_qps": qps or "default",
        "api_server_429s": measured["api_server_429s"],
        "deployments_written": len(writers), "writes": dict(writes), "written_by_other_than_their_shard": len(wrong),
        "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d"),
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    variant = ("-cold" if cold else "") + ("" if qps is None else f"-qps{qps}")
    (RESULTS / f"shards{variant}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"deployments: {count} over {namespace_count} namespaces and {shards} shards")
    print(f"floor (bare client, creates + necessary writes): {base:.1f} s")
    print(f"shards, first create -> last InferenceService:   {measured['elapsed']:.1f} s")
    print(f"ratio: {ratio:.2f} (goal <= 1.5)")
    print(f"floor with the shards' bodies, Events and watches: {shaped:.1f} s "
          f"(ratio {measured['elapsed'] / shaped:.2f})")  # fmt: skip
    print(f"429s from the API server: {measured['api_server_429s']} "
          f"(client limit: --kube-api-qps {qps or 'default'})")  # fmt: skip
    for name, figures in measured["processes"].items():
        print(f"  {name}: CPU {figures['cpu_s']} s, RSS {figures['rss_mib']} MiB")
    print(f"deployments written: {len(writers)}; by another than their shard: {len(wrong)}")
    print(f"writes: {dict(writes)}")
    return 0 if not wrong and len(writers) == count else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--namespaces", type=int, default=4)
    parser.add_argument("--kube-api-qps", default=None,
                        help="the shards' client limit (0: none); default the operator's")  # fmt: skip
    parser.add_argument("--cold-start", action="store_true",
                        help="create the deployments first, then start the shards")  # fmt: skip
    arguments = parser.parse_args()
    sys.exit(asyncio.run(run(arguments.count, arguments.shards, arguments.namespaces,
                             arguments.kube_api_qps, arguments.cold_start)))  # fmt: skip
