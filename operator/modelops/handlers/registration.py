"""The kopf edge: handlers that turn watch events into controller calls, and the start of the
operator. The only modules that import kopf are this package's."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

import kopf

from modelops.adapters.kubernetes import KubernetesApi
from modelops.api.resource import (
    GROUP,
    INFERENCE_SERVICE_PLURAL,
    KSERVE_GROUP,
    KSERVE_VERSION,
    PLURAL,
    VERSION,
)
from modelops.controller.config import OperatorConfig
from modelops.controller.reconciler import Key, Reconciler, key_of, slim
from modelops.core.decision import EventIntent
from modelops.core.ownership import MANAGED_BY
from modelops.handlers.connection import connection_from, login

PREFIX = "modelops.io"


class Runtime:
    """Operator-wide state, shared by every handler through kopf's memo."""

    def __init__(self, config: OperatorConfig) -> None:
        self.config = config
        self.reconciler: Reconciler | None = None
        self.api: KubernetesApi | None = None


def run(config: OperatorConfig, *, verbose: bool, json_logs: bool, liveness: str | None) -> None:
    """Start the operator: kopf's watches for the configured namespaces, the configuration in
    its memo."""
    kopf.configure(
        verbose=verbose, log_format=kopf.LogFormat.JSON if json_logs else kopf.LogFormat.FULL
    )
    if not verbose:
        # kopf logs every handled watch event; with many deployments that drowns our own lines.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kopf.run(
        clusterwide=not config.namespaces,
        namespaces=list(config.namespaces),
        liveness_endpoint=liveness,
        standalone=True,
        memo=kopf.Memo(runtime=Runtime(config)),
    )


def _post_event(body: Mapping[str, Any], event: EventIntent) -> None:
    kopf.event(
        kopf.Body(cast(kopf.RawBody, dict(body))),
        type=event.type,
        reason=event.reason,
        message=event.message,
    )


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # kopf's own bookkeeping lives under our prefix; the reconcile itself keeps none.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.posting.reporting_component = "modelops"
    settings.peering.standalone = True
    # No watching of CRDs (or namespaces) for new resources: the chart's least-privilege RBAC
    # grants neither. Resources are discovered once at start; installing KServe later needs
    # an operator restart. Namespace globs (cli) turn scanning back on.
    runtime: Runtime = memo.runtime
    settings.scanning.disabled = not runtime.config.scans_namespaces
    # Reconnect watches that a proxy or load balancer silently dropped.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    # Only this shard's deployments and our InferenceServices and Jobs of them are watched
    # (selected by the API server, not here).
    shard = runtime.config.shard
    if shard.selector is not None:
        settings.watching.label_selectors[GROUP, PLURAL] = shard.selector
    owned = shard.selecting(f"{MANAGED_BY}=modelops")
    settings.watching.label_selectors[KSERVE_GROUP, INFERENCE_SERVICE_PLURAL] = owned
    settings.watching.label_selectors["batch", "jobs"] = owned


@kopf.on.login()
async def authenticate(
    settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any
) -> kopf.ConnectionInfo | None:
    """kopf's watches and our writes use the same credentials; a re-login refreshes both."""
    info = login(settings)
    runtime: Runtime | None = getattr(memo, "runtime", None)
    if info is not None and runtime is not None:
        previous = runtime.api
        config = runtime.config
        runtime.api = KubernetesApi(
            connection_from(info),
            user_agent=f"modelops shard={config.shard.display}",
            qps=config.kube_api_qps,
            burst=config.kube_api_burst,
        )
        if runtime.reconciler is None:
            runtime.reconciler = Reconciler(runtime.api, _post_event, config=runtime.config)
        else:
            runtime.reconciler.use_api(runtime.api)
        if previous is not None:
            await previous.close()
    return info


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    if runtime.api is not None:
        await runtime.api.close()


@kopf.index(KSERVE_GROUP, KSERVE_VERSION, INFERENCE_SERVICE_PLURAL)
def inference_services(body: kopf.Body, **_: Any) -> dict[Key, dict[str, Any]]:
    """Our InferenceServices by (namespace, name); kopf fills it before any handler runs."""
    parts = {k: body[k] for k in ("metadata", "spec", "status") if k in body}
    return {key_of(body): slim(parts, keep_managed_fields=True)}


@kopf.index("batch", "v1", "jobs")
def retraining_jobs(body: kopf.Body, **_: Any) -> dict[Key, dict[str, Any]]:
    """Our retraining Jobs by (namespace, name), for their conditions."""
    return {key_of(body): {k: body[k] for k in ("metadata", "status") if k in body}}


def _lookup(index: kopf.Index[Key, dict[str, Any]]) -> Any:
    def find(key: Key) -> dict[str, Any] | None:
        store = index.get(key)
        return next(iter(store), None) if store else None

    return find


@kopf.on.event(GROUP, VERSION, PLURAL)
async def model_deployment_event(
    body: kopf.Body,
    type: str,
    memo: Any,
    **kwargs: Any,
) -> None:
    reconciler = _reconciler(memo)
    key = reconciler.observe_deployment(dict(body), deleted=type == "DELETED")
    if type != "DELETED":
        await reconciler.reconcile(
            key, _lookup(kwargs["inference_services"]), _lookup(kwargs["retraining_jobs"])
        )


@kopf.on.event(KSERVE_GROUP, KSERVE_VERSION, INFERENCE_SERVICE_PLURAL)
async def inference_service_event(
    body: kopf.Body,
    type: str,
    memo: Any,
    **kwargs: Any,
) -> None:
    owner = _owning_deployment(body)
    reconciler = _reconciler(memo)
    if type == "DELETED":
        reconciler.observe_inference_service_deleted(body)
    if owner is not None and reconciler.knows(owner):
        await reconciler.reconcile(
            owner, _lookup(kwargs["inference_services"]), _lookup(kwargs["retraining_jobs"])
        )


@kopf.on.event("batch", "v1", "jobs")
async def retraining_job_event(body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    """A retraining Job changed (started, completed, failed): its deployment takes a look."""
    owner = _owning_deployment(body)
    reconciler = _reconciler(memo)
    if owner is not None and reconciler.knows(owner):
        await reconciler.reconcile(
            owner, _lookup(kwargs["inference_services"]), _lookup(kwargs["retraining_jobs"])
        )


def _owning_deployment(body: kopf.Body) -> Key | None:
    for reference in body.get("metadata", {}).get("ownerReferences", []) or []:
        if reference.get("kind") == "ModelDeployment" and reference.get("controller"):
            return body.get("metadata", {}).get("namespace", "default"), reference["name"]
    return None


def _reconciler(memo: Any) -> Reconciler:
    reconciler: Reconciler | None = memo.runtime.reconciler
    if reconciler is None:
        raise kopf.TemporaryError("not logged in to the API server yet", delay=1)
    return reconciler


logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
