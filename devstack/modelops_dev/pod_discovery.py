"""Pod discovery for the local Prometheus (development only).

Debian's `prometheus` package is built without kubernetes_sd (Debian drops client-go), so
this process plays that one part: it watches Pods on the real API server and writes them as
file_sd target groups carrying the same `__meta_kubernetes_pod_*` labels kubernetes_sd's pod
role produces (one group per container port, like kubernetes_sd). The relabelling in the
Prometheus configuration is therefore the one a cluster uses.

    python -m modelops_dev.pod_discovery --kubeconfig K --out targets.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
from pathlib import Path
from typing import Any

import aiohttp

from modelops.adapters.kubernetes import ApiError, KubernetesApi
from modelops_dev.kubelet import connection_from_kubeconfig

logger = logging.getLogger("modelops.pod_discovery")
META = "__meta_kubernetes_"


def _sanitize(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def target_groups(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """kubernetes_sd's pod-role targets for one Pod (none until it has an address)."""
    meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    address = status.get("podIP")
    if not address:
        return []
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])
    )
    labels = {
        f"{META}namespace": meta["namespace"],
        f"{META}pod_name": meta["name"],
        f"{META}pod_ip": address,
        f"{META}pod_uid": meta.get("uid", ""),
        f"{META}pod_phase": status.get("phase", ""),
        f"{META}pod_ready": str(ready).lower(),
        f"{META}pod_node_name": spec.get("nodeName", ""),
        f"{META}pod_host_ip": status.get("hostIP", ""),
    }
    for key, value in (meta.get("labels") or {}).items():
        labels[f"{META}pod_label_{_sanitize(key)}"] = value
        labels[f"{META}pod_labelpresent_{_sanitize(key)}"] = "true"
    for key, value in (meta.get("annotations") or {}).items():
        labels[f"{META}pod_annotation_{_sanitize(key)}"] = value
        labels[f"{META}pod_annotationpresent_{_sanitize(key)}"] = "true"
    for owner in meta.get("ownerReferences") or []:
        if owner.get("controller"):
            labels[f"{META}pod_controller_kind"] = owner["kind"]
            labels[f"{META}pod_controller_name"] = owner["name"]
    groups = []
    for container in spec.get("containers", []):
        base = {**labels, f"{META}pod_container_name": container["name"]}
        ports = container.get("ports") or []
        if not ports:
            groups.append({"targets": [address], "labels": base})
        for port in ports:
            groups.append({
                "targets": [f"{address}:{port['containerPort']}"],
                "labels": {**base, f"{META}pod_container_port_name": port.get("name", ""),
                           f"{META}pod_container_port_number": str(port["containerPort"]),
                           f"{META}pod_container_port_protocol": port.get("protocol", "TCP")},
            })  # fmt: skip
    return groups


class Discovery:
    def __init__(self, api: KubernetesApi, out: Path) -> None:
        self.api, self.out = api, out
        self.pods: dict[str, dict[str, Any]] = {}

    def write(self) -> None:
        groups = [g for pod in self.pods.values() for g in target_groups(pod)]
        temporary = self.out.with_suffix(".tmp")
        temporary.write_text(json.dumps(groups, indent=1))
        os.replace(temporary, self.out)  # Prometheus never reads a half-written file

    async def follow(self) -> None:
        while True:
            try:
                listing = await self.api.request("GET", "/api/v1/pods")
                self.pods = {p["metadata"]["uid"]: p for p in listing.get("items", [])}
                self.write()
                version = listing["metadata"]["resourceVersion"]
                async for kind, pod in self.api.watch("/api/v1/pods", {"resourceVersion": version}):
                    if kind == "DELETED":
                        self.pods.pop(pod["metadata"]["uid"], None)
                    else:
                        self.pods[pod["metadata"]["uid"]] = pod
                    self.write()
            except (aiohttp.ClientError, TimeoutError, ApiError) as error:
                logger.warning("Pod watch ended (%s); listing again", error)
                await asyncio.sleep(1)


async def main_async(args: argparse.Namespace) -> None:
    api = KubernetesApi(connection_from_kubeconfig(args.kubeconfig), timeout=None)
    discovery = Discovery(api, args.out)
    loop = asyncio.get_running_loop()
    task = loop.create_task(discovery.follow())
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    task.cancel()
    await api.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(main_async(parser.parse_args()))
