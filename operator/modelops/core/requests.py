"""Manual controls (pure): the annotations a person (or `modelops promote|rollback|retry|pause|
resume|retrain`) sets on a ModelDeployment, and which of them are not acted on yet. A request
acts once per value; the value is recorded in status.handledRequests."""

from __future__ import annotations

from dataclasses import dataclass

PROMOTE_ANNOTATION = "modelops.io/promote"
ROLLBACK_ANNOTATION = "modelops.io/rollback"
RETRY_ANNOTATION = "modelops.io/retry"
PAUSED_ANNOTATION = "modelops.io/paused"
RETRAIN_ANNOTATION = "modelops.io/retrain"

REQUEST_ANNOTATIONS = {
    "promote": PROMOTE_ANNOTATION,
    "rollback": ROLLBACK_ANNOTATION,
    "retry": RETRY_ANNOTATION,
    "retrain": RETRAIN_ANNOTATION,
}


@dataclass(frozen=True)
class Requests:
    """Manual controls from annotations. promote/rollback/retry/retrain hold values not yet
    acted on (a request acts once per value, recorded in status.handledRequests)."""

    paused: bool = False
    promote: str | None = None
    rollback: str | None = None
    retry: str | None = None
    retrain: str | None = None


def requests_from(annotations: dict[str, str], handled: dict[str, str]) -> Requests:
    def fresh(kind: str) -> str | None:
        value = annotations.get(REQUEST_ANNOTATIONS[kind])
        return value if value is not None and handled.get(kind) != value else None

    paused = annotations.get(PAUSED_ANNOTATION, "").lower() in ("true", "yes", "1")
    return Requests(
        paused=paused,
        promote=fresh("promote"),
        rollback=fresh("rollback"),
        retry=fresh("retry"),
        retrain=fresh("retrain"),
    )
