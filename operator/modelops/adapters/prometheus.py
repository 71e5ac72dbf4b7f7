"""Instant queries against a Prometheus HTTP API (aiohttp), answered as core.analysis values."""

from __future__ import annotations

import math
import ssl
from dataclasses import dataclass

import aiohttp

from modelops.adapters.http_auth import client_headers
from modelops.core.analysis import Answer, QueryFailed, Sample

QUERY_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class PrometheusConnection:
    url: str
    token: str | None = None
    username: str | None = None
    password: str | None = None
    insecure_skip_verify: bool = False
    ca_pem: str | None = None


def _ssl(connection: PrometheusConnection) -> ssl.SSLContext | bool:
    if not connection.url.startswith("https://"):
        return False
    if connection.insecure_skip_verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if connection.ca_pem:
        return ssl.create_default_context(cadata=connection.ca_pem)
    return True


def _value(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


class Prometheus:
    """One Prometheus server; credentials never leave this object (not logged, not in errors)."""

    def __init__(self, connection: PrometheusConnection) -> None:
        self.connection = connection
        headers = client_headers(connection.token, connection.username, connection.password)
        self._session = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=QUERY_TIMEOUT_SECONDS),
            connector=aiohttp.TCPConnector(ssl=_ssl(connection), limit=16),
        )

    async def close(self) -> None:
        await self._session.close()

    async def query(self, expression: str) -> Answer:
        """The instant vector (or scalar) the expression evaluates to now; QueryFailed with a
        reason a person can act on when Prometheus cannot answer."""
        url = self.connection.url.rstrip("/") + "/api/v1/query"
        try:
            async with self._session.post(url, data={"query": expression}) as response:
                if response.status in (401, 403):
                    return QueryFailed(
                        f"Prometheus refused the credentials ({response.status}); check "
                        "spec.analysis.prometheus.authSecret"
                    )
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    return QueryFailed(f"Prometheus answered {response.status} without JSON")
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            detail = str(error) or type(error).__name__
            return QueryFailed(f"Prometheus at {self.connection.url} unreachable: {detail}"[:500])
        if body.get("status") != "success":
            return QueryFailed(
                f"query failed: {body.get('errorType', 'error')}: {body.get('error', '')}"[:500]
            )
        data = body.get("data") or {}
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar" and isinstance(result, list):
            return [Sample({}, _value(result[1]))]
        if kind != "vector":
            return QueryFailed(f"the query returned a {kind}; return an instant vector")
        return [Sample(item.get("metric") or {}, _value(item["value"][1])) for item in result or []]
