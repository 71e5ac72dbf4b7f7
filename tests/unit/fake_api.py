"""An in-memory Kubernetes API for the controller's unit tests: it stores objects, records every
write, answers server-side apply with the managedFields the API server records, and can be told
to refuse the next writes (as kopf's own tests mock its API)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelops.adapters.kubernetes import ApiError
from tests.unit.rollout_driver import applied_by_modelops

LISTED = {"endpointslices", "pods"}
"""The collections the controller lists (a GET of anything else is of one object)."""


@dataclass(frozen=True)
class Write:
    method: str
    path: str
    body: Any


class FakeApi:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.writes: list[Write] = []
        self.refusals: dict[str, list[ApiError]] = {}
        """Errors the next writes of a kind (APPLY, DRYRUN, PATCH, POST) raise, first one first."""
        self._version = 100

    def _refuse(self, kind: str) -> None:
        pending = self.refusals.get(kind)
        if pending:
            raise pending.pop(0)

    def next_version(self) -> str:
        self._version += 1
        return str(self._version)

    def _stored(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        body["metadata"]["resourceVersion"] = self.next_version()
        self.objects[path] = body
        return copy.deepcopy(body)

    async def apply(
        self, path: str, manifest: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        if dry_run:  # admission only: refused as scripted, else nothing stored
            self.writes.append(Write("DRYRUN", path, copy.deepcopy(dict(manifest))))
            self._refuse("DRYRUN")
            return copy.deepcopy(dict(manifest))
        self.writes.append(Write("APPLY", path, copy.deepcopy(dict(manifest))))
        self._refuse("APPLY")
        body = copy.deepcopy(dict(manifest))
        previous = self.objects.get(path)
        body["metadata"]["uid"] = (previous or {}).get("metadata", {}).get("uid", f"uid-{path}")
        body["metadata"]["generation"] = (previous or {}).get("metadata", {}).get(
            "generation", 0
        ) + 1
        body["metadata"]["managedFields"] = applied_by_modelops(dict(manifest))
        body["status"] = (previous or {}).get("status", {})
        return self._stored(path, body)

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        self.writes.append(Write("PATCH", path, copy.deepcopy(dict(patch))))
        self._refuse("PATCH")
        body = copy.deepcopy(self.objects[path.removesuffix("/status")])
        merge(body, dict(patch))
        self.objects[path.removesuffix("/status")] = body
        return self._stored(path.removesuffix("/status"), body)

    async def get(self, path: str) -> dict[str, Any] | None:
        found = self.objects.get(path)
        return copy.deepcopy(found) if found is not None else None

    async def request(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        if method != "GET":
            self.writes.append(Write(method, path, options.get("body")))
            self._refuse(method)
            if method == "PATCH" and path in self.objects:
                body = copy.deepcopy(self.objects[path])
                merge(body, dict(options["body"]))
                manager = (options.get("params") or {}).get("fieldManager")
                if manager:  # the fields it set, as the API server records an Update
                    body["metadata"].setdefault("managedFields", []).append({
                        "manager": manager, "operation": "Update",
                        "fieldsV1": fields_v1(options["body"]),
                    })  # fmt: skip
                return self._stored(path, body)
            return {}
        if path in self.objects:
            return copy.deepcopy(self.objects[path])
        if path.rsplit("/", 1)[-1] in LISTED:
            return {"items": [], "metadata": {"resourceVersion": str(self._version)}}
        raise ApiError(404, "NotFound", f"{path} not found")

    async def close(self) -> None:
        return None


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """RFC 7386."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def fields_v1(patch: dict[str, Any]) -> dict[str, Any]:
    """The fieldsV1 of the values a merge patch sets (removals own nothing)."""
    return {
        f"f:{key}": fields_v1(value) if isinstance(value, dict) else {}
        for key, value in patch.items()
        if value is not None
    }
