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


def owned_fields_match(desired: dict[str, Any], observed: dict[str, Any]) -> bool:
    """Whether `observed` holds every value of `desired` that its owner writes: the spec and
    the labels, annotations and owner references it sets (never fields others add)."""
    metadata = desired.get("metadata", {})
    owned = {
        "metadata": {key: metadata[key] for key in OWNED_METADATA if key in metadata},
        "spec": desired.get("spec", {}),
    }
    return is_subset(owned, observed)


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
