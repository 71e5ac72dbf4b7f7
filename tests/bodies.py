"""Building test objects: a deep copy of a base body with values set at paths."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any


def with_values(base: Mapping[str, Any], changes: Mapping[Sequence[str], Any]) -> dict[str, Any]:
    """A deep copy of `base` with each value set at its key path (None deletes the key)."""
    body: dict[str, Any] = copy.deepcopy(dict(base))
    for path, value in changes.items():
        *parents, leaf = path
        node = body
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return body
