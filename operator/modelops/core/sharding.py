"""Which ModelDeployments one operator process owns, and how the objects it writes say so.

A shard owns the deployments labelled `modelops.io/shard=<name>`; the default shard owns the
unlabelled ones (or, when it is the only process, every deployment). The selection is a label
selector the API server applies to lists and watches, so a shard never receives another's
events. Owned objects (InferenceServices, HTTPRoutes, Jobs) carry their deployment's shard
label, so the owner's watches of those kinds use the same selector: relabelling a deployment
hands it to the new shard, which relabels its objects when it first reads them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelops.core.labels import is_label_value

SHARD_LABEL = "modelops.io/shard"


class ShardNameError(ValueError):
    pass


@dataclass(frozen=True)
class Shard:
    name: str | None = None
    """The label value this process owns; None for the default shard."""
    others_exist: bool = False
    """Named shards run beside this default shard: it owns only unlabelled deployments."""

    def __post_init__(self) -> None:
        if self.name is not None and not (self.name and is_label_value(self.name)):
            raise ShardNameError(
                f"shard name {self.name!r} is not a label value: use 1-63 letters, digits, "
                "'-', '_' or '.', starting and ending with a letter or digit"
            )
        if self.name is not None and self.others_exist:
            raise ShardNameError("a named shard cannot also be the default shard")

    @property
    def selector(self) -> str | None:
        """The label selector of the deployments (and their objects) this process owns."""
        if self.name is not None:
            return f"{SHARD_LABEL}={self.name}"
        return f"!{SHARD_LABEL}" if self.others_exist else None

    def selecting(self, base: str) -> str:
        """`base` (a label selector) narrowed to this shard's objects."""
        selector = self.selector
        return f"{base},{selector}" if selector else base

    @property
    def display(self) -> str:
        return self.name if self.name is not None else "default"


def shard_labels(deployment_labels: Mapping[str, str]) -> dict[str, str]:
    """The shard label an owned object copies from its deployment (none when unlabelled)."""
    value = deployment_labels.get(SHARD_LABEL)
    return {SHARD_LABEL: value} if value is not None else {}


def handover_labels(
    owned: Mapping[str, Any], deployment_labels: Mapping[str, str]
) -> dict[str, Any] | None:
    """The merge patch that gives an owned object its deployment's shard label, or None when
    it already has it (the label is removed when the deployment has none)."""
    current = ((owned.get("metadata") or {}).get("labels") or {}).get(SHARD_LABEL)
    wanted = deployment_labels.get(SHARD_LABEL)
    if current == wanted:
        return None
    return {"metadata": {"labels": {SHARD_LABEL: wanted}}}
