"""The resolver polls each registry key itself: one lookup per key per interval however many
deployments share it, and only the deployments whose answer changed are woken."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

import pytest

from modelops.api.resource import ModelDeployment
from modelops.controller import model_resolver
from modelops.controller.config import RegistryDefaults
from modelops.controller.model_resolver import CacheKey, DeploymentKey, ModelResolver
from modelops.core.registry import RegistryFailure, RegistryObservation
from tests.unit.factories import READY_V7, registry_body

INTERVAL = 0.05
DOWN = RegistryFailure("RegistryUnreachable", "connection refused", transient=True)


class ScriptedResolver(ModelResolver):
    """The registry's answers come from `answer` (no MLflow); polls every INTERVAL."""

    def __init__(self) -> None:
        super().__init__(None, RegistryDefaults(tracking_uri="http://mlflow"))  # type: ignore[arg-type]
        self.answer: RegistryObservation = READY_V7
        self.lookups = 0
        self.woken: list[DeploymentKey] = []
        self.changed = self.woken.append

    def _interval(self, deployment: ModelDeployment) -> float:
        return INTERVAL

    async def _fetch(self, key: CacheKey) -> RegistryObservation:
        self.lookups += 1
        return self.answer


def following(name: str, model: str = "fraud-detector") -> ModelDeployment:
    return ModelDeployment.model_validate(registry_body(
        metadata__name=name, spec__model={"name": model, "alias": "champion"}
    ))  # fmt: skip


async def until(condition: Callable[[], bool], within: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_deployments_sharing_a_model_cost_one_lookup_per_interval_and_no_wake_ups() -> None:
    resolver = ScriptedResolver()
    first = await resolver.observe(following("a"))
    second = await resolver.observe(following("b"))
    assert first == second == READY_V7 and resolver.lookups == 1
    await until(lambda: resolver.lookups >= 4)  # polled with nobody asking
    assert resolver.woken == []  # the same answer wakes nobody
    for name in ("a", "b"):
        resolver.forget(("risk", name))


async def test_a_moved_alias_wakes_exactly_the_deployments_that_follow_it() -> None:
    resolver = ScriptedResolver()
    await resolver.observe(following("a"))
    await resolver.observe(following("b"))
    await resolver.observe(following("other", model="churn"))
    resolver.answer = dataclasses.replace(READY_V7, version="8")
    await until(lambda: len(resolver.woken) >= 3)
    assert sorted(set(resolver.woken)) == [("risk", "a"), ("risk", "b"), ("risk", "other")]
    # Each key woke its own followers once; "churn" moved too (the script answers all keys).
    assert len(resolver.woken) == 3
    resolver.answer = DOWN  # an outage is an answer that changed: they hear of it
    await until(lambda: len(resolver.woken) >= 6)
    for name in ("a", "b", "other"):
        resolver.forget(("risk", name))


async def test_a_forgotten_key_is_not_polled_any_more() -> None:
    resolver = ScriptedResolver()
    await resolver.observe(following("a"))
    await resolver.observe(following("b"))
    resolver.forget(("risk", "a"))
    await until(lambda: resolver.lookups >= 3)  # "b" still follows it
    resolver.forget(("risk", "b"))
    stopped = resolver.lookups
    await asyncio.sleep(INTERVAL * 4)
    assert resolver.lookups == stopped


async def test_a_deployment_that_moves_to_another_model_leaves_the_old_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(model_resolver, "TRANSIENT_RETRY_SECONDS", INTERVAL / 2)
    resolver = ScriptedResolver()
    await resolver.observe(following("a"))
    await resolver.observe(following("a", model="churn"))
    assert len(resolver._users) == 1  # fraud-detector is no longer polled for anyone
    resolver.answer = DOWN
    await until(lambda: resolver.woken == [("risk", "a")])
    resolver.answer = READY_V7
    await until(lambda: len(resolver.woken) == 2)  # back: asked again sooner than the interval
    resolver.forget(("risk", "a"))


def test_lookups_from_many_threads_share_one_registry_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each client caches the MLmodel files it read: two clients would read them again."""
    import threading
    import time

    from modelops.adapters.registry import RegistryConnection

    class SlowClient:
        def __init__(self, connection: RegistryConnection) -> None:
            time.sleep(0.05)  # importing MLflow's client takes a while

    monkeypatch.setattr(model_resolver, "Registry", SlowClient)
    resolver = ScriptedResolver()
    found: list[object] = []
    threads = [
        threading.Thread(target=lambda: found.append(resolver._registry(RegistryConnection("u"))))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8 and len({id(client) for client in found}) == 1
