"""Runs analysis rounds: the queries core.rollout.rounds plans, sent to Prometheus, judged by
core.analysis. At most one query per metric per deployment per interval: the status records
the last round, and a round that ran but whose status write failed is not repeated early.

The operator-wide Prometheus comes from the configuration (`modelops run --prometheus-url`); a
deployment's spec.analysis.prometheus overrides it, with credentials from a Secret in the
deployment's namespace (token, or username and password; ca.crt for TLS).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from modelops.adapters.kubernetes import ApiError, KubernetesApi
from modelops.adapters.prometheus import Prometheus, PrometheusConnection
from modelops.api.resource import ModelDeployment
from modelops.api.status import Measurement
from modelops.controller.metrics import MEASUREMENTS, PROMETHEUS_ERRORS, count
from modelops.core.analysis import QueryFailed, judge
from modelops.core.durations import parse_duration
from modelops.core.promql import TemplateError
from modelops.core.retraining.triggers import Reading
from modelops.core.rollout.rounds import AnalysisRound

logger = logging.getLogger("modelops.analysis")

Key = tuple[str, str]


class AnalysisRunner:
    def __init__(
        self,
        api: KubernetesApi,
        default_url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._default_url = default_url
        self._clock = clock
        self._servers: dict[PrometheusConnection, Prometheus] = {}
        # (deployment, subject) -> (version, when): one entry each, so a deployment that rolls
        # out version after version keeps one, not one per version it ever analysed.
        self._last_round: dict[tuple[Key, str], tuple[str | None, float]] = {}

    def use_api(self, api: KubernetesApi) -> None:
        self._api = api

    async def close(self) -> None:
        for server in self._servers.values():
            await server.close()
        self._servers.clear()

    def forget(self, key: Key) -> None:
        for entry in [e for e in self._last_round if e[0] == key]:
            del self._last_round[entry]

    def allowed(self, key: Key, deployment: ModelDeployment, planned: AnalysisRound) -> bool:
        """False when this process already ran this subject's round within the interval (the
        status that records it may not have been written)."""
        assert deployment.spec.analysis is not None
        interval = parse_duration(deployment.spec.analysis.interval).total_seconds()
        last = self._last_round.get((key, planned.subject))
        if last is None or last[0] != planned.version:
            return True
        return self._clock() - last[1] >= interval

    async def run(
        self, key: Key, deployment: ModelDeployment, planned: AnalysisRound
    ) -> list[Measurement]:
        self._last_round[(key, planned.subject)] = (planned.version, self._clock())
        server = await self._server(deployment)
        measurements = await asyncio.gather(
            *(self._measure(server, query.metric, query.query) for query in planned.queries)
        )
        for measurement in measurements:
            count(MEASUREMENTS, key, measurement.verdict)
        return list(measurements)

    async def readings(
        self, deployment: ModelDeployment, queries: list[tuple[str, str | TemplateError]]
    ) -> list[Reading]:
        """Values of the retraining triggers' queries (one series each), or why there is none."""
        server = await self._server(deployment)

        async def read(name: str, query: str | TemplateError) -> Reading:
            if isinstance(query, TemplateError):
                return Reading(name, None, query.message)
            if isinstance(server, QueryFailed):
                return Reading(name, None, server.message)
            answer = await server.query(query)
            if isinstance(answer, QueryFailed):
                PROMETHEUS_ERRORS.inc()
                return Reading(name, None, answer.message)
            if len(answer) != 1 or math.isnan(answer[0].value):
                return Reading(name, None, f"{len(answer)} series (need exactly one number)")
            return Reading(name, answer[0].value)

        return list(await asyncio.gather(*(read(name, query) for name, query in queries)))

    async def _measure(
        self, server: Prometheus | QueryFailed, metric: Any, query: str | TemplateError
    ) -> Measurement:
        if isinstance(query, TemplateError):
            return judge(metric, QueryFailed(query.message))
        if isinstance(server, QueryFailed):
            return judge(metric, server)
        answer = await server.query(query)
        if isinstance(answer, QueryFailed):
            PROMETHEUS_ERRORS.inc()
            logger.warning("Analysis query for %s failed: %s", metric.name, answer.message)
        return judge(metric, answer)

    async def _server(self, deployment: ModelDeployment) -> Prometheus | QueryFailed:
        analysis = deployment.spec.analysis
        settings = analysis.prometheus if analysis else None
        url = settings.url if settings else self._default_url
        if url is None:
            return QueryFailed(
                "no Prometheus is configured: set spec.analysis.prometheus.url, or start the "
                "operator with --prometheus-url"
            )
        connection = PrometheusConnection(url)
        if settings is not None:
            tls = settings.tls
            secret_values: dict[str, str] = {}
            for name in {settings.auth_secret, tls.ca_secret if tls else None} - {None}:
                assert name is not None
                found = await self._secret(deployment.metadata.namespace, name)
                if isinstance(found, QueryFailed):
                    return found
                secret_values.update(found)
            connection = PrometheusConnection(
                url,
                token=secret_values.get("token") if settings.auth_secret else None,
                username=secret_values.get("username") if settings.auth_secret else None,
                password=secret_values.get("password") if settings.auth_secret else None,
                insecure_skip_verify=bool(tls and tls.insecure_skip_verify),
                ca_pem=secret_values.get("ca.crt") if tls and tls.ca_secret else None,
            )
        server = self._servers.get(connection)
        if server is None:
            server = self._servers[connection] = Prometheus(connection)
        return server

    async def _secret(self, namespace: str, name: str) -> dict[str, str] | QueryFailed:
        try:
            found = await self._api.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        except ApiError as error:
            return QueryFailed(
                f"cannot read the Prometheus Secret {namespace}/{name} ({error.status})"
            )
        if found is None:
            return QueryFailed(f"the Prometheus Secret {namespace}/{name} does not exist")
        data: dict[str, str] = found.get("data") or {}
        return {key: base64.b64decode(value).decode() for key, value in data.items()}
