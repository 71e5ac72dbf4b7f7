"""Promotion (pure): the canary becomes the stable version.

In Standard mode the stable predictor is retargeted onto the canary's Deployment, so the
promoted version keeps its pods; the predictor that loses its traffic keeps running as a
retiring entry until the route or Ingress change has reached every gateway.
"""

from __future__ import annotations

from modelops.api.resource import ModelDeployment
from modelops.api.status import ServedVersion
from modelops.core.decision import EventIntent
from modelops.core.rollout.objects import stable_replicas
from modelops.core.rollout.state import Outcome, RolloutState, label


def promote(deployment: ModelDeployment, state: RolloutState, reason: str) -> Outcome:
    canary, stable = state.canary, state.stable
    assert canary is not None and stable is not None
    fields = ServedVersion.model_fields.keys() - {"promoted_at"}
    promoted = ServedVersion(**{k: getattr(canary, k) for k in fields}, promoted_at=state.now)
    if deployment.spec.serving.deployment_mode == "Standard":
        # KServe refuses a predictor name change without a storageUri change, and a version
        # with the stable's artifact needs no pods of its own: it keeps the stable predictor.
        if canary.storage_uri == stable.storage_uri:
            promoted = promoted.model_copy(update={"predictor": stable.predictor})
            state.retire_canary(deployment)
        else:
            promoted = promoted.model_copy(update={"predictor": canary.name})
            state.retire(stable, stable_replicas(deployment, canary))
    state.previous, state.stable, state.canary, state.analysis = stable, promoted, None, None
    state.record(promoted, "Promoted", reason)
    state.waits_for_kserve = True  # KServe moves the stable predictor
    state.events.append(EventIntent("Normal", "Promoted", f"{label(promoted)} promoted: {reason}"))
    state.counts.append("promoted")
    return state.outcome("Healthy", f"{label(promoted)} serves 100% of traffic")
