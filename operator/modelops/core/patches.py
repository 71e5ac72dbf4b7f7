"""Comparing desired and observed objects, and the smallest patch between two states."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def is_subset(desired: Any, actual: Any) -> bool:
    """True when every value `desired` sets is present and equal in `actual`.

    Other writers (KServe's defaulting webhook, the API server) may add fields; those are not
    ours to compare. Lists must match in length, element by element.
    """
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(
            key in actual and is_subset(value, actual[key]) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(desired) == len(actual)
            and all(is_subset(d, a) for d, a in zip(desired, actual, strict=True))
        )
    return bool(desired == actual)


OWNED_METADATA = ("labels", "annotations", "ownerReferences")
FIELD_MANAGER = "modelops"
"""The field manager of every server-side apply the operator makes."""
HANDOVER_MANAGER = "modelops-shard-handover"
"""The field manager of the label patch that moves an owned object to its deployment's shard
(ours too: not a hand edit)."""

Path = tuple[str, ...]


def _owned_part(manifest: dict[str, Any]) -> dict[str, Any]:
    metadata = manifest.get("metadata", {})
    return {
        "metadata": {key: metadata[key] for key in OWNED_METADATA if key in metadata},
        "spec": manifest.get("spec", {}),
    }


def applied_paths(value: Any, prefix: Path = ()) -> frozenset[Path]:
    """The fields an apply of `value` sets, as server-side apply records them: a path per leaf,
    ending at any list (the lists we write are atomic or keyed, owned whole)."""
    if isinstance(value, dict) and value:
        return frozenset(
            path for key, item in value.items() for path in applied_paths(item, (*prefix, key))
        )
    return frozenset([prefix])


def fields_v1_paths(fields: dict[str, Any], prefix: Path = ()) -> frozenset[Path]:
    """The same paths from a managedFields entry's fieldsV1 (`f:name` map keys; `k:`, `v:` and
    `i:` list elements end a path at their list)."""
    found: set[Path] = set()
    for key, children in fields.items():
        if not key.startswith("f:"):
            continue
        path = (*prefix, key[2:])
        nested = {k: v for k, v in (children or {}).items() if k.startswith("f:")}
        found |= fields_v1_paths(nested, path) if nested else {path}
    return frozenset(found)


def owned_paths(observed: dict[str, Any], manager: str = FIELD_MANAGER) -> frozenset[Path] | None:
    """The fields `manager` set by its last apply, or None when it never applied the object."""
    for entry in observed.get("metadata", {}).get("managedFields") or []:
        if (
            entry.get("manager") == manager
            and entry.get("operation") == "Apply"
            and not entry.get("subresource")
        ):
            return fields_v1_paths(entry.get("fieldsV1") or {})
    return None


def edited_by_others(desired: dict[str, Any], observed: dict[str, Any]) -> bool:
    """Whether another writer (a person's kubectl edit or patch) now owns a field we set: what a
    hand edit of our object looks like, as opposed to a change we are about to make."""
    ours = applied_paths(_owned_part(desired))
    for entry in observed.get("metadata", {}).get("managedFields") or []:
        if entry.get("manager") in (FIELD_MANAGER, HANDOVER_MANAGER) or entry.get("subresource"):
            continue
        theirs = fields_v1_paths(entry.get("fieldsV1") or {})
        if any(_overlaps(path, mine) for path in theirs for mine in ours):
            return True
    return False


def _overlaps(one: Path, other: Path) -> bool:
    shorter = min(len(one), len(other))
    return one[:shorter] == other[:shorter]


def owned_fields_match(desired: dict[str, Any], observed: dict[str, Any]) -> bool:
    """Whether `observed` is what applying `desired` gives: every value we write is there (others
    may add fields), and we own exactly the fields `desired` sets, so a field we stopped writing
    (a canary entry, a probe) is not left behind. No bookkeeping annotation is needed, so nothing
    of ours reaches the pods KServe builds from the object."""
    owned = _owned_part(desired)
    if not is_subset(owned, observed):
        return False
    paths = owned_paths(observed)
    return paths is None or paths == applied_paths(owned)


def slim_managed_fields(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata with only the managedFields entries of the object itself (what
    owned_fields_match and edited_by_others read); those of the status subresource are most of
    a stored object's size and never read."""
    kept = [entry for entry in metadata.get("managedFields") or [] if not entry.get("subresource")]
    slimmed = {k: v for k, v in metadata.items() if k != "managedFields"}
    if kept:
        slimmed["managedFields"] = kept
    return slimmed


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The RFC 7386 JSON merge patch that turns `old` into `new` (empty when equal)."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif key not in old or before != value:
            patch[key] = value
    return patch


def content_hash(value: Any) -> str:
    """A short, stable fingerprint of a JSON-like value."""
    encoded = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]
