"""Label values from arbitrary names (model names may hold spaces, slashes, long text)."""

from __future__ import annotations

import hashlib
import re

_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_INVALID = re.compile(r"[^-A-Za-z0-9_.]")
MAX_LABEL_VALUE = 63


def is_label_value(text: str) -> bool:
    return len(text) <= MAX_LABEL_VALUE and _LABEL_VALUE.match(text) is not None


def label_value(text: str) -> str:
    """`text` when it is a valid label value, otherwise a readable, unique stand-in."""
    if is_label_value(text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    readable = _INVALID.sub("-", text)[: MAX_LABEL_VALUE - len(digest) - 1]
    readable = readable.strip("-_.")
    return f"{readable}-{digest}" if readable else digest
