"""Benchmark: what 1,000 idle ModelDeployments cost the operator.

N deployments (a pinned storageUri, no rollout) are created and made Healthy (the benchmark
plays KServe's part: it reports each InferenceService Ready). Then nothing changes for a
window, and the operator's CPU time and its API writes (from the API server's audit log) are
measured over it. With --before DIR the same runs first with the operator from another checkout
(for example an older commit in a git worktree), on a fresh control plane, so both are measured
by the same script on the same machine.

    .venv/bin/python bench/idle_cost.py [--count 1000] [--window 60] [--before DIR]
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
from pathlib import Path

from modelops_dev.control_plane import OPERATOR_USER, ControlPlane

sys.path.insert(0, str(Path(__file__).parent))
from reconcile_throughput import ISVC_PATH, MD_PATH, Client, cpu_seconds, deployment

NAMESPACE = "idle"


def operator_writes(plane: ControlPlane, since: float) -> int:
    count = 0
    for line in plane.audit_log.read_text().splitlines():
        entry = json.loads(line)
        if entry["user"]["username"] != OPERATOR_USER or entry["verb"] in ("get", "list", "watch"):
            continue
        stamp = entry.get("requestReceivedTimestamp", "")
        if stamp and time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) >= since:
            count += 1
    return count


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


async def measure(source: Path, count: int, window: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="modelops-idle-") as folder:
        plane = ControlPlane(Path(folder))
        plane.start(progress=True)
        client = Client(plane)
        env = {**os.environ, "KUBECONFIG": str(plane.operator_kubeconfig),
               "PYTHONPATH": str(source / "operator")}  # fmt: skip
        log = open(plane.logs / "operator.log", "ab")  # noqa: SIM115
        operator = subprocess.Popen(
            [sys.executable, "-m", "modelops.cli", "run", "-n", NAMESPACE, "--liveness", "none",
             "--metrics-port", "0"], stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        try:
            await client.namespace(NAMESPACE)
            names = [f"md-{i}" for i in range(count)]
            await asyncio.gather(
                *(client.call("POST", MD_PATH.format(ns=NAMESPACE), deployment(n)) for n in names)
            )
            await settle(client, names)
            await asyncio.sleep(10)  # the last writes settle; the window starts quiet
            started_wall, started_cpu = time.time(), cpu_seconds(operator.pid)
            await asyncio.sleep(window)
            used = cpu_seconds(operator.pid) - started_cpu
            return {"cpu_per_minute": used * 60 / window, "writes": operator_writes(plane, started_wall),
                    "healthy": await healthy(client)}  # fmt: skip
        finally:
            operator.terminate()
            operator.wait(timeout=30)
            await client.close()
            plane.stop()


async def run(count: int, window: float, before: Path | None) -> int:
    results = {}
    if before is not None:
        results["before"] = await measure(before, count, window)
    results["this checkout"] = await measure(Path(__file__).resolve().parents[1], count, window)
    print(f"{count} idle deployments, {window:.0f} s window (2 cores)")
    for label, found in results.items():
        print(f"  {label:14} CPU {found['cpu_per_minute']:.2f} s/min, {found['writes']} API writes, "
              f"{found['healthy']:.0f} Healthy")  # fmt: skip
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "idle_cost.json").write_text(
        json.dumps({"count": count, "window": window, **results}, indent=2)
    )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--window", type=float, default=60)
    parser.add_argument("--before", type=Path, default=None, help="another checkout to compare")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.count, args.window, args.before)))
