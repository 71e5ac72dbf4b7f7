"""Registry write-back owed by a status (pure): the rejected tag of rolled-back versions and the
promoteAlias of a promoted one, recorded in status once written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from modelops.api.resource import ModelDeployment
from modelops.api.status import (
    ModelDeploymentStatus,
)

REJECTED_TAG = ("modelops.io/status", "rejected")


@dataclass(frozen=True)
class RegistryWrite:
    kind: Literal["alias", "tag"]
    version: str
    alias: str = ""


def registry_writes(
    deployment: ModelDeployment, status: ModelDeploymentStatus
) -> tuple[RegistryWrite, ...]:
    """Writes owed to the registry (level-based: recorded in status once done)."""
    if deployment.spec.serving.storage_uri is not None:
        return ()
    owed = [
        RegistryWrite("tag", entry.version)
        for entry in status.rejected_versions
        if entry.version is not None and not entry.registry_tagged
    ]
    rollout = deployment.spec.rollout
    stable = status.stable
    if (
        rollout is not None
        and rollout.promote_alias
        and stable is not None
        and stable.version is not None
        and status.promoted_alias_version != stable.version
        and status.canary is None
    ):
        owed.append(RegistryWrite("alias", stable.version, rollout.promote_alias))
    return tuple(owed)


def after_registry_writes(
    status: ModelDeploymentStatus, done: tuple[RegistryWrite, ...]
) -> ModelDeploymentStatus:
    tagged = {w.version for w in done if w.kind == "tag"}
    aliased = [w.version for w in done if w.kind == "alias"]
    rejected = [
        r.model_copy(update={"registry_tagged": True}) if r.version in tagged else r
        for r in status.rejected_versions
    ]
    update: dict[str, Any] = {"rejected_versions": rejected}
    if aliased:
        update["promoted_alias_version"] = aliased[-1]
    return status.model_copy(update=update)
