"""List-then-watch of one kind, and a queue that runs one worker per key.

The operator's hot kinds (its ModelDeployments, their InferenceServices and Jobs) come through
these rather than kopf's per-object machinery, which took most of the operator's CPU in a
burst (docs/performance.md). The API server selects the objects (label selector); a watch
that ends is resumed from the last resourceVersion seen (bookmarks keep it fresh), and one the
server no longer can resume (410 Gone) is replaced by a new list whose differences are
reported as changes, deletions included.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from modelops.adapters.kubernetes import ApiError, KubernetesApi

Key = tuple[str, str]
Body = dict[str, Any]
OnChange = Callable[[str, Body], None]
"""Called with ADDED, MODIFIED or DELETED and the object; must not block."""

logger = logging.getLogger("modelops.informer")

PAGE_SIZE = 500
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)
ABSENT_RETRY = 300.0


def key_of(body: Mapping[str, Any]) -> Key:
    metadata = body["metadata"]
    return metadata.get("namespace", "default"), metadata["name"]


class Informer:
    """The objects of one kind under `path` (a namespace's or the cluster's), selected by
    `selector`. `keep` is what to hold of each object for lookups (None: nothing but its
    resourceVersion, when the caller keeps its own copy)."""

    def __init__(
        self,
        api: Callable[[], KubernetesApi],
        path: str,
        on_change: OnChange,
        *,
        selector: str | None = None,
        keep: Callable[[Body], Any] | None = None,
        page_size: int = PAGE_SIZE,
        relogin: Callable[[], Awaitable[None]] | None = None,
        optional: bool = False,
    ) -> None:
        self._relogin = relogin
        self._optional = optional
        """A kind whose CRD may not be installed: a 404 is said once and looked at rarely."""
        self._api = api
        self._path = path
        self._on_change = on_change
        self._selector = selector
        self._keep = keep
        self._page_size = page_size
        self._versions: dict[Key, str] = {}
        self._kept: dict[Key, Any] = {}
        self._resource_version: str | None = None
        self.synced = asyncio.Event()
        """Set once a first list has been taken in."""
        self.tried = asyncio.Event()
        """Set when the first list has ended, whether it succeeded or not (not after the watch
        that follows it: that runs until the server ends it)."""

    def get(self, key: Key) -> Any:
        return self._kept.get(key)

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                if self._resource_version is None:
                    try:
                        await self._list()
                    finally:
                        self.tried.set()
                await self._watch()
                failures = 0
            except ApiError as error:
                if error.status == 410:
                    # The watch cache moved past our resourceVersion: start from a new list.
                    logger.info("Watch of %s expired (410 Gone); listing again", self._path)
                    self._resource_version = None
                    continue
                if error.status == 401 and self._relogin is not None:
                    await self._relogin()
                if error.status == 404 and self._optional:
                    if failures == 0:
                        logger.info("%s is not served (CRD not installed); not watched, "
                                    "looked for every %.0fs", self._path, ABSENT_RETRY)  # fmt: skip
                    failures += 1
                    await asyncio.sleep(ABSENT_RETRY)
                    continue
                failures = await self._pause(failures, error)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
                failures = await self._pause(failures, error)

    async def _pause(self, failures: int, error: Exception) -> int:
        delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
        logger.warning("Watch of %s failed (%s); again in %.0fs", self._path, error, delay)
        await asyncio.sleep(delay)
        return failures + 1

    def _params(self) -> dict[str, str]:
        return {"labelSelector": self._selector} if self._selector else {}

    async def _list(self) -> None:
        params = {**self._params(), "limit": str(self._page_size)}
        seen: set[Key] = set()
        while True:
            page = await self._api().request("GET", self._path, params=params)
            for item in page.get("items") or []:
                key = key_of(item)
                seen.add(key)
                if self._versions.get(key) != item["metadata"].get("resourceVersion"):
                    self._take(key, item)
                    self._on_change("ADDED", item)
            metadata = page.get("metadata") or {}
            if not metadata.get("continue"):
                break
            params["continue"] = metadata["continue"]
        for key in [key for key in self._versions if key not in seen]:
            self._on_change("DELETED", self._forget(key))
        self._resource_version = str(metadata.get("resourceVersion", ""))
        self.synced.set()

    async def _watch(self) -> None:
        params = {
            **self._params(),
            "resourceVersion": self._resource_version or "",
            "allowWatchBookmarks": "true",
        }
        async for kind, body in self._api().watch(self._path, params):
            version = (body.get("metadata") or {}).get("resourceVersion")
            if kind != "BOOKMARK":
                key = key_of(body)
                if kind == "DELETED":
                    self._forget(key)
                else:
                    self._take(key, body)
                self._on_change(kind, body)
            if version:
                self._resource_version = version

    def _take(self, key: Key, body: Body) -> None:
        self._versions[key] = str(body["metadata"].get("resourceVersion", ""))
        if self._keep is not None:
            self._kept[key] = self._keep(body)

    def _forget(self, key: Key) -> Body:
        """Drop a deleted object; returns what is known of it (for its deletion's handler)."""
        self._versions.pop(key, None)
        kept = self._kept.pop(key, None)
        if isinstance(kept, dict) and "metadata" in kept:
            return kept
        return {"metadata": {"namespace": key[0], "name": key[1]}}


class KeyedQueue:
    """Runs `process(key)` for added keys, never twice at once for one key: a key added while
    its worker runs is processed once more after it (changes in between coalesce)."""

    def __init__(self, process: Callable[[Key], Awaitable[None]]) -> None:
        self._process = process
        self._running: dict[Key, asyncio.Task[None]] = {}
        self._again: set[Key] = set()

    def add(self, key: Key) -> None:
        if key in self._running:
            self._again.add(key)
            return
        self._running[key] = asyncio.get_running_loop().create_task(self._work(key))

    def busy(self) -> int:
        return len(self._running)

    async def _work(self, key: Key) -> None:
        try:
            while True:
                try:
                    await self._process(key)
                except Exception:
                    logger.exception("Processing %s/%s failed", *key)
                if key not in self._again:
                    return
                self._again.discard(key)
        finally:
            self._running.pop(key, None)

    async def stop(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
