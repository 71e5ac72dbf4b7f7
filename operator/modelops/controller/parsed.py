"""ModelDeployments as models, parsed once per stored body: an idle deployment's timers
(trigger readings, analysis rounds) reconcile it often without a change, and a parse of the
whole object (and a dump of its status to compare with the decision's) is most of the cost
of such a look."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from modelops.api.resource import ModelDeployment
from modelops.api.status import ModelDeploymentStatus

Key = tuple[str, str]

logger = logging.getLogger("modelops.reconciler")


def dump_status(status: ModelDeploymentStatus) -> dict[str, Any]:
    """A status as it is written."""
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


class ParsedDeployments:
    """Keyed by the body object itself: the reconciler replaces a deployment's stored body at
    every watch event and write (never edits it in place), so the same object is the same
    content."""

    def __init__(self) -> None:
        # Per key: the body parsed, the model, and (once asked) its status as written.
        self._cache: dict[Key, tuple[Mapping[str, Any], ModelDeployment, dict[str, Any] | None]]
        self._cache = {}

    def forget(self, key: Key) -> None:
        self._cache.pop(key, None)

    def get(self, key: Key, body: Mapping[str, Any]) -> ModelDeployment | None:
        """The body as a model; None (logged) when it does not parse, or is empty."""
        cached = self._cache.get(key)
        if cached is not None and cached[0] is body:
            return cached[1]
        if not body:
            return None  # deleted meanwhile
        try:
            deployment = ModelDeployment.model_validate(body)
        except ValidationError as error:
            # The CRD schema mirrors the models, so this means an older or edited CRD.
            logger.error("ModelDeployment %s/%s does not parse: %s", *key, error)
            return None
        self._cache[key] = (body, deployment, None)
        return deployment

    def status(self, key: Key, body: Mapping[str, Any]) -> dict[str, Any]:
        """The body's recorded status, normalised by the model as a decision's would be."""
        deployment = self.get(key, body)
        cached = self._cache.get(key)
        if deployment is None or cached is None or cached[1] is not deployment:
            try:
                return dump_status(ModelDeploymentStatus.model_validate(body.get("status") or {}))
            except ValidationError:
                return {}
        parsed, _, dumped = cached
        if dumped is None:
            dumped = dump_status(deployment.status)
            self._cache[key] = (parsed, deployment, dumped)
        return dumped
