"""Read -> decide -> apply for one ModelDeployment. The decision is core.reconcile.decide.

Writes go straight to the API server through the async client; the watch caches (kopf's index
of InferenceServices, our store of ModelDeployments) are overlaid with the objects our own
writes returned, so a reconcile that runs before the watch catches up does not write twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from modelops.adapters.kubernetes import ApiError, KubernetesApi, namespaced_path
from modelops.api.resource import (
    GROUP,
    INFERENCE_SERVICE_PLURAL,
    KSERVE_GROUP,
    KSERVE_VERSION,
    PLURAL,
    VERSION,
    ModelDeployment,
)
from modelops.controller.analysis import AnalysisRunner
from modelops.controller.config import OperatorConfig
from modelops.controller.informer import Key, key_of
from modelops.controller.kserve_hold import KServeHold
from modelops.controller.metrics import (
    API_WRITES,
    RECONCILE_DURATION,
    RECONCILES,
    RETRAININGS,
    ROLLBACKS,
    ROLLOUTS,
    RolloutGauges,
    count,
)
from modelops.controller.model_resolver import ModelResolver
from modelops.controller.parsed import ParsedDeployments, dump_status
from modelops.controller.retraining import JobLookup, RetrainingLoop
from modelops.controller.timers import Timers
from modelops.controller.traffic_objects import TrafficObjects
from modelops.core.decision import Decision, EventIntent, Problem
from modelops.core.inference_logging import with_default_logger
from modelops.core.patches import HANDOVER_MANAGER, content_hash, merge_patch, slim_managed_fields
from modelops.core.reconcile import decide, refused_decision
from modelops.core.registry_writes import after_registry_writes
from modelops.core.retraining.loop import candidate_view
from modelops.core.retraining.triggers import next_retraining_look
from modelops.core.rollout.rounds import analysis_round
from modelops.core.rollout.wake import next_rollout_look
from modelops.core.sharding import handover_labels

EventPoster = Callable[[Mapping[str, Any], EventIntent], None]
InferenceServiceLookup = Callable[[Key], Mapping[str, Any] | None]

logger = logging.getLogger("modelops.reconciler")

RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


def newer(
    first: Mapping[str, Any] | None, second: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The more recent of two versions of one object, by resourceVersion."""
    if first is None or second is None:
        return first or second
    try:
        one = int(first["metadata"]["resourceVersion"])
        two = int(second["metadata"]["resourceVersion"])
    except (KeyError, ValueError):
        return first
    return first if one >= two else second


def slim(body: Mapping[str, Any], keep_managed_fields: bool = False) -> dict[str, Any]:
    """The object without managedFields, or (InferenceServices, whose ownership the reconcile
    reads) without those of its status: most of a stored object's size (1,000 cached
    deployments and services add up)."""
    metadata = dict(body.get("metadata", {}))
    if keep_managed_fields:
        return {**body, "metadata": slim_managed_fields(metadata)}
    return {**body, "metadata": {k: v for k, v in metadata.items() if k != "managedFields"}}


