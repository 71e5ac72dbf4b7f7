"""Constrained types shared by the spec and status models.

Each constraint is written once here and reaches both pydantic validation and the CRD's
OpenAPI schema, so the API server and the operator reject the same values.
"""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

from pydantic import Field, StringConstraints

# Go-style durations as Kubernetes and CEL's duration() read them: "30s", "5m", "1h30m".
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
Duration = Annotated[
    str,
    StringConstraints(pattern=DURATION_PATTERN, max_length=32),
    Field(json_schema_extra={"format": "duration"}),
]

# A DNS-1123 subdomain: names of Secrets, ServingRuntimes, and similar objects.
OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ObjectName = Annotated[str, StringConstraints(pattern=OBJECT_NAME_PATTERN, max_length=253)]

# A DNS-1123 label: names that end up inside other object names (metric and step names).
LABEL_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
LabelName = Annotated[str, StringConstraints(pattern=LABEL_NAME_PATTERN, max_length=63)]

# A resource quantity ("500m", "2Gi", 1): Kubernetes' int-or-string.
Quantity = Annotated[
    int | str,
    Field(json_schema_extra={"x-kubernetes-int-or-string": True}),
]

Percent = Annotated[int, Field(ge=0, le=100)]


class Rule(NamedTuple):
    """A CEL rule for `x-kubernetes-validations`, checked by the API server on every write."""

    rule: str
    message: str
    field_path: str | None = None
    reason: str | None = None


def validations(*rules: Rule) -> dict[str, Any]:
    """`json_schema_extra` that attaches CEL rules to a model or field."""
    rendered: list[dict[str, str]] = []
    for item in rules:
        entry = {"rule": item.rule, "message": item.message}
        if item.field_path:
            entry["fieldPath"] = item.field_path
        if item.reason:
            entry["reason"] = item.reason
        rendered.append(entry)
    return {"x-kubernetes-validations": rendered}
