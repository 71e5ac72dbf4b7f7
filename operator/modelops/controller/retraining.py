"""The retraining loop's I/O for the reconciler: the state of the current Job, the candidate
it registered, trigger readings, and the Job's creation (once per firing)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from modelops.adapters.kubernetes import ApiError, KubernetesApi
from modelops.api.resource import ModelDeployment
from modelops.controller.analysis import AnalysisRunner
from modelops.controller.metrics import API_WRITES
from modelops.controller.model_resolver import ModelResolver
from modelops.core.patches import HANDOVER_MANAGER
from modelops.core.registry import RegistryFailure
from modelops.core.retraining.job import JobState, job_state
from modelops.core.retraining.loop import RetrainingInputs
from modelops.core.retraining.triggers import readings_due, trigger_queries
from modelops.core.rollout.rounds import trigger_values
from modelops.core.sharding import handover_labels

logger = logging.getLogger("modelops.retraining")

Key = tuple[str, str]
JobLookup = Callable[[Key], Mapping[str, Any] | None]


class RetrainingLoop:
    def __init__(
        self, api: KubernetesApi, resolver: ModelResolver, analysis: AnalysisRunner
    ) -> None:
        self._api, self._resolver, self._analysis = api, resolver, analysis
        self.jobs: JobLookup = lambda _: None
        # Jobs this process created or saw: one of them missing was deleted by someone.
        self._existed: set[Key] = set()
        self._refused: set[Key] = set()
        # When each deployment's metric and drift triggers were last measured: in memory, so
        # a measurement that changes nothing writes nothing (a restart measures at once).
        self._measured: dict[Key, datetime] = {}

    def last_measured(self, key: Key) -> datetime | None:
        return self._measured.get(key)

    def forget(self, key: Key) -> None:
        self._measured.pop(key, None)

    def use_api(self, api: KubernetesApi) -> None:
        self._api = api

    async def inputs(
        self, deployment: ModelDeployment, observed: Mapping[str, Any] | None, now: datetime
    ) -> RetrainingInputs:
        spec = deployment.spec.retraining
        assert spec is not None
        state = deployment.status.retraining
        job: JobState | None = None
        candidate = None
        if state is not None and state.phase == "Running" and state.current is not None:
            job_key = (deployment.metadata.namespace, state.current.job)
            job = (
                "Failed"
                if job_key in self._refused
                else job_state(await self._job(deployment, job_key))
            )
            if job == "Missing" and job_key in self._existed:
                job = "Deleted"  # it existed in this process's life: someone deleted it
            if job == "Succeeded":
                alias = spec.candidate.alias if spec.candidate else None
                found = await self._resolver.find_candidate(
                    deployment, state.current.trigger_id, alias
                )
                if isinstance(found, RegistryFailure) and found.transient:
                    logger.warning("Candidate lookup: %s; asking again", found.message)
                    job = "Running"
                elif isinstance(found, RegistryFailure):
                    # No registry to ask (none configured, or it refuses): the Job registered
                    # nothing modelops can find, said as NoCandidate rather than waited for.
                    logger.warning("Candidate lookup: %s", found.message)
                else:
                    candidate = found
        readings = None
        key = (deployment.metadata.namespace, deployment.metadata.name)
        if readings_due(deployment, now, self._measured.get(key)):
            queries = trigger_queries(deployment, trigger_values(deployment, observed))
            readings = await self._analysis.readings(deployment, queries)
            self._measured[key] = now
        return RetrainingInputs(
            readings=readings,
            job=job,
            candidate=candidate,
            tracking_uri=self._resolver.default_tracking_uri,
        )

    async def _job(self, deployment: ModelDeployment, key: Key) -> Mapping[str, Any] | None:
        """The running Job from the watch, or read (and relabelled) when the watch has not
        delivered it: it still carries the shard label of the shard this deployment left."""
        found = self.jobs(key)
        if found is not None:
            self._existed.add(key)  # seen: were it missing later, it was deleted
            return found
        path = f"/apis/batch/v1/namespaces/{key[0]}/jobs/{key[1]}"
        try:
            read = await self._api.request("GET", path)
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        relabel = handover_labels(read, deployment.metadata.labels)
        self._existed.add(key)
        if relabel is None:
            return read
        logger.info("Took over retraining Job %s/%s from another shard", *key)
        API_WRITES.labels("jobs").inc()
        return await self._api.request(
            "PATCH", path, body=relabel, content_type="application/merge-patch+json",
            params={"fieldManager": HANDOVER_MANAGER},
        )  # fmt: skip

    async def ensure_job(self, key: Key, job: Mapping[str, Any]) -> None:
        """Create the retraining Job unless it exists (its name is the firing's, so a second
        create for the same firing is refused by the API server with 409)."""
        job_key = (key[0], job["metadata"]["name"])
        if self.jobs(job_key) is not None or job_key in self._existed:
            return
        try:
            await self._api.request("POST", f"/apis/batch/v1/namespaces/{key[0]}/jobs", body=job)
        except ApiError as error:
            if error.status == 409:
                self._existed.add(job_key)
                return
            if error.status not in (400, 422):
                raise  # 403 (RBAC, an exhausted quota) and 5xx: the reconcile is retried
            logger.error("Retraining Job %s/%s refused: %s", *job_key, error.message)
            self._refused.add(job_key)
            return
        API_WRITES.labels("jobs").inc()
        self._existed.add(job_key)
        logger.info("Created retraining Job %s/%s", *job_key)
