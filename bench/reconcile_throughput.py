"""Benchmark: N ModelDeployments applied at once -> every InferenceService written.

Measured in one run on one real control plane:
  baseline  a bare aiohttp client doing, per deployment, the same create plus the necessary
            writes (create the InferenceService, write the status), 64 requests in flight, all
            inside its clock (the floor of the operator's clock);
  applied   the same, the InferenceService written by server-side apply as the operator
            writes it (field ownership costs the API server more than a create): how much
            of the gap to the floor is that;
  shaped    the applying floor with the operator's own bodies (the InferenceService and status
            that its pure core decides, computed before the clock starts), plus what it costs
            the API server besides its writes: one "Created" Event per deployment and its three
            watches (deployments, InferenceServices, Jobs) open and read. What remains between
            this and the operator is the operator's own doing (its CPU, its scheduling);
  operator  `modelops run -n bench` reconciling N deployments created at once (64 in flight),
            timed from the first create until the last InferenceService is seen on a watch;
  shaped, after  the shaped floor once more, after the operator (on the fullest etcd): how
            much running last costs whoever runs last.
Reports both times, their ratio (goal <= 1.2), the p50/p99 latency from a deployment's create
returning to its InferenceService appearing (reported, no goal: in a burst it is the queue), and
the operator's RSS after the burst (the memory goal is measured after start-up, by latency.py).

    .venv/bin/python bench/reconcile_throughput.py [--count 1000] [--audit]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from modelops.api.resource import ModelDeployment
from modelops.core.reconcile import decide
from modelops_dev.control_plane import OPERATOR_USER, ControlPlane

CONCURRENCY = 64
MD_PATH = "/apis/modelops.io/v1alpha1/namespaces/{ns}/modeldeployments"
ISVC_PATH = "/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices"


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_process(plane: ControlPlane, operator: int | None = None) -> dict[str, float]:
    """CPU seconds so far of the control plane's processes, this client and the operator: the
    differences over a phase say where two cores went."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    found = {"client": usage.ru_utime + usage.ru_stime}
    pids = {name: pid for name, pid in plane.pids.items() if name != "kube-scheduler"}
    if operator is not None:
        pids["operator"] = operator
    found.update({name: cpu_seconds(pid) for name, pid in pids.items()})
    return found


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 1) for name in after}


def operator_requests(plane: ControlPlane) -> Counter[str]:
    """The operator's requests by verb and resource, from the audit log."""
    found: Counter[str] = Counter()
    for line in plane.audit_log.read_text().splitlines():
        entry = json.loads(line)
        if entry["user"]["username"] == OPERATOR_USER:
            ref = entry.get("objectRef") or {}
            found[" ".join((entry["verb"], *filter(None, (ref.get("resource"),
                                                         ref.get("subresource")))))] += 1  # fmt: skip
    return found


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "bench-model", "version": "1"},
            "serving": {"modelFormat": {"name": "sklearn"}, "storageUri": f"s3://bench/{name}"},
        },
    }


def inference_service(name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/managed-by": "modelops"},
            "ownerReferences": [{"apiVersion": "modelops.io/v1alpha1", "kind": "ModelDeployment",
                                 "name": name, "uid": uid, "controller": True}],
        },
        "spec": {"predictor": {"minReplicas": 1, "model": {
            "modelFormat": {"name": "sklearn"}, "protocolVersion": "v2", "storageUri": f"s3://bench/{name}"}}},
    }  # fmt: skip


