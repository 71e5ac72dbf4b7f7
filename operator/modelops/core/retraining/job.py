"""The retraining Job of a firing (pure): built from spec.retraining.jobTemplate with
modelops' environment, named after the deployment and the trigger id, and read back."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from typing import Any, Literal

from modelops.api.resource import ModelDeployment
from modelops.api.status import RetrainingRun
from modelops.core.inference_logging import production_data
from modelops.core.labels import label_value
from modelops.core.ownership import DEPLOYMENT_LABEL, MANAGED_BY, owner_reference
from modelops.core.sharding import shard_labels

TRIGGER_LABEL = "modelops.io/trigger"
DEFAULT_TTL_SECONDS = 86400

JobState = Literal["Missing", "Deleted", "Running", "Succeeded", "Failed"]
"""Missing: not created yet (or a restart came between the firing and the create: created
now). Deleted: this operator saw the Job and it is gone before it finished (a person deleted
it, or cancelled it so): recorded as failed, not created again."""


def job_name(deployment: ModelDeployment, trigger_id: str) -> str:
    digest = hashlib.sha256(f"{deployment.metadata.uid}/{trigger_id}".encode()).hexdigest()[:8]
    return f"{deployment.metadata.name}-retrain-{digest}"


def retraining_job(
    deployment: ModelDeployment, run: RetrainingRun, tracking_uri: str | None = None
) -> dict[str, Any]:
    """The batch/v1 Job for a firing, from spec.retraining.jobTemplate, with modelops'
    environment in every container (the template's own values for the same names win only
    for MLFLOW_TRACKING_URI)."""
    spec = deployment.spec.retraining
    assert spec is not None
    template = copy.deepcopy(spec.job_template.spec)
    metadata = copy.deepcopy(spec.job_template.metadata or {})
    stable = deployment.status.stable
    labels = {
        **(metadata.get("labels") or {}),
        MANAGED_BY: "modelops",
        DEPLOYMENT_LABEL: deployment.metadata.name,
        TRIGGER_LABEL: label_value(run.trigger_id),
        **shard_labels(deployment.metadata.labels),
    }
    registry = deployment.spec.model.registry
    environment = {
        "MODELOPS_DEPLOYMENT": deployment.metadata.name,
        "MODELOPS_NAMESPACE": deployment.metadata.namespace,
        "MODEL_NAME": deployment.spec.model.name,
        "MODEL_VERSION": (stable.version if stable else None) or "",
        "MODELOPS_TRIGGER": run.reason,
        "MODELOPS_TRIGGER_ID": run.trigger_id,
    }
    if spec.candidate is not None and spec.candidate.alias:
        environment["MODELOPS_CANDIDATE_ALIAS"] = spec.candidate.alias
    captured = production_data(deployment)
    if captured is not None:
        environment["MODELOPS_PRODUCTION_DATA"] = captured
    tracking = (registry.tracking_uri if registry else None) or tracking_uri
    pod = template.setdefault("template", {})
    pod_metadata = pod.setdefault("metadata", {})
    pod_metadata["labels"] = {
        **(pod_metadata.get("labels") or {}),
        MANAGED_BY: "modelops",
        DEPLOYMENT_LABEL: deployment.metadata.name,
    }
    pod_spec = pod.setdefault("spec", {})
    pod_spec.setdefault("restartPolicy", "Never")
    for kind in ("initContainers", "containers"):
        for container in pod_spec.get(kind) or []:
            env = [e for e in container.get("env") or [] if e.get("name") not in environment]
            names = {e.get("name") for e in env}
            extra = [{"name": k, "value": v} for k, v in environment.items()]
            if tracking and "MLFLOW_TRACKING_URI" not in names:
                extra.append({"name": "MLFLOW_TRACKING_URI", "value": tracking})
            container["env"] = env + extra
    template.setdefault("ttlSecondsAfterFinished", DEFAULT_TTL_SECONDS)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": run.job,
            "namespace": deployment.metadata.namespace,
            "labels": labels,
            "annotations": {
                **(metadata.get("annotations") or {}),
                "modelops.io/trigger": run.reason[:1000],
            },
            "ownerReferences": [owner_reference(deployment)],
        },
        "spec": template,
    }


def job_state(job: Mapping[str, Any] | None) -> JobState:
    if job is None:
        return "Missing"
    for item in (job.get("status") or {}).get("conditions") or []:
        if item.get("status") != "True":
            continue
        if item.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "Succeeded"
        if item.get("type") in ("Failed", "FailureTarget"):
            return "Failed"
    return "Running"