class Reconciler:
    def __init__(
        self,
        api: KubernetesApi,
        post_event: EventPoster,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        resolver: ModelResolver | None = None,
        analysis: AnalysisRunner | None = None,
        config: OperatorConfig | None = None,
    ) -> None:
        config = config or OperatorConfig()
        self._monitor_url = config.monitor_url
        self._capture_store = config.capture_store
        self._api = api
        self._resolver = resolver or ModelResolver(api, config.registry)
        self._analysis = analysis or AnalysisRunner(api, config.prometheus_url)
        self._traffic = TrafficObjects(api)
        self._kserve = KServeHold(api, clock)
        self._refused: dict[Key, tuple[str, Problem]] = {}
        self._retraining = RetrainingLoop(api, self._resolver, self._analysis)
        self._gauges = RolloutGauges()
        self._lookup: InferenceServiceLookup | None = None
        self._models = ParsedDeployments()
        self._timers = Timers(self._look_again)
        # The resolver polls the registry itself and wakes only deployments whose answer moved.
        self._resolver.changed = self._look_again
        self._post_event = post_event
        self._clock = clock
        self._deployments: dict[Key, Mapping[str, Any]] = {}
        self._written_services: dict[Key, Mapping[str, Any]] = {}
        self._locks: dict[Key, asyncio.Lock] = {}
        self._attempts: dict[Key, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def use_api(self, api: KubernetesApi) -> None:
        self._api = api
        self._resolver.use_api(api)
        self._analysis.use_api(api)
        self._retraining.use_api(api)
        self._traffic.use_api(api)
        self._kserve.use_api(api)

    # ---- watch input -------------------------------------------------------------------

    def observe_deployment(self, body: Mapping[str, Any], deleted: bool = False) -> Key:
        key = key_of(body)
        if deleted:
            self._deployments.pop(key, None)
            self._models.forget(key)
            self._written_services.pop(key, None)
            self._traffic.forget(key)
            self._kserve.forget(key)
            self._refused.pop(key, None)
            self._analysis.forget(key)
            self._retraining.forget(key)
            self._resolver.forget(key)
            self._gauges.forget(key)
            self._locks.pop(key, None)
            self._attempts.pop(key, None)
            self._timers.cancel(key)
        else:
            stored = self._deployments.get(key)
            version = body.get("metadata", {}).get("resourceVersion")
            # The watch echoing our own write carries the version stored from its response:
            # keeping that object keeps its parse (controller/parsed.py) for the reconcile.
            if (
                stored is None
                or not version
                or stored["metadata"].get("resourceVersion") != version
            ):
                newest = newer(body, stored)
                assert newest is not None
                self._deployments[key] = slim(newest)
        return key

    def observe_inference_service_deleted(self, body: Mapping[str, Any]) -> None:
        """Drop our copy of a deleted InferenceService, unless ours is a newer recreation."""
        key = key_of(body)
        written = self._written_services.get(key)
        if written is not None and written["metadata"].get("uid") == body["metadata"].get("uid"):
            del self._written_services[key]

    def observe_route(self, key: Key, body: Mapping[str, Any], deleted: bool) -> bool:
        """Whether the route the watch reports must be applied again (deleted, or edited by
        someone), said with a Warning."""
        if not self._traffic.route_changed(key, body, deleted):
            return False
        what = "deleted" if deleted else "changed"
        message = (f"HTTPRoute {body['metadata']['name']} was {what} outside modelops; applied "
                   "it again (edit the ModelDeployment instead)")  # fmt: skip
        logger.warning("%s/%s: %s", *key, message)
        deployment = self._deployments.get(key)
        if deployment is not None:
            reason = "Recreated" if deleted else "Restored"
            self._post_event(deployment, EventIntent("Warning", reason, message))
        return True

    def knows(self, key: Key) -> bool:
        return key in self._deployments

    # ---- the loop body -----------------------------------------------------------------

    async def reconcile(
        self,
        key: Key,
        inference_services: InferenceServiceLookup,
        jobs: JobLookup | None = None,
    ) -> None:
        self._lookup = inference_services
        if jobs is not None:
            self._retraining.jobs = jobs
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            body = self._deployments.get(key)
            if body is None:
                return
            try:
                with RECONCILE_DURATION.time():
                    outcome = await self._reconcile_once(key, body, inference_services)
            except (ApiError, OSError, TimeoutError) as error:
                RECONCILES.labels("retry").inc()
                self._schedule_retry(key, error)
            else:
                RECONCILES.labels(outcome).inc()
                self._attempts.pop(key, None)
                self._timers.set(key, self._next_look(key))

    async def _reconcile_once(
        self, key: Key, body: Mapping[str, Any], inference_services: InferenceServiceLookup
    ) -> str:
        """One pass; returns the outcome: unchanged, changed or rejected.

        The status is written before the objects built from it: a restart in between applies
        them from the recorded status, so a transition (a rollback) happens exactly once."""
        deployment = self._models.get(key, body)
        if deployment is None:
            return "rejected"
        deployment = with_default_logger(deployment, self._monitor_url, self._capture_store)
        observed = newer(inference_services(key), self._written_services.get(key))
        if observed is None and deployment.status.stable is not None:
            observed = await self._read_service(key, deployment)
        registry = None
        if deployment.spec.serving.storage_uri is None:
            registry = await self._resolver.observe(candidate_view(deployment))
        else:
            self._resolver.forget(key)  # pinned now: its model's poll stops
        now = self._clock()
        measurements = None
        planned = analysis_round(deployment, observed, now)
        if planned is not None and self._analysis.allowed(key, deployment, planned):
            measurements = await self._analysis.run(key, deployment, planned)
            now = self._clock()
        retraining = None
        if deployment.spec.retraining is not None:
            retraining = await self._retraining.inputs(deployment, observed, now)
        facts = await self._traffic.facts(key, deployment, observed, now)
        decision = decide(deployment, observed, now, registry, measurements, retraining, facts)
        refused = self._refused.get(key)
        wanted = decision.inference_service
        if wanted is not None and refused is not None and refused[0] == content_hash(wanted):
            # Asked for again unchanged: the webhook would refuse it again.
            decision = refused_decision(deployment, decision, refused[1], now)
        if decision.kserve_check is not None:
            silence = await self._kserve.silence(_service_path(key), decision.kserve_check)
            if silence is not None:
                await self._hold_for_kserve(key, body, silence)
                raise silence  # decided again after a short retry delay
            decision = self._kserve.answered(key, deployment, decision)
        outcome = "unchanged"
        if await self._write_status(key, body, decision):
            outcome = "changed"
        # The route before the InferenceService: traffic leaves a predictor before KServe may
        # remove it, and reaches a canary only once the status says it is ready.
        if decision.canary_service is not None:
            await self._traffic.apply_canary_service(key, decision.canary_service)
        if decision.http_route is not None and not self._route_refused(key, decision):
            await self._traffic.apply_route(key, decision.http_route)
        if decision.inference_service is not None:
            try:
                written = await self._api.apply(_service_path(key), decision.inference_service)
            except ApiError as error:
                if error.status >= 500:
                    # The decision is recorded; KServe's webhooks do not answer (it is down):
                    # say so, and apply again after the retry's backoff.
                    await self._hold_for_kserve(key, self._deployments.get(key, body), error)
                if error.status not in (400, 403, 422):
                    raise
                problem = Problem(
                    "InferenceServiceRejected",
                    f"the API server rejected the InferenceService ({error.status} "
                    f"{error.reason}): {error.message}",
                )
                self._refused[key] = (content_hash(decision.inference_service), problem)
                current = self._models.get(key, self._deployments.get(key, body)) or deployment
                decision = refused_decision(current, decision, problem, self._clock())
                await self._write_status(key, self._deployments.get(key, body), decision)
                outcome = "rejected"
            else:
                self._refused.pop(key, None)
                await self._kserve_back(key, body)
                API_WRITES.labels("inferenceservices").inc()
                self._written_services[key] = slim(written, keep_managed_fields=True)
                outcome = "changed"
                logger.info("Applied InferenceService %s/%s", *key)
        if decision.registry_writes:
            await self._write_registry(key, deployment, decision)
        if decision.job is not None:
            await self._retraining.ensure_job(key, decision.job)
        for result in decision.retraining_results:
            count(RETRAININGS, key, result)
        for event in decision.events:
            self._post_event(body, event)
        for result in decision.counts:
            count(ROLLOUTS, key, result)
            if result == "rolled_back":
                count(ROLLBACKS, key)
        self._gauges.export(key, decision.status)
        return outcome

    async def _read_service(
        self, key: Key, deployment: ModelDeployment
    ) -> Mapping[str, Any] | None:
        """The InferenceService of a served deployment that the watch has not delivered:
        deleted by someone, or still labelled for the shard this deployment was moved from
        (then relabelled here, so this shard's watch delivers it from now on)."""
        try:
            found = await self._api.request("GET", _service_path(key))
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        relabel = handover_labels(found, deployment.metadata.labels)
        if relabel is not None:
            found = await self._api.request(
                "PATCH", _service_path(key), body=relabel,
                content_type="application/merge-patch+json",
                params={"fieldManager": HANDOVER_MANAGER},
            )  # fmt: skip
            API_WRITES.labels("inferenceservices").inc()
            logger.info("Took over InferenceService %s/%s from another shard", *key)
        self._written_services[key] = slim(found, keep_managed_fields=True)
        return self._written_services[key]

    async def _hold_for_kserve(self, key: Key, body: Mapping[str, Any], silence: ApiError) -> None:
        current = self._models.get(key, body)
        if current is not None:
            await self._record(key, body, self._kserve.held(key, current, silence))

    async def _kserve_back(self, key: Key, body: Mapping[str, Any]) -> None:
        """An InferenceService write went through after KServe did not answer: say it is back."""
        body = self._deployments.get(key, body)
        current = self._models.get(key, body)
        if current is None:
            return
        unchanged = Decision(inference_service=None, status=current.status, events=())
        answered = self._kserve.answered(key, current, unchanged)
        if answered is not unchanged:
            await self._record(key, body, answered)

    async def _record(self, key: Key, body: Mapping[str, Any], decision: Decision) -> None:
        """A decision that writes only the status, and its Events."""
        await self._write_status(key, body, decision)
        for event in decision.events:
            self._post_event(body, event)

    def _route_refused(self, key: Key, decision: Decision) -> bool:
        """The route goes with an InferenceService the API server refused: it would point at
        predictors that do not exist."""
        wanted = decision.inference_service
        refused = self._refused.get(key)
        return wanted is not None and refused is not None and refused[0] == content_hash(wanted)

    async def _write_registry(
        self, key: Key, deployment: ModelDeployment, decision: Decision
    ) -> None:
        done = tuple(
            [w for w in decision.registry_writes if await self._resolver.write(deployment, w)]
        )
        if done:
            status = after_registry_writes(decision.status, done)
            body = self._deployments.get(key)
            if body is not None:
                await self._write_status(key, body, replace(decision, status=status))

    async def _write_status(self, key: Key, body: Mapping[str, Any], decision: Decision) -> bool:
        current_raw: dict[str, Any] = dict(body.get("status") or {})
        desired = dump_status(decision.status)
        if self._models.status(key, body) == desired:
            return False
        patch = merge_patch(current_raw, desired)
        if not patch:
            return False
        path = namespaced_path(GROUP, VERSION, PLURAL, *key, subresource="status")
        written = await self._api.merge_patch(path, {"status": patch})
        API_WRITES.labels("modeldeployments/status").inc()
        self.observe_deployment(written)
        return True

    def _next_look(self, key: Key) -> float | None:
        """Seconds until the deployment needs a look although nothing changes: the earliest of
        what core asks for (rollout, analysis, retraining). Registry polls are the resolver's:
        it wakes the deployments whose answer changed."""
        deployment = self._models.get(key, self._deployments.get(key, {}))
        if deployment is None:
            return None
        now = self._clock()
        looks = (
            next_rollout_look(deployment, now),
            next_retraining_look(deployment, now, self._retraining.last_measured(key)),
        )
        delays = [(when - now).total_seconds() for when in looks if when is not None]
        return min(delays) if delays else None

    def _look_again(self, key: Key) -> None:
        lookup = self._lookup
        if lookup is None or key not in self._deployments:
            return
        # Keep a reference: the event loop holds tasks only weakly.
        task = asyncio.get_running_loop().create_task(self.reconcile(key, lookup))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _schedule_retry(self, key: Key, error: Exception) -> None:
        attempt = self._attempts.get(key, 0)
        self._attempts[key] = attempt + 1
        delay = self._kserve.retry_delay(key, RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
        logger.warning("Reconcile of %s/%s failed (%s); retrying in %.0fs", *key, error, delay)
        self._timers.set(key, delay)


def _service_path(key: Key) -> str:
    return namespaced_path(KSERVE_GROUP, KSERVE_VERSION, INFERENCE_SERVICE_PLURAL, *key)
