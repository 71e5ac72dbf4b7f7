"""A small asynchronous Kubernetes API client for the few calls the operator makes.

It runs on aiohttp (already kopf's transport) so no call blocks the event loop, and it avoids
importing the official client (tens of MiB of generated models) in the operator's start-up path.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client import Counter, Histogram

from modelops.adapters.http_auth import client_headers
from modelops.core.patches import FIELD_MANAGER
from modelops.core.rate_limit import TokenBucket, retry_after

THROTTLED = Counter(
    "modelops_kube_api_throttled",
    "Requests the API server answered 429 (too many requests) and the client sent again.",
)
RATE_LIMIT_WAIT = Histogram(
    "modelops_kube_api_rate_limit_wait_seconds",
    "Time requests waited for the client-side rate limit (--kube-api-qps, --kube-api-burst).",
    buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
)
RETRIES_OF_429 = 10  # as client-go
READS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Connection:
    """Where the API server is and how to authenticate (from a kubeconfig or a ServiceAccount)."""

    server: str
    ca_path: str | None = None
    ca_data: bytes | None = None
    insecure: bool = False
    token: str | None = None
    username: str | None = None
    password: str | None = None
    certificate_path: str | None = None
    certificate_data: bytes | None = None
    private_key_path: str | None = None
    private_key_data: bytes | None = None


class ApiError(Exception):
    """The API server refused a request; `status` is the HTTP code, `reason` its Status reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def _refusal(status: int, reason: str, payload: bytes) -> ApiError:
    """An error answer as ApiError, whether a Status object or not: a resource the API server
    does not serve (a CRD not installed) is a plain-text "404 page not found", and a proxy in
    front of it may answer an HTML page."""
    try:
        decoded = json.loads(payload) if payload else {}
    except ValueError:
        decoded = None
    if not isinstance(decoded, dict):
        text = payload[:500].decode(errors="replace").strip()
        return ApiError(status, reason, text)
    return ApiError(
        status,
        str(decoded.get("reason", reason)),
        str(decoded.get("message", payload[:500].decode(errors="replace"))),
    )


class NotLeadingError(ApiError):
    """A write refused before it was sent: this replica does not hold its shard's lease."""

    def __init__(self) -> None:
        super().__init__(503, "NotLeading", "this replica does not hold its shard's lease")


def _always() -> bool:
    return True


def _ssl_context(connection: Connection) -> ssl.SSLContext | bool:
    if connection.insecure:
        return False
    context = ssl.create_default_context(
        cafile=connection.ca_path,
        cadata=connection.ca_data.decode() if connection.ca_data else None,
    )
    certificate, key = connection.certificate_path, connection.private_key_path
    if connection.certificate_data or connection.private_key_data:
        # ssl only loads client certificates from files: write them where only we can read.
        folder = tempfile.mkdtemp(prefix="modelops-client-cert-")
        if connection.certificate_data:
            certificate = os.path.join(folder, "tls.crt")
            with open(certificate, "wb") as handle:
                handle.write(connection.certificate_data)
        if connection.private_key_data:
            key = os.path.join(folder, "tls.key")
            with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as handle:
                handle.write(connection.private_key_data)
    if certificate:
        context.load_cert_chain(certificate, key)
    return context


class KubernetesApi:
    """The calls the reconciler needs. Paths are API paths ("/apis/group/version/...")."""

    def __init__(
        self,
        connection: Connection,
        *,
        timeout: float | None = 30.0,
        user_agent: str = "modelops",
        qps: float = 0.0,
        burst: int = 1,
        may_write: Callable[[], bool] = _always,
    ) -> None:
        # The user agent names the shard: the API server's audit log tells shards apart.
        headers = client_headers(
            connection.token, connection.username, connection.password, user_agent
        )
        self._server = connection.server.rstrip("/")
        self._session = aiohttp.ClientSession(
            headers=headers,
            # The API server gets `timeout` to answer; time queued for one of the 64
            # connections is not counted (a cold start of thousands queues there, and a
            # timed-out write the server still made is written again).
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout),
            connector=aiohttp.TCPConnector(ssl=_ssl_context(connection), limit=64),
        )
        self._bucket = TokenBucket(qps, burst)
        # The leader's fence: asked before every write, so a replica that lost its lease
        # (or never held it) sends none, even from a reconcile already under way.
        self._may_write = may_write

    async def close(self) -> None:
        await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
        fenced: bool = True,
    ) -> dict[str, Any]:
        """`fenced=False` only for the lease itself, which is how a replica becomes leader."""
        fence = fenced and method not in READS
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else None
        for attempt in range(RETRIES_OF_429 + 1):
            wait = self._bucket.reserve(asyncio.get_running_loop().time())
            if wait > 0:
                RATE_LIMIT_WAIT.observe(wait)
                await asyncio.sleep(wait)
            if fence and not self._may_write():  # asked last, after any wait
                raise NotLeadingError()
            async with self._session.request(
                method, self._server + path, data=data, headers=headers, params=params
            ) as response:
                payload = await response.read()
                if response.status == 429 and attempt < RETRIES_OF_429:
                    # Priority and fairness refused it before any work: safe to send again.
                    THROTTLED.inc()
                    pause = retry_after(response.headers.get("Retry-After"), attempt)
                else:
                    if response.status >= 400:
                        raise _refusal(response.status, str(response.reason), payload)
                    return json.loads(payload) if payload else {}
            await asyncio.sleep(pause)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def watch(
        self, path: str, params: Mapping[str, str]
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Watch events (type, object) until the server ends the stream; ApiError on ERROR."""
        query = {**params, "watch": "true", "timeoutSeconds": "300"}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=330)
        async with self._session.get(
            self._server + path, params=query, timeout=timeout
        ) as response:
            if response.status >= 400:
                raise ApiError(response.status, str(response.reason), await response.text())
            # One JSON document per line; read in chunks, not aiohttp's readline, whose line
            # limit (128 KiB) a large object's event can pass.
            pending = b""
            async for chunk in response.content.iter_any():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        status = event["object"]
                        raise ApiError(
                            status.get("code", 500),
                            status.get("reason", ""),
                            status.get("message", ""),
                        )
                    yield event["type"], event["object"]

    async def get(self, path: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", path)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    async def apply(
        self, path: str, manifest: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        """Server-side apply as the "modelops" field manager, taking over conflicting fields
        (a hand edit of a field we own is undone, as a controller should). A dry run passes
        admission (webhooks included) and stores nothing."""
        params = {"fieldManager": FIELD_MANAGER, "force": "true"}
        if dry_run:
            params["dryRun"] = "All"
        return await self.request(
            "PATCH", path, body=manifest, content_type="application/apply-patch+yaml", params=params
        )

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request(
            "PATCH", path, body=patch, content_type="application/merge-patch+json"
        )


def collection_path(group: str, version: str, plural: str, namespace: str | None = None) -> str:
    """A kind's objects in a namespace, or in every namespace (None); "" is the core group."""
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    return f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"


def namespaced_path(
    group: str, version: str, plural: str, namespace: str, name: str, subresource: str = ""
) -> str:
    path = f"{collection_path(group, version, plural, namespace)}/{name}"
    return f"{path}/{subresource}" if subresource else path
