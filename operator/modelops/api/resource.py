"""Identity of the ModelDeployment resource and the objects it owns."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from modelops.api.spec import ModelDeploymentSpec
from modelops.api.status import ModelDeploymentStatus

GROUP = "modelops.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ["md"]

KSERVE_GROUP = "serving.kserve.io"
KSERVE_VERSION = "v1beta1"
INFERENCE_SERVICE_PLURAL = "inferenceservices"

# Longest deployment name: it names the InferenceService, whose Services and Deployments
# append "-predictor" and canary names and must stay DNS-1035 labels (63 characters).
MAX_NAME_LENGTH = 45


class ObjectMeta(BaseModel):
    """The parts of metadata the operator reads."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    name: str
    namespace: str = "default"
    uid: str = ""
    generation: int = 0
    resource_version: str = Field(default="", alias="resourceVersion")
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class ModelDeployment(BaseModel):
    """A whole ModelDeployment as read from the API server."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    metadata: ObjectMeta
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus = Field(default_factory=ModelDeploymentStatus)
