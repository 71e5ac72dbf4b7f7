"""Transitions that stand on KServe wait while its webhooks do not answer (its manager is down):
the dry run that asks, which deployments wait, and how soon they ask again. A fixed short
delay, not the reconcile's growing backoff: one dry run is cheap, and a held promotion should
follow KServe's return within seconds, not after a minute of backoff."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from modelops.adapters.kubernetes import ApiError, KubernetesApi
from modelops.api.resource import ModelDeployment
from modelops.controller.informer import Key
from modelops.core.decision import Decision
from modelops.core.reconcile import kserve_answered, kserve_held

RECHECK_SECONDS = 5.0
"""While KServe does not answer: the longest wait before asking it again."""


class KServeHold:
    def __init__(self, api: KubernetesApi, clock: Callable[[], datetime]) -> None:
        self._api = api
        self._clock = clock
        self.waiting: set[Key] = set()
        """Deployments held for KServe (a dry run or an InferenceService write got a 5xx)."""

    def use_api(self, api: KubernetesApi) -> None:
        self._api = api

    def forget(self, key: Key) -> None:
        self.waiting.discard(key)

    async def silence(self, path: str, service: Mapping[str, Any]) -> ApiError | None:
        """The API server's 5xx when KServe's webhooks do not answer a dry run of the
        InferenceService; None when they do, or when they refuse it (the apply that follows
        reports a refusal)."""
        try:
            await self._api.apply(path, service, dry_run=True)
        except ApiError as error:
            return error if error.status >= 500 else None
        return None

    def held(self, key: Key, current: ModelDeployment, silence: ApiError) -> Decision:
        """KServeAnswering=False on the recorded status, with one Warning."""
        self.waiting.add(key)
        return kserve_held(current, f"{silence.status} {silence.message}", self._clock())

    def answered(self, key: Key, current: ModelDeployment, decision: Decision) -> Decision:
        """`decision`, with KServeAnswering back to True (and a Normal Event) if it was False."""
        self.waiting.discard(key)
        return kserve_answered(current, decision, self._clock())

    def retry_delay(self, key: Key, backoff: float) -> float:
        return min(backoff, RECHECK_SECONDS) if key in self.waiting else backoff
