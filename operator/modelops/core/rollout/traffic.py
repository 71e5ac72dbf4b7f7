"""How a canary step's traffic share becomes replicas and route weights (pure).

KServe v0.20 Standard mode sizes a canary by replicas: the canary predictor gets its own
minReplicas (or ceil(stable minReplicas x percent / 100)) and the stable's minReplicas is reduced
by the canary's, never below 1. Its own Ingress routes only to the stable predictor, so an exact
split needs a Gateway API HTTPRoute with weights, which modelops writes when
spec.serving.httpRoute is set; the replica plan then sizes capacity to the share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelops.api.resource import ModelDeployment
from modelops.core.inference_logging import logged_canary_service_name, routes_through_agent
from modelops.core.ownership import owner_reference
from modelops.core.sharding import shard_labels

HONOURED_WITHIN = 5  # percentage points
HTTP_ROUTE_API_VERSION = "gateway.networking.k8s.io/v1"


@dataclass(frozen=True)
class ReplicaPlan:
    canary: int
    """The canary predictor's minReplicas."""
    stable_total: int
    """The stable predictor's minReplicas as written (KServe subtracts the canary's)."""
    stable: int
    """Stable replicas that remain."""

    @property
    def share(self) -> int:
        """The canary's share of all replicas, in percent (rounded)."""
        return round(100 * self.canary / (self.canary + self.stable))


def replica_plan(percent: int, min_replicas: int, max_replicas: int | None) -> ReplicaPlan:
    """The replicas whose split is closest to `percent`, within minReplicas..maxReplicas pods
    in all (fewest pods on a tie). KServe requires canary replicas <= the stable's minReplicas."""
    low = max(min_replicas, 1)
    high = max(low, max_replicas or low)
    best: tuple[float, int, ReplicaPlan] | None = None
    for total in range(low, high + 1):
        ideal = total * percent / 100
        for canary in {max(1, min(total, int(ideal))), max(1, min(total, int(ideal) + 1))}:
            stable = max(1, total - canary)
            plan = ReplicaPlan(canary=canary, stable_total=total, stable=stable)
            error = abs(100 * canary / (canary + stable) - percent)
            if best is None or (error, canary + stable) < best[:2]:
                best = (error, canary + stable, plan)
    assert best is not None
    return best[2]


def capacity_plan(percent: int, min_replicas: int) -> ReplicaPlan:
    """Replicas when a route splits the traffic: KServe's own sizing, ceil(minReplicas x
    percent / 100) for the canary, within the stable's minReplicas."""
    total = max(min_replicas, 1)
    canary = min(total, max(1, -(-total * percent // 100)))
    return ReplicaPlan(canary=canary, stable_total=total, stable=max(1, total - canary))


def honoured(plan: ReplicaPlan, percent: int) -> bool:
    return abs(plan.share - percent) <= HONOURED_WITHIN


def predictor_service(isvc: str, predictor: str | None) -> str:
    """KServe's Service name for a predictor (constants.PredictorServiceName)."""
    return f"{isvc}-{predictor}-predictor" if predictor else f"{isvc}-predictor"


def canary_backend(deployment: ModelDeployment, predictor: str) -> str:
    """The Service a canary's share goes to: KServe's for the predictor, or, when its traffic
    is logged, ours on the canary's agent."""
    if routes_through_agent(deployment):
        return logged_canary_service_name(deployment)
    return predictor_service(deployment.metadata.name, predictor)


def http_route_name(deployment: ModelDeployment) -> str:
    return deployment.metadata.name


def desired_http_route(
    deployment: ModelDeployment,
    stable_predictor: str | None,
    canary_predictor: str | None,
    canary_traffic: int,
) -> dict[str, Any] | None:
    """The HTTPRoute splitting the deployment's hosts between the stable and canary predictor
    Services by weight, or None when spec.serving.httpRoute is not set."""
    route = deployment.spec.serving.http_route
    if route is None:
        return None
    isvc = deployment.metadata.name
    backends = [
        {
            "name": predictor_service(isvc, stable_predictor),
            "port": 80,
            "weight": 100 - canary_traffic if canary_predictor else 100,
        }
    ]
    if canary_predictor:
        backends.append(
            {
                "name": canary_backend(deployment, canary_predictor),
                "port": 80,
                "weight": canary_traffic,
            }
        )
    spec: dict[str, Any] = {
        "hostnames": list(route.hostnames),
        "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": backends}
        ],
    }
    if route.parent_refs:
        spec["parentRefs"] = [
            ref.model_dump(by_alias=True, exclude_none=True) for ref in route.parent_refs
        ]
    return {
        "apiVersion": HTTP_ROUTE_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": {
            "name": http_route_name(deployment),
            "namespace": deployment.metadata.namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "modelops",
                "modelops.io/deployment": deployment.metadata.name,
                # The shard's watch of routes selects on it, as for InferenceServices.
                **shard_labels(deployment.metadata.labels),
            },
            "ownerReferences": [owner_reference(deployment)],
        },
        "spec": spec,
    }
