"""The operator's watches: this shard's ModelDeployments and the InferenceServices, Jobs and
HTTPRoutes made for them, per watched namespace (or cluster-wide), each change queued for its deployment's
reconcile.

The InferenceServices and Jobs of a namespace are listed before its deployments, so a
deployment's first reconcile sees what already exists instead of writing it again. Namespace
globs are followed by watching namespaces (as kopf's scanning did).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from modelops.adapters.kubernetes import KubernetesApi, collection_path
from modelops.api.resource import (
    GROUP,
    INFERENCE_SERVICE_PLURAL,
    KSERVE_GROUP,
    KSERVE_VERSION,
    PLURAL,
    VERSION,
)
from modelops.controller.config import OperatorConfig
from modelops.controller.informer import Body, Informer, Key, KeyedQueue
from modelops.controller.reconciler import Reconciler, slim
from modelops.core.ownership import MANAGED_BY
from modelops.core.rollout.traffic import HTTP_ROUTE_API_VERSION

logger = logging.getLogger("modelops.watches")

GATEWAY_GROUP, GATEWAY_VERSION = HTTP_ROUTE_API_VERSION.split("/")

# How long a namespace's deployments wait for its InferenceServices and Jobs to be listed
# before they start anyway (KServe missing, or RBAC refusing, must not stop everything).
SIDE_LIST_WAIT = 30.0


def owning_deployment(body: Body) -> Key | None:
    metadata = body.get("metadata") or {}
    for reference in metadata.get("ownerReferences") or []:
        if reference.get("kind") == "ModelDeployment" and reference.get("controller"):
            return metadata.get("namespace", "default"), reference["name"]
    return None


def _keep_service(body: Body) -> dict[str, Any]:
    parts: dict[str, Any] = {k: body[k] for k in ("metadata", "spec", "status") if k in body}
    return slim(parts, keep_managed_fields=True)


def _keep_job(body: Body) -> dict[str, Any]:
    return {k: body[k] for k in ("metadata", "status") if k in body}


def namespace_matches(name: str, patterns: tuple[str, ...]) -> bool:
    """kopf's rules: a name is watched when a pattern matches it and no `!pattern` does."""
    excluded = any(fnmatch.fnmatchcase(name, p[1:]) for p in patterns if p.startswith("!"))
    included = [p for p in patterns if not p.startswith("!")]
    matched = any(fnmatch.fnmatchcase(name, p) for p in included) if included else True
    return matched and not excluded


class _Scope:
    """The four informers of one namespace (or of the cluster) and their tasks."""

    def __init__(self, watches: Watches, namespace: str | None) -> None:
        config, api = watches.config, watches.api
        owned = config.shard.selecting(f"{MANAGED_BY}=modelops")
        self.services = Informer(
            api, collection_path(KSERVE_GROUP, KSERVE_VERSION, INFERENCE_SERVICE_PLURAL, namespace),
            watches.service_changed, selector=owned, keep=_keep_service, relogin=watches.relogin,
        )  # fmt: skip
        self.jobs = Informer(
            api, collection_path("batch", "v1", "jobs", namespace),
            watches.job_changed, selector=owned, keep=_keep_job, relogin=watches.relogin,
        )  # fmt: skip
        # Routes are only watched for their deletion or edits by others: restored at once.
        self.routes = Informer(
            api, collection_path(GATEWAY_GROUP, GATEWAY_VERSION, "httproutes", namespace),
            watches.route_changed, selector=owned, relogin=watches.relogin, optional=True,
        )  # fmt: skip
        self.deployments = Informer(
            api, collection_path(GROUP, VERSION, PLURAL, namespace),
            watches.deployment_changed, selector=config.shard.selector, relogin=watches.relogin,
        )  # fmt: skip
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(informer.run()) for informer in (self.services, self.jobs, self.routes)
        ]
        self._tasks.append(loop.create_task(self._deployments_after_the_rest()))

    async def _deployments_after_the_rest(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(self.services.tried.wait(), self.jobs.tried.wait()),
                SIDE_LIST_WAIT,
            )
        await self.deployments.run()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Watches:
    def __init__(
        self,
        api: Callable[[], KubernetesApi],
        reconciler: Reconciler,
        config: OperatorConfig,
        relogin: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.api = api
        self.relogin = relogin
        self.config = config
        self._reconciler = reconciler
        self._queue = KeyedQueue(self._reconcile)
        self._scopes: dict[str | None, _Scope] = {}
        self._namespace_task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if self.config.scans_namespaces:
            namespaces = Informer(
                self.api, "/api/v1/namespaces", self._namespace_changed, relogin=self.relogin
            )
            self._namespace_task = asyncio.get_running_loop().create_task(namespaces.run())
        else:
            for namespace in self.config.namespaces or (None,):
                self._open(namespace)

    async def stop(self) -> None:
        if self._namespace_task is not None:
            self._namespace_task.cancel()
            await asyncio.gather(self._namespace_task, return_exceptions=True)
        for scope in list(self._scopes.values()):
            await scope.stop()
        self._scopes.clear()
        await self._queue.stop()

    def synced(self) -> bool:
        """Every watch has taken in its first list."""
        return bool(self._scopes) and all(
            informer.synced.is_set()
            for scope in self._scopes.values()
            for informer in (scope.services, scope.jobs, scope.deployments)
        )

    # ---- lookups for the reconciler ----------------------------------------------------

    def _scope_of(self, key: Key) -> _Scope | None:
        return self._scopes.get(key[0]) or self._scopes.get(None)

    def inference_service(self, key: Key) -> dict[str, Any] | None:
        scope = self._scope_of(key)
        return scope.services.get(key) if scope is not None else None

    def job(self, key: Key) -> dict[str, Any] | None:
        scope = self._scope_of(key)
        return scope.jobs.get(key) if scope is not None else None

    # ---- changes -----------------------------------------------------------------------

    async def _reconcile(self, key: Key) -> None:
        await self._reconciler.reconcile(key, self.inference_service, self.job)

    def deployment_changed(self, kind: str, body: Body) -> None:
        key = self._reconciler.observe_deployment(body, deleted=kind == "DELETED")
        if kind != "DELETED":
            self._queue.add(key)

    def service_changed(self, kind: str, body: Body) -> None:
        if kind == "DELETED":
            self._reconciler.observe_inference_service_deleted(body)
        self._owner_changed(body)

    def job_changed(self, kind: str, body: Body) -> None:
        """A retraining Job started, completed or failed: its deployment takes a look."""
        self._owner_changed(body)

    def route_changed(self, kind: str, body: Body) -> None:
        """An HTTPRoute deleted or edited by someone: its deployment applies it again."""
        owner = owning_deployment(body)
        if owner is not None and self._reconciler.observe_route(owner, body, kind == "DELETED"):
            self._owner_changed(body)

    def _owner_changed(self, body: Body) -> None:
        owner = owning_deployment(body)
        if owner is not None and self._reconciler.knows(owner):
            self._queue.add(owner)

    def _namespace_changed(self, kind: str, body: Body) -> None:
        name = body["metadata"]["name"]
        if kind == "DELETED" or not namespace_matches(name, self.config.namespaces):
            scope = self._scopes.pop(name, None)
            if scope is not None:
                # Keep a reference: the event loop holds tasks only weakly.
                task = asyncio.get_running_loop().create_task(scope.stop())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        elif name not in self._scopes:
            self._open(name)

    def _open(self, namespace: str | None) -> None:
        scope = _Scope(self, namespace)
        self._scopes[namespace] = scope
        scope.start()
        logger.info("Watching %s", f"namespace {namespace}" if namespace else "all namespaces")