class Client:
    def __init__(self, plane: ControlPlane) -> None:
        context = ssl.create_default_context(cafile=str(plane.directory / "pki" / "ca.crt"))
        self.server = plane.server
        self.plane = plane
        self.cpu: dict[str, dict[str, float]] = {}  # CPU seconds per process, per phase
        self.session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {plane.token()}"},
            connector=aiohttp.TCPConnector(ssl=context, limit=CONCURRENCY),
            timeout=aiohttp.ClientTimeout(total=120),
        )
        self.gate = asyncio.Semaphore(CONCURRENCY)

    async def call(
        self, method: str, path: str, body: Any = None, ctype: str = "application/json"
    ) -> Any:
        async with (
            self.gate,
            self.session.request(
                method,
                self.server + path,
                data=json.dumps(body) if body is not None else None,
                headers={"Content-Type": ctype},
            ) as response,
        ):
            payload = await response.json()
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {payload.get('message')}")
            return payload

    async def namespace(self, name: str) -> None:
        await self.call("POST", "/api/v1/namespaces", {"metadata": {"name": name}})

    async def close(self) -> None:
        await self.session.close()


def event(name: str, uid: str, ns: str) -> dict[str, Any]:
    """The Event the operator posts when it creates a deployment's InferenceService."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{name}.", "namespace": ns},
        "involvedObject": {"apiVersion": "modelops.io/v1alpha1", "kind": "ModelDeployment",
                           "name": name, "namespace": ns, "uid": uid},
        "type": "Normal", "reason": "Created", "message": f"Created InferenceService {name}",
        "source": {"component": "modelops"}, "reportingComponent": "modelops",
        "reportingInstance": "bench", "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }  # fmt: skip


async def drain(client: Client, path: str, selector: str = "") -> None:
    """Read (and parse) a watch until cancelled, as the operator's informers do."""
    url = f"{client.server}{path}?watch=true&allowWatchBookmarks=true"
    if selector:
        url += f"&labelSelector={selector}"
    async with client.session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as response:
        async for line in response.content:
            json.loads(line)


UID_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"


