"""The router (development only): the ingress gateway and kube-proxy of the local stack.

It serves HTTP on its listen addresses and routes each request by Host header:
- a Gateway API HTTPRoute's hostname and path prefix, to one of its backendRefs chosen by
  weight (smooth weighted round robin, so shares are exact over any window): the split a
  Standard-mode canary needs, which KServe v0.20's own Ingress does not carry,
- an Ingress rule's host (KServe writes `{isvc}-{namespace}.modelops.test` Ingresses),
- or a Service name: `{service}.{namespace}[.svc[.cluster.local]]` (with `:port`, the Service
  port; otherwise its first port),
to a ready endpoint of the Service taken from the real EndpointSlices, round robin, as
kube-proxy spreads a Service's traffic over its pods. Its metrics, at /metrics with Host
`router` (or the router's address), are Istio's standard request metrics, which Istio's
gateways and sidecars and several Gateway API implementations export, so the analysis presets
a user runs on a cluster (istio-*) are the ones the local cluster exercises:
  istio_requests_total{reporter="source", destination_service_name, destination_service_namespace,
                       destination_workload, response_code, response_flags, ...}
  istio_request_duration_milliseconds_bucket{... the same labels}
A request for a Service without a ready endpoint is counted as Envoy does: 503, flag UH.

    python -m modelops_dev.router --kubeconfig K --listen 127.0.0.1:8080 [--listen IP:PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import itertools
import logging
import signal
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from modelops.adapters.kubernetes import ApiError, KubernetesApi
from modelops_dev.kubelet import connection_from_kubeconfig

logger = logging.getLogger("modelops.router")
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length"}

Key = tuple[str, str]  # (namespace, name)
ISTIO_LABELS = ["reporter", "source_workload", "source_workload_namespace", "destination_service",
                "destination_service_name", "destination_service_namespace", "destination_workload",
                "destination_workload_namespace", "request_protocol", "response_code", "response_flags"]  # fmt: skip
# Istio's default buckets for istio_request_duration_milliseconds.
ISTIO_BUCKETS_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
                    300000, 600000, 1800000, 3600000)  # fmt: skip


class Routes:
    """What the watches saw: Ingress rules, Services and their ready endpoints."""

    def __init__(self) -> None:
        self.httproutes: dict[Key, dict[str, Any]] = {}
        self.ingresses: dict[Key, dict[str, Any]] = {}
        self.services: dict[Key, dict[str, Any]] = {}
        self.slices: dict[Key, dict[str, Any]] = {}
        self._turns: dict[Any, itertools.count[int]] = defaultdict(itertools.count)
        self._credits: dict[Any, dict[int, int]] = defaultdict(dict)

    def store(self, kind: str) -> dict[Key, dict[str, Any]]:
        return {
            "httproutes": self.httproutes,
            "ingresses": self.ingresses,
            "services": self.services,
            "endpointslices": self.slices,
        }[kind]

    def resolve(self, host: str, path: str) -> tuple[str, str, int | str] | None:
        """(namespace, service, service port) for a request, or None."""
        name, _, port = host.partition(":")
        routed = self._http_route(name, path)
        if routed is not None:
            return routed
        for (namespace, _), ingress in self.ingresses.items():
            for rule in ingress.get("spec", {}).get("rules", []):
                if rule.get("host") != name:
                    continue
                for candidate in rule.get("http", {}).get("paths", []):
                    if path.startswith(candidate.get("path") or "/"):
                        backend = candidate["backend"]["service"]
                        wanted = backend["port"].get("number") or backend["port"].get("name")
                        return namespace, backend["name"], wanted
        parts = name.split(".")
        if len(parts) >= 2 and (len(parts) == 2 or parts[2] == "svc"):
            return parts[1], parts[0], int(port) if port else 0
        return None

    def _http_route(self, host: str, path: str) -> tuple[str, str, int | str] | None:
        for key, route in sorted(self.httproutes.items()):
            spec = route.get("spec", {})
            if not any(_host_matches(pattern, host) for pattern in spec.get("hostnames", [])):
                continue
            for index, rule in enumerate(spec.get("rules", [])):
                matches = rule.get("matches") or [{}]
                if not any(_path_matches(m.get("path"), path) for m in matches):
                    continue
                backends = [b for b in rule.get("backendRefs", []) if b.get("weight", 1) > 0]
                if not backends:
                    return None
                chosen = self._weighted((key, index), [b.get("weight", 1) for b in backends])
                backend = backends[chosen]
                return backend.get("namespace", key[0]), backend["name"], backend.get("port", 0)
        return None

    def _weighted(self, key: Any, weights: list[int]) -> int:
        """Smooth weighted round robin: each pick goes to the largest accumulated credit."""
        credits = self._credits[(key, tuple(weights))]
        for index, weight in enumerate(weights):
            credits[index] = credits.get(index, 0) + weight
        chosen = max(range(len(weights)), key=lambda i: credits[i])
        credits[chosen] -= sum(weights)
        return chosen

    def endpoint(
        self, namespace: str, service: str, port: int | str
    ) -> tuple[str, int, str] | None:
        """(address, target port, pod name) of a ready endpoint, taking turns."""
        svc = self.services.get((namespace, service))
        if svc is None:
            return None
        ports = svc["spec"].get("ports", [])
        chosen = next((p for p in ports if port in (0, p.get("port"), p.get("name"))), None)
        if chosen is None:
            return None
        port_name = chosen.get("name", "")
        ready: list[tuple[str, int, str]] = []
        for (ns, _), piece in sorted(self.slices.items()):
            labels = piece["metadata"].get("labels", {})
            if ns != namespace or labels.get("kubernetes.io/service-name") != service:
                continue
            target = next(
                (p["port"] for p in piece.get("ports") or [] if p.get("name", "") == port_name),
                None,
            )
            if target is None:
                continue
            for endpoint in piece.get("endpoints") or []:
                if endpoint.get("conditions", {}).get("ready"):
                    pod = endpoint.get("targetRef", {}).get("name", "")
                    ready += [(address, target, pod) for address in endpoint["addresses"]]
        if not ready:
            return None
        return ready[next(self._turns[(namespace, service, port)]) % len(ready)]


def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and host.count(".") >= pattern.count(".")
    return pattern == host


def _path_matches(match: dict[str, Any] | None, path: str) -> bool:
    if not match:
        return True
    value = str(match.get("value", "/"))
    if match.get("type") == "Exact":
        return path == value
    # PathPrefix matches whole segments: /v2 matches /v2/models but not /v2x.
    return value == "/" or path == value or path.startswith(value.rstrip("/") + "/")


def _is_own(name: str) -> bool:
    if name in ("router", "localhost"):
        return True
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


class Router:
    def __init__(self, api: KubernetesApi) -> None:
        self.api = api
        self.routes = Routes()
        self.registry = CollectorRegistry()
        self.requests = Counter("istio_requests", "Requests the router forwarded (Istio's schema).",
                                ISTIO_LABELS, registry=self.registry)  # fmt: skip
        self.duration = Histogram("istio_request_duration_milliseconds", "Time to the backend's full response, in milliseconds (Istio's schema).",
                                  ISTIO_LABELS, buckets=ISTIO_BUCKETS_MS, registry=self.registry)  # fmt: skip
        self.client: aiohttp.ClientSession | None = None

    async def follow(self, path: str, kind: str) -> None:
        store = self.routes.store(kind)
        while True:
            try:
                listing = await self.api.request("GET", path)
                store.clear()
                for item in listing.get("items", []):
                    store[(item["metadata"]["namespace"], item["metadata"]["name"])] = item
                version = listing["metadata"]["resourceVersion"]
                async for event, item in self.api.watch(path, {"resourceVersion": version}):
                    key = (item["metadata"]["namespace"], item["metadata"]["name"])
                    if event == "DELETED":
                        store.pop(key, None)
                    else:
                        store[key] = item
            except (aiohttp.ClientError, TimeoutError, ApiError) as error:
                logger.warning("Watch of %s ended (%s); listing again", kind, error)
                await asyncio.sleep(1)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if _is_own(host.rsplit(":", 1)[0] if host.count(":") == 1 else host):
            # Addressed to the router itself (Host `router`, or its address, as a scraper does).
            if request.path != "/metrics":
                return web.Response(status=404, text="the router serves only /metrics itself\n")
            return web.Response(body=generate_latest(self.registry), content_type="text/plain")
        target = self.routes.resolve(host, request.path)
        if target is None:
            return web.Response(status=404, text=f"no Ingress rule or Service for host {host!r}\n")
        namespace, service, port = target
        if (namespace, service) not in self.routes.services:
            return web.Response(
                status=404, text=f"no Service {namespace}/{service} (host {host!r})\n"
            )
        endpoint = self.routes.endpoint(namespace, service, port)
        if endpoint is None:
            self.record(namespace, service, "", 503, 0.0, flags="UH")
            return web.Response(status=503, text=f"no ready endpoint for {namespace}/{service}\n")
        address, target_port, pod = endpoint
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        started = time.perf_counter()
        assert self.client is not None
        try:
            async with self.client.request(
                request.method, f"http://{address}:{target_port}{request.path_qs}",
                headers=headers, data=await request.read(),
            ) as upstream:  # fmt: skip
                body = await upstream.read()
                response = web.Response(status=upstream.status, body=body,
                                        headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS})  # fmt: skip
        except (aiohttp.ClientError, TimeoutError) as error:
            response = web.Response(
                status=502, text=f"backend {pod} ({address}:{target_port}) failed: {error}\n"
            )
        flags = "UF" if response.status == 502 else "-"
        self.record(namespace, service, pod, response.status, time.perf_counter() - started, flags)
        return response

    def record(self, namespace: str, service: str, pod: str, code: int, seconds: float,
               flags: str = "-") -> None:  # fmt: skip
        """One request in Istio's standard metrics, as the ingress gateway reports it."""
        labels = {
            "reporter": "source", "source_workload": "modelops-router",
            "source_workload_namespace": "modelops-system",
            "destination_service": f"{service}.{namespace}.svc.cluster.local",
            "destination_service_name": service, "destination_service_namespace": namespace,
            "destination_workload": workload_of(pod), "destination_workload_namespace": namespace,
            "request_protocol": "http", "response_code": str(code), "response_flags": flags,
        }  # fmt: skip
        self.requests.labels(**labels).inc()
        self.duration.labels(**labels).observe(seconds * 1000)


