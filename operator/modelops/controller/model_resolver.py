"""Resolves which model version a deployment serves: one registry call per (registry, model,
version or alias) per poll interval, however many deployments share it, with credentials read
from Secrets; writes the registry's tags and aliases back. Operator-wide defaults come from
the configuration (`modelops run --registry-uri ...`).

The resolver polls each key in use itself and wakes the deployments that share it only when
the answer changed: an idle deployment is not reconciled at every poll."""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from modelops.adapters.kubernetes import ApiError, KubernetesApi
from modelops.adapters.registry import Registry, RegistryConnection, RegistryError
from modelops.api.resource import ModelDeployment
from modelops.controller.config import RegistryDefaults
from modelops.controller.metrics import REGISTRY_CALLS, REGISTRY_ERRORS
from modelops.core.durations import parse_duration
from modelops.core.inference_logging import logging_wanted
from modelops.core.registry import RegistryFailure, RegistryObservation
from modelops.core.registry_writes import REJECTED_TAG, RegistryWrite
from modelops.core.retraining.triggers import TRIGGER_ID_TAG

logger = logging.getLogger("modelops.registry")

# A transient failure is asked again this soon (then at the poll interval).
TRANSIENT_RETRY_SECONDS = 5.0
# A lookup that takes longer counts as unreachable (its worker thread is left to finish).
LOOKUP_DEADLINE_SECONDS = 20.0

# (tracking URI, secret ns, secret, model, selector, whether to check for a reference profile)
CacheKey = tuple[str, str, str, str, str, bool]
DeploymentKey = tuple[str, str]  # (namespace, name)
NOT_CONFIGURED = RegistryFailure(
    "RegistryNotConfigured", "no MLflow registry is configured", transient=False
)


@dataclass
class _Entry:
    observation: RegistryObservation
    fetched_at: float
    fresh_for: float
    interval: float  # the poll interval (fresh_for is shorter after a transient failure)


