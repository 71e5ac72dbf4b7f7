"""Base of the spec models and the MLflow naming rules they share."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel

from modelops.api.schema_types import (
    Rule,
    validations,
)

# MLflow's own rules: aliases are word characters and dashes, never "latest" or "v<number>".
MlflowAlias = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$", max_length=255)]
ALIAS_RULES = validations(
    Rule("self.lowerAscii() != 'latest'", "'latest' is reserved by MLflow and cannot be an alias"),
    Rule(
        "!self.matches('^[vV][0-9]+$')",
        "an alias cannot look like a version reference (v<number>); pick another alias name",
    ),
)


class ApiModel(BaseModel):
    """camelCase on the wire, attribute docstrings as schema descriptions, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="ignore",
        frozen=True,
    )


class SpecModel(ApiModel):
    """Base of every spec block."""