def workload_of(pod: str) -> str:
    """The Deployment a pod belongs to, from its name (<deployment>-<replicaset hash>-<id>), as
    Istio names destination_workload; "unknown" without a pod."""
    parts = pod.split("-")
    return "-".join(parts[:-2]) if len(parts) > 2 else (pod or "unknown")


async def main_async(args: argparse.Namespace) -> None:
    api = KubernetesApi(connection_from_kubeconfig(args.kubeconfig), timeout=None)
    router = Router(api)
    router.client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
    loop = asyncio.get_running_loop()
    watches = [
        loop.create_task(
            router.follow("/apis/gateway.networking.k8s.io/v1/httproutes", "httproutes")
        ),
        loop.create_task(router.follow("/apis/networking.k8s.io/v1/ingresses", "ingresses")),
        loop.create_task(router.follow("/api/v1/services", "services")),
        loop.create_task(
            router.follow("/apis/discovery.k8s.io/v1/endpointslices", "endpointslices")
        ),
    ]
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", router.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for listen in args.listen:
        host, _, port = listen.rpartition(":")
        await web.TCPSite(runner, host, int(port)).start()
    if args.ready_file:
        Path(args.ready_file).write_text("ready\n")
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    for task in watches:
        task.cancel()
    with contextlib.suppress(Exception):
        await runner.cleanup()
    await router.client.close()
    await api.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--listen", action="append", required=True, help="HOST:PORT (repeatable)")
    parser.add_argument("--ready-file", help="written once the router listens")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(main_async(parser.parse_args()))