def operator_bodies(
    name: str, ns: str, labels: dict[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The InferenceService and status patch the operator's core decides for a new deployment
    (its owner's uid a placeholder, filled in once the deployment exists)."""
    body = deployment(name)
    body["metadata"].update(namespace=ns, uid=UID_PLACEHOLDER, generation=1)
    if labels:
        body["metadata"]["labels"] = labels
    decision = decide(ModelDeployment.model_validate(body), None, datetime.now(UTC))
    assert decision.inference_service is not None
    status = decision.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return decision.inference_service, {"status": status}


def with_uid(service: dict[str, Any], uid: str) -> dict[str, Any]:
    return json.loads(json.dumps(service).replace(UID_PLACEHOLDER, uid))


async def apply_service(client: Client, ns: str, name: str, service: dict[str, Any]) -> None:
    await client.call("PATCH", ISVC_PATH.format(ns=ns) + f"/{name}"
                      "?fieldManager=modelops&force=true", service,
                      "application/apply-patch+yaml")  # fmt: skip


async def write_as_operator(
    client: Client, ns: str, name: str, uid: str, bodies: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """What the operator writes for a new deployment (`bodies`: operator_bodies): its
    InferenceService by apply, its status, its "Created" Event."""
    service, status = bodies
    await apply_service(client, ns, name, with_uid(service, uid))
    await client.call("PATCH", MD_PATH.format(ns=ns) + f"/{name}/status", status,
                      "application/merge-patch+json")  # fmt: skip
    await client.call("POST", f"/api/v1/namespaces/{ns}/events", event(name, uid, ns))


async def baseline(
    client: Client,
    count: int,
    *,
    apply: bool = False,
    shaped: bool = False,
    namespace: str | None = None,
) -> float:
    """The floor of the operator's clock: the same creates and, per deployment, the necessary
    writes (the InferenceService, one status write), all inside the timing. With `apply` the
    InferenceService is written by server-side apply, as the operator does; `shaped` writes the
    operator's own bodies by apply, posts its Event and holds its three watches open."""
    ns = namespace or ("baseline-shaped" if shaped else "baseline-apply" if apply else "baseline")
    await client.namespace(ns)
    watches = []
    if shaped:
        for path in (MD_PATH, ISVC_PATH, "/apis/batch/v1/namespaces/{ns}/jobs"):
            watches.append(asyncio.create_task(drain(client, path.format(ns=ns))))
        await asyncio.sleep(0.5)
    bodies = {f"md-{i}": operator_bodies(f"md-{i}", ns) for i in range(count)} if shaped else {}
    plain_status = {
        "status": {"observedGeneration": 1, "phase": "Pending", "inferenceService": "x"}
    }

    async def one(i: int) -> None:
        body = await client.call("POST", MD_PATH.format(ns=ns), deployment(f"md-{i}"))
        name, uid = body["metadata"]["name"], body["metadata"]["uid"]
        if shaped:
            await write_as_operator(client, ns, name, uid, bodies[name])
            return
        service = inference_service(name, uid)
        if apply:
            await apply_service(client, ns, name, service)
        else:
            await client.call("POST", ISVC_PATH.format(ns=ns), service)
        await client.call("PATCH", MD_PATH.format(ns=ns) + f"/{name}/status", plain_status,
                          "application/merge-patch+json")  # fmt: skip

    before = cpu_by_process(client.plane)
    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    elapsed = time.perf_counter() - started
    client.cpu[ns] = spent(before, cpu_by_process(client.plane))
    for watch in watches:
        watch.cancel()
    await asyncio.gather(*watches, return_exceptions=True)
    return elapsed


async def watch_added(
    client: Client, path: str, seen: dict[str, float], count: int, prefix: str = ""
) -> None:
    """When each object under `path` (in a namespace starting with `prefix`) was first seen
    ADDED. A watch the API server ends is opened again from where it stopped."""
    version = ""
    while len(seen) < count:
        url = f"{client.server}{path}?watch=true&allowWatchBookmarks=true"
        if version:
            url += f"&resourceVersion={version}"
        async with client.session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as response:
            if response.status != 200:  # a CRD's storage still initializing answers 429
                await asyncio.sleep(1)
                continue
            async for line in response.content:
                event = json.loads(line)
                metadata = event["object"].get("metadata", {})
                if event["type"] == "ERROR":
                    version = ""  # expired: a fresh watch replays every object as ADDED
                    break
                version = metadata.get("resourceVersion", version)
                if event["type"] == "ADDED" and metadata.get("namespace", "").startswith(prefix):
                    key = f"{metadata['namespace']}/{metadata['name']}"
                    seen.setdefault(key, time.perf_counter())
                    if len(seen) >= count:
                        return


async def watch_services(client: Client, ns: str, seen: dict[str, float], count: int) -> None:
    found: dict[str, float] = {}
    await watch_added(client, ISVC_PATH.format(ns=ns), found, count)
    seen.update({key.split("/", 1)[1]: when for key, when in found.items()})


async def with_operator(client: Client, plane: ControlPlane, count: int) -> dict[str, Any]:
    ns = "bench"
    await client.namespace(ns)
    log = open(plane.logs / "operator.log", "ab")  # noqa: SIM115
    env = {**os.environ, "KUBECONFIG": str(plane.operator_kubeconfig)}
    operator = subprocess.Popen(
        [sys.executable, "-m", "modelops.cli", "run", "-n", ns, "--liveness", "none", "--metrics-port", "0"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        await asyncio.sleep(5)  # start-up is not what is measured
        profile = os.environ.get("BENCH_PROFILE")  # a py-spy raw profile of the operator
        if profile:
            subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "-p",
                    str(operator.pid),
                    "-d",
                    "25",
                    "-f",
                    "raw",
                    "-o",
                    profile,
                ]
            )
        seen: dict[str, float] = {}
        created_at: dict[str, float] = {}
        watcher = asyncio.create_task(watch_services(client, ns, seen, count))
        await asyncio.sleep(0.5)

        async def create(i: int) -> None:
            await client.call("POST", MD_PATH.format(ns=ns), deployment(f"md-{i}"))
            created_at[f"md-{i}"] = time.perf_counter()

        before = cpu_by_process(plane, operator.pid)
        started = time.perf_counter()
        await asyncio.gather(*(create(i) for i in range(count)))
        await asyncio.wait_for(watcher, timeout=300)
        client.cpu["operator"] = spent(before, cpu_by_process(plane, operator.pid))
        elapsed = max(seen.values()) - started
        latencies = sorted(max(0.0, seen[name] - created_at[name]) for name in created_at)
        return {
            "cpu": cpu_seconds(operator.pid),
            "elapsed": elapsed,
            "p50": statistics.median(latencies),
            "p99": latencies[int(len(latencies) * 0.99) - 1],
            "rss_mib": rss_mib(operator.pid),
        }
    finally:
        operator.terminate()
        operator.wait(timeout=30)


async def run(count: int, audit: bool) -> int:
    requests: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="modelops-bench-") as folder:
        plane = ControlPlane(Path(folder), audited=audit)
        plane.start(progress=True)
        client = Client(plane)
        try:
            # Untimed: the API server's first thousand requests are slower (caches, the
            # first watch cache, connections); whichever phase came first paid for it.
            await baseline(client, max(count // 4, 1), namespace="warm-up")
            base = await baseline(client, count)
            applied = await baseline(client, count, apply=True)
            shaped = await baseline(client, count, shaped=True)
            measured = await with_operator(client, plane, count)
            # The same floor again, after the operator: whether the phase that runs last (on
            # the fullest etcd) is slower for it, whoever does the work.
            shaped_after = await baseline(
                client, count, shaped=True, namespace="baseline-shaped-after"
            )
            if audit:
                requests = operator_requests(plane)
        finally:
            await client.close()
            plane.stop()
    ratio = measured["elapsed"] / base
    print(f"deployments:           {count}")
    print(f"bare client (baseline): {base:.2f} s")
    print(f"operator:               {measured['elapsed']:.2f} s")
    print(f"ratio operator/bare:    {ratio:.2f}     (goal <= 1.2)")
    print(f"bare client, applying:  {applied:.2f} s (ratio {measured['elapsed'] / applied:.2f})")
    print(
        f"bare client, operator's bodies, Events, watches: {shaped:.2f} s "
        f"(ratio {measured['elapsed'] / shaped:.2f})"
    )
    print(
        f"the same floor after the operator: {shaped_after:.2f} s "
        f"(ratio {measured['elapsed'] / shaped_after:.2f})"
    )
    print(f"latency p50 / p99:      {measured['p50']:.3f} s / {measured['p99']:.3f} s")
    print(f"operator CPU time:       {measured['cpu']:.1f} s (start-up included)")
    print(f"operator RSS:           {measured['rss_mib']:.0f} MiB (after the burst)")
    print("CPU seconds per phase (the floors, the operator's burst, the shaped floor again):")
    for phase, used in client.cpu.items():
        if phase != "warm-up":
            print(
                f"  {phase:15} " + ", ".join(f"{name} {value:.1f}" for name, value in used.items())
            )
    if audit:
        print("the operator's requests (audit log): "
              + ", ".join(f"{what} {n}" for what, n in requests.most_common()))  # fmt: skip
        return 0  # the audit log costs the API server CPU the floor does not pay: not recorded
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    figures = {
        "benchmark": "burst", "count": count, "floor_s": round(base, 2),
        "floor_applying_s": round(applied, 2), "floor_shaped_s": round(shaped, 2),
        "floor_shaped_after_s": round(shaped_after, 2),
        "operator_s": round(measured["elapsed"], 2),
        "ratio": round(ratio, 2), "goal_ratio": 1.2,
        "p50_s": round(measured["p50"], 3), "p99_s": round(measured["p99"], 3),
        "rss_mib": round(measured["rss_mib"], 1), "cpu_s": round(measured["cpu"], 1),
        "cpu_seconds_per_phase": {k: v for k, v in client.cpu.items() if k != "warm-up"},
        "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d"),
    }  # fmt: skip
    (results / "burst.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument(
        "--audit",
        action="store_true",
        help="count the operator's requests in the audit log (not recorded)",
    )
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.count, args.audit)))