class ModelResolver:
    def __init__(
        self,
        api: KubernetesApi,
        defaults: RegistryDefaults | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._defaults = defaults or RegistryDefaults()
        self._clock = clock
        self._cache: dict[CacheKey, _Entry] = {}
        self._in_flight: dict[CacheKey, asyncio.Task[RegistryObservation]] = {}
        self._registries: dict[tuple[str, str | None, str | None, str | None], Registry] = {}
        self._registries_lock = threading.Lock()
        # Who shares each key, and the next poll of each key in use.
        self._users: dict[CacheKey, set[DeploymentKey]] = {}
        self._user_keys: dict[DeploymentKey, CacheKey] = {}
        self._polls: dict[CacheKey, asyncio.TimerHandle] = {}
        self._poll_tasks: set[asyncio.Task[None]] = set()
        self.changed: Callable[[DeploymentKey], None] = lambda _: None
        """Called for each deployment sharing a key whose answer changed at a poll."""

    def use_api(self, api: KubernetesApi) -> None:
        self._api = api

    @property
    def default_tracking_uri(self) -> str | None:
        return self._defaults.tracking_uri

    def _key(self, deployment: ModelDeployment) -> CacheKey | None:
        model = deployment.spec.model
        settings = model.registry
        uri = (settings.tracking_uri if settings else None) or self._defaults.tracking_uri
        if uri is None:
            return None
        if settings is not None and settings.credentials_secret:
            secret_ns, secret = deployment.metadata.namespace, settings.credentials_secret
        elif self._defaults.credentials_secret:
            secret_ns, _, secret = self._defaults.credentials_secret.partition("/")
        else:
            secret_ns, secret = "", ""
        selector = f"@{model.alias}" if model.alias else f"v{model.version}"
        return uri, secret_ns, secret, model.name, selector, logging_wanted(deployment)

    def _interval(self, deployment: ModelDeployment) -> float:
        settings = deployment.spec.model.registry
        return parse_duration(settings.poll_interval if settings else "30s").total_seconds()

    def forget(self, user: DeploymentKey) -> None:
        """A deployment is gone (or follows no registry now): stop polling for it."""
        key = self._user_keys.pop(user, None)
        if key is None:
            return
        users = self._users.get(key, set())
        users.discard(user)
        if not users:
            self._users.pop(key, None)
            self._cache.pop(key, None)
            poll = self._polls.pop(key, None)
            if poll is not None:
                poll.cancel()

    def _use(self, key: CacheKey, deployment: ModelDeployment) -> None:
        user = (deployment.metadata.namespace, deployment.metadata.name)
        if self._user_keys.get(user) != key:
            self.forget(user)
            self._user_keys[user] = key
            self._users.setdefault(key, set()).add(user)

    def _schedule_poll(self, key: CacheKey, delay: float) -> None:
        old = self._polls.pop(key, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._polls[key] = loop.call_later(max(delay, 0.0), self._start_poll, key)

    def _start_poll(self, key: CacheKey) -> None:
        self._polls.pop(key, None)
        if key not in self._users:
            return
        # Keep a reference: the event loop holds tasks only weakly.
        task = asyncio.get_running_loop().create_task(self._poll(key))
        self._poll_tasks.add(task)
        task.add_done_callback(self._poll_tasks.discard)

    async def _poll(self, key: CacheKey) -> None:
        before = self._cache.get(key)
        observation = await self._lookup(key)
        if key not in self._users:
            return
        self._remember(key, observation, None)
        if before is None or before.observation != observation:
            for user in sorted(self._users.get(key, ())):
                self.changed(user)

    async def observe(self, deployment: ModelDeployment) -> RegistryObservation:
        key = self._key(deployment)
        if key is None:
            return RegistryFailure(
                "RegistryNotConfigured",
                "no MLflow registry is configured: set spec.model.registry.trackingUri, or "
                "start the operator with --registry-uri",
                transient=False,
            )
        self._use(key, deployment)
        entry = self._cache.get(key)
        if entry is not None and self._clock() - entry.fetched_at < entry.fresh_for:
            return entry.observation
        observation = await self._lookup(key)
        self._remember(key, observation, self._interval(deployment))
        return observation

    async def _lookup(self, key: CacheKey) -> RegistryObservation:
        """One registry call for `key`, shared by everyone asking while it runs."""
        task = self._in_flight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch(key))
            self._in_flight[key] = task
            # Cleared when the lookup ends, even if every caller awaiting it was cancelled.
            task.add_done_callback(functools.partial(self._lookup_done, key))
        return await asyncio.shield(task)

    def _remember(
        self, key: CacheKey, observation: RegistryObservation, interval: float | None
    ) -> None:
        """Cache an answer until the next poll (sooner after a transient failure); `interval`
        None keeps the poll interval the key had."""
        if interval is None:
            entry = self._cache.get(key)
            interval = entry.interval if entry else TRANSIENT_RETRY_SECONDS
        transient = isinstance(observation, RegistryFailure) and observation.transient
        fresh_for = min(interval, TRANSIENT_RETRY_SECONDS) if transient else interval
        self._cache[key] = _Entry(observation, self._clock(), fresh_for, interval)
        if key in self._users:
            self._schedule_poll(key, fresh_for)

    def _lookup_done(self, key: CacheKey, _: asyncio.Task[RegistryObservation]) -> None:
        self._in_flight.pop(key, None)

    async def _fetch(self, key: CacheKey) -> RegistryObservation:
        uri, _, _, name, selector, check_profile = key
        REGISTRY_CALLS.labels(name).inc()
        try:
            registry = await self._registry_of(key)
            lookup = (
                registry.resolve(name, alias=selector[1:], check_profile=check_profile)
                if selector.startswith("@")
                else registry.resolve(name, version=selector[1:], check_profile=check_profile)
            )
            try:
                answer = await asyncio.wait_for(lookup, LOOKUP_DEADLINE_SECONDS)
            except TimeoutError:
                raise RegistryError(
                    "RegistryUnreachable",
                    f"the registry did not answer within {LOOKUP_DEADLINE_SECONDS:.0f}s",
                    retry=True,
                ) from None
            return replace(answer, artifacts_destination=self._defaults.artifacts_destination)
        except RegistryError as error:
            REGISTRY_ERRORS.labels("lookup").inc()
            if error.retry:
                logger.warning("Registry %s: %s", uri, error.message)
            return RegistryFailure(error.reason, error.message, transient=error.retry)

    async def find_candidate(
        self, deployment: ModelDeployment, trigger_id: str, alias: str | None
    ) -> str | RegistryFailure | None:
        """The version a retraining Job registered for `trigger_id`, None when it registered
        none, or why the registry could not say (asked again at the next reconcile)."""
        key = self._key(deployment)
        if key is None:
            return NOT_CONFIGURED
        name = key[3]
        try:
            registry = await self._registry_of(key)
            lookup = registry.find_candidate(name, (TRIGGER_ID_TAG, trigger_id), alias)
            return await asyncio.wait_for(lookup, LOOKUP_DEADLINE_SECONDS)
        except (RegistryError, TimeoutError) as error:
            REGISTRY_ERRORS.labels("candidate").inc()
            message = error.message if isinstance(error, RegistryError) else "timed out"
            return RegistryFailure("CandidateLookupFailed", message, transient=True)

    async def run_artifact(
        self, deployment: ModelDeployment, version: str, path: str
    ) -> str | RegistryFailure | None:
        """A text artifact of the run behind `version` of the deployment's model (the
        reference profile); None when that run has none."""
        key = self._key(deployment)
        if key is None:
            return NOT_CONFIGURED
        try:
            registry = await self._registry_of(key)
            call = registry.run_artifact_text(key[3], version, path)
            return await asyncio.wait_for(call, LOOKUP_DEADLINE_SECONDS)
        except (RegistryError, TimeoutError) as error:
            REGISTRY_ERRORS.labels("artifact").inc()
            if isinstance(error, RegistryError):
                return RegistryFailure(error.reason, error.message, transient=error.retry)
            return RegistryFailure("RegistryUnreachable", "timed out", transient=True)

    async def write(self, deployment: ModelDeployment, write: RegistryWrite) -> bool:
        """Point an alias at a version, or tag a version rejected; False (logged, retried by a
        later reconcile) when the registry cannot take it."""
        key = self._key(deployment)
        if key is None:
            return False
        name = key[3]
        try:
            registry = await self._registry_of(key)
            if write.kind == "alias":
                call = registry.set_alias(name, write.alias, write.version)
            else:
                call = registry.tag_version(name, write.version, *REJECTED_TAG)
            await asyncio.wait_for(call, LOOKUP_DEADLINE_SECONDS)
        except (RegistryError, TimeoutError) as error:
            REGISTRY_ERRORS.labels(write.kind).inc()
            detail = error.message if isinstance(error, RegistryError) else "timed out"
            logger.warning(
                "Registry write (%s of version %s) failed: %s", write.kind, write.version, detail
            )
            return False
        logger.info("Registry: %s of %s version %s written", write.kind, name, write.version)
        return True

    async def _registry_of(self, key: CacheKey) -> Registry:
        """The registry client for a deployment's key, credentials read from its Secret."""
        uri, secret_ns, secret = key[:3]
        connection = await self._connection(uri, secret_ns, secret)
        # The first Registry imports MLflow's client (about 2 s): not on the event loop.
        return await asyncio.to_thread(self._registry, connection)

    async def _connection(self, uri: str, secret_ns: str, secret: str) -> RegistryConnection:
        if not secret:
            return RegistryConnection(uri)
        try:
            found = await self._api.get(f"/api/v1/namespaces/{secret_ns}/secrets/{secret}")
        except ApiError as error:
            raise RegistryError(
                "CredentialsUnreadable",
                f"cannot read the credentials Secret {secret_ns}/{secret} ({error.status})",
                retry=error.status >= 500,
            ) from None
        if found is None:
            raise RegistryError(
                "CredentialsSecretMissing",
                f"the credentials Secret {secret_ns}/{secret} does not exist",
                retry=False,
            )
        data: dict[str, Any] = found.get("data") or {}

        def value(name: str) -> str | None:
            raw = data.get(name)
            return base64.b64decode(raw).decode() if raw else None

        return RegistryConnection(
            uri,
            token=value("MLFLOW_TRACKING_TOKEN"),
            username=value("MLFLOW_TRACKING_USERNAME"),
            password=value("MLFLOW_TRACKING_PASSWORD"),
        )

    def _registry(self, connection: RegistryConnection) -> Registry:
        identity = (connection.tracking_uri, connection.token, connection.username,
                    connection.password)  # fmt: skip
        # Lookups of different models build it from worker threads at once: one must win, or
        # each keeps its own (and its own cache of MLmodel files, read again at every poll).
        with self._registries_lock:
            registry = self._registries.get(identity)
            if registry is None:
                registry = self._registries[identity] = Registry(connection)
        return registry
