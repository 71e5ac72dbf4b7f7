"""The objects beside the InferenceService that carry a deployment's traffic: its HTTPRoute and
a logged canary's Service, applied when they change (and again when the route watch reports one
deleted or edited by someone), and what core asks about the workload: the canary Service's
ready endpoints and the pods of a version past its deadline."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from modelops.adapters.kubernetes import KubernetesApi, namespaced_path
from modelops.api.resource import ModelDeployment
from modelops.controller.informer import Key
from modelops.controller.metrics import API_WRITES
from modelops.core.rollout.observe import (
    WorkloadFacts,
    diagnosis_selector,
    endpoint_check,
    matches,
)


class TrafficObjects:
    def __init__(self, api: KubernetesApi) -> None:
        self._api = api
        self._routes: dict[Key, Mapping[str, Any]] = {}
        self._route_generations: dict[Key, int] = {}
        """metadata.generation of the route each last apply wrote."""
        self._canary_services: dict[Key, Mapping[str, Any]] = {}

    def use_api(self, api: KubernetesApi) -> None:
        self._api = api

    def forget(self, key: Key) -> None:
        self._routes.pop(key, None)
        self._route_generations.pop(key, None)
        self._canary_services.pop(key, None)

    def route_changed(self, key: Key, body: Mapping[str, Any], deleted: bool) -> bool:
        """Whether the route the watch reports is no longer the one last applied (deleted, or
        edited by someone): then it is forgotten, and the next reconcile applies it again."""
        applied = self._routes.get(key)
        if applied is None or not (deleted or not matches(dict(applied), dict(body))):
            return False
        # A watch event of an earlier apply of ours can arrive after the next apply: an older
        # generation is that echo, not an edit (an edit makes the generation newer).
        generation = body.get("metadata", {}).get("generation")
        echo = isinstance(generation, int) and generation < self._route_generations.get(key, 0)
        if echo and not deleted:
            return False
        del self._routes[key]
        return True

    async def apply_route(self, key: Key, route: Mapping[str, Any]) -> None:
        if self._routes.get(key) == route:
            return
        path = namespaced_path(
            "gateway.networking.k8s.io", "v1", "httproutes", key[0], route["metadata"]["name"]
        )
        written = await self._api.apply(path, route)
        API_WRITES.labels("httproutes").inc()
        self._routes[key] = route
        generation = written.get("metadata", {}).get("generation")
        if isinstance(generation, int):
            self._route_generations[key] = generation

    async def apply_canary_service(self, key: Key, service: Mapping[str, Any]) -> None:
        if self._canary_services.get(key) == service:
            return
        name = service["metadata"]["name"]
        await self._api.apply(f"/api/v1/namespaces/{key[0]}/services/{name}", service)
        API_WRITES.labels("services").inc()
        self._canary_services[key] = service

    async def facts(
        self,
        key: Key,
        deployment: ModelDeployment,
        observed: Mapping[str, Any] | None,
        now: datetime,
    ) -> WorkloadFacts:
        """What core asks about beyond the InferenceService: the canary Service's endpoints
        while it waits for traffic, the pods of a version past its progress deadline, and the
        route last applied."""
        namespace = key[0]
        endpoints = None
        check = endpoint_check(deployment, observed)
        if check is not None:
            slices = await self._api.request(
                "GET",
                f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                params={"labelSelector": f"kubernetes.io/service-name={check.service}"},
            )
            endpoints = any(
                (endpoint.get("conditions") or {}).get("ready")
                and str((endpoint.get("targetRef") or {}).get("name", "")).startswith(
                    check.pod_prefix
                )
                for piece in slices.get("items", [])
                for endpoint in piece.get("endpoints") or []
            )
        pods = None
        selector = diagnosis_selector(deployment, now)
        if selector is not None:
            listing = await self._api.request(
                "GET", f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": selector}
            )
            pods = listing.get("items", [])
        return WorkloadFacts(endpoints, pods, self._routes.get(key))
