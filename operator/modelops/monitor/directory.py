"""What the monitor looks up about a deployment: which version is its stable and which its
canary (from the ModelDeployment's status), and each version's reference profile (from the
run that logged it, through the same registry client and credentials the operator uses).

Both are cached: a deployment is read again at most every `refresh` seconds, a profile once per
version (a missing one is asked again after `retry` seconds), so a stream of events costs a
handful of API and registry calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from modelops.adapters.kubernetes import ApiError, KubernetesApi
from modelops.api.resource import ModelDeployment
from modelops.controller.model_resolver import ModelResolver
from modelops.core.registry import RegistryFailure
from modelops.profile import ARTIFACT_PATH, ReferenceProfile

GROUP_PATH = "/apis/modelops.io/v1alpha1"


@dataclass(frozen=True)
class Unknown:
    """Why an event cannot be attributed or measured; `reason` labels the drop counter."""

    reason: str
    message: str


@dataclass
class _Cached:
    value: Any
    at: float


class Directory:
    def __init__(
        self,
        api: KubernetesApi,
        resolver: ModelResolver,
        *,
        refresh: float = 10.0,
        retry: float = 60.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api, self._resolver = api, resolver
        self._refresh, self._retry, self._max = refresh, retry, max_entries
        self._clock = clock
        self._deployments: dict[tuple[str, str], _Cached] = {}
        self._profiles: dict[tuple[str, str, str], _Cached] = {}
        self._in_flight: dict[tuple[str, ...], asyncio.Task[Any]] = {}

    async def _once(self, key: tuple[str, ...], load: Callable[[], Awaitable[Any]]) -> Any:
        """One lookup per key at a time, however many events wait for it."""
        task = self._in_flight.get(key)
        if task is None:
            task = self._in_flight[key] = asyncio.ensure_future(load())
            task.add_done_callback(lambda _: self._in_flight.pop(key, None))
        return await asyncio.shield(task)

    def _remember(self, cache: dict[Any, _Cached], key: Any, value: Any) -> None:
        if len(cache) >= self._max:
            cache.pop(next(iter(cache)))
        cache[key] = _Cached(value, self._clock())

    async def deployment(self, namespace: str, name: str) -> ModelDeployment | Unknown:
        cached = self._deployments.get((namespace, name))
        if cached is not None and self._clock() - cached.at < self._refresh:
            return cached.value  # type: ignore[no-any-return]

        async def load() -> ModelDeployment | Unknown:
            path = f"{GROUP_PATH}/namespaces/{namespace}/modeldeployments/{name}"
            try:
                found = await self._api.get(path)
            except ApiError as error:
                return Unknown("lookup-failed", f"cannot read {namespace}/{name} ({error.status})")
            if found is None:
                value: ModelDeployment | Unknown = Unknown(
                    "unknown-deployment", f"no ModelDeployment {namespace}/{name}"
                )
            else:
                try:
                    value = ModelDeployment.model_validate(found)
                except ValidationError:
                    value = Unknown("unknown-deployment", f"{namespace}/{name} is not valid")
            self._remember(self._deployments, (namespace, name), value)
            return value

        return await self._once(("deployment", namespace, name), load)  # type: ignore[no-any-return]

    async def track(self, namespace: str, name: str, version: str) -> str | Unknown:
        """ "canary" or "stable" for a version the deployment serves now."""
        found = await self.deployment(namespace, name)
        if isinstance(found, Unknown):
            return found
        canary, stable = found.status.canary, found.status.stable
        if canary is not None and canary.version == version:
            return "canary"
        if stable is not None and stable.version == version:
            return "stable"
        if any(r.version == version for r in found.status.retiring):
            return "stable"  # the previous stable, draining after a promotion
        return Unknown(
            "unknown-version", f"{namespace}/{name} serves no version {version} at the moment"
        )

    async def profile(self, namespace: str, name: str, version: str) -> ReferenceProfile | Unknown:
        key = (namespace, name, version)
        cached = self._profiles.get(key)
        if cached is not None and (
            not isinstance(cached.value, Unknown) or self._clock() - cached.at < self._retry
        ):
            return cached.value  # type: ignore[no-any-return]
        found = await self.deployment(namespace, name)
        if isinstance(found, Unknown):
            return found
        deployment = found

        async def load() -> ReferenceProfile | Unknown:
            text = await self._resolver.run_artifact(deployment, version, ARTIFACT_PATH)
            value: ReferenceProfile | Unknown
            if isinstance(text, RegistryFailure):
                value = Unknown("profile-unreadable", text.message)
            elif text is None:
                value = Unknown(
                    "no-profile",
                    f"version {version} of {deployment.spec.model.name!r} has no reference "
                    f"profile ({ARTIFACT_PATH} in its run): log one with "
                    "modelops.profile.log_reference(frame) or `modelops profile`",
                )
            else:
                try:
                    value = ReferenceProfile.from_json(text)
                except (ValueError, ValidationError) as error:
                    value = Unknown("profile-invalid", f"reference profile unreadable: {error}")
            self._remember(self._profiles, key, value)
            return value

        return await self._once(("profile", *key), load)  # type: ignore[no-any-return]
