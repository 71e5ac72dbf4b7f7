"""The ModelDeployment API: pydantic models that are the single source of the CRD."""

from modelops.api.resource import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    ModelDeployment,
    ObjectMeta,
)
from modelops.api.spec import ModelDeploymentSpec
from modelops.api.status import Condition, ModelDeploymentStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "Condition",
    "ModelDeployment",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "ObjectMeta",
]
