"""Benchmark: the monitor's statistics and throughput, on scikit-learn's wine data (13 numeric
features, shipped with scikit-learn).

1. False alarms: 20 windows resampled from the training rows against their reference profile:
   how many features cross the default PSI threshold (goal: none). Then one feature shifted by
   one standard deviation: found in one window, the other twelve below the threshold.
2. Throughput: logged events per second on one core for a 13-feature V2 payload, through the
   engine alone and through the HTTP server (KServe's CloudEvents headers, an aiohttp client in
   the same process: the monitor's share of the core is what it gets).
3. Memory: RSS growth per 1,000 full windows, and under a flood of events to one deployment
   (it must not grow: the window is bounded).

    .venv/bin/python bench/monitor.py [--json bench/results/monitor.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import ClientSession, web
from sklearn.datasets import load_wine

from modelops.monitor.directory import Unknown
from modelops.monitor.drift import drift_of
from modelops.monitor.engine import Monitor, Settings
from modelops.monitor.server import REQUEST_EVENT, MonitorService, build_app
from modelops.monitor.thresholds import DEFAULT_PSI_THRESHOLD
from modelops.monitor.windows import Source
from modelops.profile import ReferenceProfile, build_profile

WINE = load_wine()
NAMES = list(WINE.feature_names)
PROFILE = build_profile(WINE.data, feature_names=NAMES, task="classification")
WINDOW = 200


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def false_alarms(windows: int = 20, seed: int = 1) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    crossings, worst = 0, 0.0
    for _ in range(windows):
        sample = WINE.data[rng.integers(0, len(WINE.data), WINDOW)]
        report = drift_of(PROFILE, sample.tolist())
        crossings += sum(f.drifted for f in report.features)
        worst = max(worst, max(f.psi or 0.0 for f in report.features))
    shifted = WINE.data[rng.integers(0, len(WINE.data), WINDOW)].copy()
    column = NAMES.index("alcohol")
    shifted[:, column] += WINE.data[:, column].std()
    report = drift_of(PROFILE, shifted.tolist())
    found = [f.name for f in report.features if f.drifted]
    others = max(f.psi or 0.0 for f in report.features if f.name != "alcohol")
    return {
        "windows": windows, "window_rows": WINDOW, "threshold": DEFAULT_PSI_THRESHOLD,
        "features_crossing": crossings, "max_psi_unshifted": round(worst, 4),
        "shift_1sd_found": found, "shifted_psi": round(report.features[column].psi or 0, 4),
        "max_psi_other_features": round(others, 4),
    }  # fmt: skip


def payload(rows: np.ndarray) -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP64",
                        "data": rows.ravel().tolist()}]}  # fmt: skip


def engine_throughput(events: int = 20_000) -> float:
    monitor = Monitor(Settings(window=1000, min_samples=200))
    source = Source("bench", "wine", "1", "stable")
    bodies = [payload(WINE.data[i % len(WINE.data)][None, :]) for i in range(256)]
    started = time.process_time()
    for i in range(events):
        monitor.request(source, f"r{i}", bodies[i % 256], PROFILE, now=i)
    return events / (time.process_time() - started)


class OneDeployment:
    async def track(self, namespace: str, name: str, version: str) -> str | Unknown:
        return "stable"

    async def profile(self, namespace: str, name: str, version: str) -> ReferenceProfile | Unknown:
        return PROFILE


async def http_throughput(events: int = 5_000, concurrency: int = 16) -> float:
    service = MonitorService(Monitor(), OneDeployment(), None)  # type: ignore[arg-type]
    runner = web.AppRunner(build_app(service), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    body = json.dumps(payload(WINE.data[0][None, :])).encode()
    sent = 0

    async def client(session: ClientSession) -> None:
        nonlocal sent
        while sent < events:
            sent += 1
            headers = {
                "ce-specversion": "1.0", "ce-type": REQUEST_EVENT, "ce-id": f"r{sent}",
                "ce-source": "bench", "ce-namespace": "bench", "ce-inferenceservicename": "wine",
                "ce-annotations": '{"modelops.io/version": "1"}', "ce-metadata": "{}",
                "Content-Type": "application/json",
            }  # fmt: skip
            async with session.post(f"http://127.0.0.1:{port}/", data=body, headers=headers) as r:
                assert r.status == 202, await r.text()

    started_wall, started_cpu = time.monotonic(), time.process_time()
    async with ClientSession() as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    wall, cpu = time.monotonic() - started_wall, time.process_time() - started_cpu
    await runner.cleanup()
    assert service.monitor.received["request"] == events
    # Client and server share this process and its one core: events per CPU-second of both.
    return events / max(wall, cpu)


def memory(windows: int = 1000, flood: int = 50_000) -> dict[str, float]:
    monitor = Monitor(Settings(window=1000, max_sources=windows + 10))
    rows = payload(WINE.data[:50])
    before = rss_mib()
    for w in range(windows):
        source = Source("bench", f"d{w}", "1", "stable")
        for i in range(20):  # 20 requests of 50 rows: a full window of 1,000 rows
            monitor.request(source, f"{w}-{i}", rows, PROFILE, now=0)
    per_thousand = (rss_mib() - before) * 1000 / windows
    one = Source("bench", "flooded", "1", "stable")
    single = payload(WINE.data[:1])
    for i in range(flood // 2):
        monitor.request(one, f"f{i}", single, PROFILE, now=i)
    half = rss_mib()
    for i in range(flood // 2, flood):
        monitor.request(one, f"f{i}", single, PROFILE, now=i)
    return {
        "rss_per_1000_full_windows_mib": round(per_thousand, 1),
        "flood_events": flood,
        "rss_growth_second_half_of_flood_mib": round(rss_mib() - half, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "monitor.json"
    )
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the goal says
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (pinned to 1), Python {platform.python_version()}",
        "false_alarms": false_alarms(),
        "engine_events_per_second": round(engine_throughput()),
        "http_events_per_second": round(asyncio.run(http_throughput())),
        "memory": memory(),
    }  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    alarms = results["false_alarms"]
    print(f"false alarms: {alarms['features_crossing']} feature crossings in {alarms['windows']} "
          f"windows of {WINDOW} rows (max PSI {alarms['max_psi_unshifted']}, threshold "
          f"{alarms['threshold']}); 1 sd shift of alcohol found: {alarms['shift_1sd_found']} "
          f"(PSI {alarms['shifted_psi']}, others <= {alarms['max_psi_other_features']})")  # fmt: skip
    print(f"throughput on one core: engine {results['engine_events_per_second']}/s, "
          f"HTTP {results['http_events_per_second']}/s (13-feature V2 events)")  # fmt: skip
    print(f"memory: {results['memory']}")


if __name__ == "__main__":
    main()
