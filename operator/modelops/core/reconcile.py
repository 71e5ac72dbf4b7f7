"""One reconcile of a ModelDeployment, as a pure function of spec, status and observations.

`decide` checks what the spec asks for can be served (the registry answered, the version is
servable, the InferenceService is ours), then runs the rollout state machine
(`core.rollout`). It returns the whole new status and the objects built from it; the
controller writes only what differs from what it observed. Events come from transitions only,
so running `decide` twice on the same inputs asks for the same objects and no new events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from modelops.api.resource import ModelDeployment
from modelops.api.status import (
    Condition,
    Measurement,
)
from modelops.core.conditions import (
    KSERVE_ANSWERING,
    MONITORING,
    READY,
    REGISTRY_REACHABLE,
    SPEC_SUPPORTED,
    ConditionUpdate,
    condition,
    with_condition,
)
from modelops.core.decision import Decision, EventIntent, Problem
from modelops.core.inference_logging import monitoring_condition
from modelops.core.registry import (
    RegistryFailure,
    RegistryObservation,
    Unresolvable,
    data_version,
    model_format,
    readiness,
    storage_uri,
)
from modelops.core.retraining.cron import CronError, parse
from modelops.core.retraining.loop import RetrainingInputs, candidate_view
from modelops.core.rollout.objects import inference_service_name
from modelops.core.rollout.observe import NO_FACTS, WorkloadFacts
from modelops.core.rollout.status import rollout_decision
from modelops.core.served import ServedModel, served_model


def what_to_serve(
    deployment: ModelDeployment, registry: RegistryObservation | None
) -> ServedModel | Problem:
    """What the InferenceService should serve: the spec's storageUri as it is, or the version
    the registry resolved (pinned, or where the alias points)."""
    serving = deployment.spec.serving
    override = serving.model_format.name if serving.model_format else None
    override_version = serving.model_format.version if serving.model_format else None
    if serving.storage_uri is not None:
        if override is None:
            return Problem(
                "ModelFormatRequired",
                "set spec.serving.modelFormat.name (for example sklearn): with a storageUri it "
                "cannot be derived from the registry's MLmodel flavors",
            )
        return ServedModel(
            storage_uri=serving.storage_uri,
            model_format=override,
            model_format_version=override_version,
            version=deployment.spec.model.version,
            model_format_rule="spec.serving.modelFormat",
            storage_rule="spec.serving.storageUri",
        )
    if registry is None:
        return Problem("Resolving", "asking the registry which version to serve", "Pending")
    if isinstance(registry, RegistryFailure):
        return Problem(registry.reason, registry.message)
    model = deployment.spec.model
    servable, why_not = readiness(registry.status, registry.status_message)
    if not servable:
        pending = registry.status == "PENDING_REGISTRATION"
        return Problem(
            "VersionNotReady" if pending else "VersionRegistrationFailed",
            f"version {registry.version} of {model.name!r}: {why_not}",
            "Pending" if pending else "Failed",
        )
    storage = storage_uri(
        name=model.name,
        version=registry.version,
        download_uri=registry.download_uri,
        mode=serving.storage.mode,
        artifacts_destination=serving.storage.artifacts_destination
        or (model.registry.artifacts_destination if model.registry else None)
        or registry.artifacts_destination,
    )
    if isinstance(storage, Unresolvable):
        return Problem(storage.reason, storage.message)
    chosen = model_format(dict(registry.flavors), override=override)
    return ServedModel(
        storage_uri=storage.storage_uri,
        model_format=chosen.name,
        model_format_version=override_version,
        version=registry.version,
        run_id=registry.run_id,
        source=registry.source or None,
        model_format_rule=chosen.rule,
        storage_rule=storage.rule,
        data_version=data_version(dict(registry.run_tags)),
    )


def unsupported_blocks(deployment: ModelDeployment) -> list[str]:
    """Spec blocks the schema accepts but this operator version does not act on yet."""
    spec = deployment.spec
    notes = []
    for index, trigger in enumerate(spec.retraining.triggers if spec.retraining else []):
        if trigger.schedule is None:
            continue
        try:
            parse(trigger.schedule, trigger.time_zone)
        except CronError as error:
            notes.append(f"spec.retraining.triggers[{index}].schedule ({error}; it never fires)")
    return notes


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    for reference in obj.get("metadata", {}).get("ownerReferences", []) or []:
        if reference.get("controller"):
            return str(reference.get("uid"))
    return None


def decide(
    deployment: ModelDeployment,
    observed: Mapping[str, Any] | None,
    now: datetime,
    registry: RegistryObservation | None = None,
    measurements: Sequence[Measurement] | None = None,
    retraining: RetrainingInputs | None = None,
    facts: WorkloadFacts = NO_FACTS,
) -> Decision:
    """The writes one reconcile asks for. `measurements` is an analysis round that just ran
    (see core.progressive.analysis_round)."""
    now = now.replace(microsecond=0)
    previous = deployment.status
    generation = deployment.metadata.generation
    name = inference_service_name(deployment)
    conditions: list[Condition] = list(previous.conditions)

    def set_condition(update: ConditionUpdate) -> None:
        nonlocal conditions
        conditions = with_condition(conditions, update, now=now, generation=generation)

    notes = unsupported_blocks(deployment)
    if notes:
        set_condition(
            ConditionUpdate(
                SPEC_SUPPORTED,
                "False",
                "NotImplemented",
                "validated but not acted on by this modelops version: " + "; ".join(notes),
            )
        )
    else:
        set_condition(
            ConditionUpdate(
                SPEC_SUPPORTED, "True", "AllSupported", "every block set in the spec is acted on"
            )
        )

    if deployment.spec.serving.storage_uri is None and registry is not None:
        if isinstance(registry, RegistryFailure) and registry.transient:
            set_condition(
                ConditionUpdate(REGISTRY_REACHABLE, "False", registry.reason, registry.message)
            )
            known = last_resolved(deployment)
            if known is None:
                return held_decision(deployment, registry, now, conditions)
            return registry_silent_decision(
                deployment, registry, rollout_decision(
                    deployment, observed, known, now, conditions, measurements, retraining,
                    facts, hold=f"{registry.message}; nothing is promoted until it answers",
                ),
            )  # fmt: skip
        set_condition(
            ConditionUpdate(REGISTRY_REACHABLE, "True", "Answered", "the registry answered")
        )

    monitoring = monitoring_condition(deployment, registry)
    if monitoring is not None:
        set_condition(monitoring)
    else:
        conditions = [c for c in conditions if c.type != MONITORING]

    served = what_to_serve(candidate_view(deployment), registry)
    if isinstance(served, Problem):
        return failed_decision(deployment, served, now, conditions)

    if observed is not None and controller_uid(observed) not in (None, deployment.metadata.uid):
        problem = Problem(
            "InferenceServiceConflict",
            f"an InferenceService named {name} exists and is controlled by another owner; "
            "delete it or rename this ModelDeployment",
        )
        return failed_decision(deployment, problem, now, conditions)

    return rollout_decision(
        deployment, observed, served, now, conditions, measurements, retraining, facts
    )


def failed_decision(
    deployment: ModelDeployment,
    problem: Problem,
    now: datetime,
    conditions: list[Condition] | None = None,
) -> Decision:
    """Nothing to apply; status and an Event say what is wrong and what to do."""
    now = now.replace(microsecond=0)
    previous = deployment.status
    if conditions is None:
        conditions = list(previous.conditions)
    generation = deployment.metadata.generation
    conditions = with_condition(
        conditions,
        ConditionUpdate(READY, "False", problem.reason, problem.message),
        now=now,
        generation=generation,
    )
    before = condition(previous.conditions, READY)
    events: tuple[EventIntent, ...] = ()
    if before is None or before.reason != problem.reason:
        events = (EventIntent("Warning", problem.reason, problem.message),)
    # Everything else stays as it was: what is served and any rollout in flight are unchanged.
    status = previous.model_copy(
        update={
            "observed_generation": generation,
            "phase": problem.phase,
            "message": problem.message,
            "conditions": conditions,
        }
    )
    return Decision(inference_service=None, status=status, events=events)


def refused_decision(
    deployment: ModelDeployment, decision: Decision, problem: Problem, now: datetime
) -> Decision:
    """The API server refused the InferenceService the decision asked for: keep what the
    decision recorded, say why nothing changed, and do not ask for the same object again."""
    refused = deployment.model_copy(update={"status": decision.status})
    failed = failed_decision(refused, problem, now)
    before = condition(deployment.status.conditions, READY)
    events = failed.events
    if before is not None and before.reason == problem.reason:
        events = ()
    return Decision(inference_service=None, status=failed.status, events=events)


def held_decision(
    deployment: ModelDeployment,
    failure: RegistryFailure,
    now: datetime,
    conditions: list[Condition],
) -> Decision:
    """The registry cannot answer: change nothing that is served, say so, retry later."""
    previous = deployment.status
    before = condition(previous.conditions, REGISTRY_REACHABLE)
    events: tuple[EventIntent, ...] = ()
    if before is None or before.status != "False":
        events = (EventIntent("Warning", failure.reason, failure.message),)
    serving = previous.stable is not None
    status = previous.model_copy(
        update={
            "observed_generation": deployment.metadata.generation,
            "phase": previous.phase if serving else "Pending",
            "message": f"{failure.message}; "
            + ("still serving the last resolved version" if serving else "nothing served yet")
            + ", retrying",
            "conditions": conditions,
        }
    )
    return Decision(inference_service=None, status=status, events=events)


def last_resolved(deployment: ModelDeployment) -> ServedModel | None:
    """What the registry said last, as recorded: the canary in flight, or else the stable
    version (None before anything was served)."""
    status = deployment.status
    if status.stable is None:
        return None
    canary = status.canary
    in_flight = canary is not None and not canary.aborting and not canary.restoring
    return served_model(deployment, canary if in_flight and canary else status.stable)


def registry_silent_decision(
    deployment: ModelDeployment, failure: RegistryFailure, decision: Decision
) -> Decision:
    """The registry cannot answer while a version is served: the rollout goes on with what it
    resolved last, so the analysis still rolls a failing canary back and watches the stable
    version, but a canary neither advances nor is promoted (the alias may have moved), and
    registry writes wait for the registry."""
    before = condition(deployment.status.conditions, REGISTRY_REACHABLE)
    events = decision.events
    if before is None or before.status != "False":
        events = (*events, EventIntent("Warning", failure.reason, failure.message))
    status = decision.status
    if status.canary is None:
        status = status.model_copy(
            update={"message": f"{status.message}; {failure.message}, retrying"}
        )
    return replace(decision, status=status, events=events, registry_writes=())


def kserve_held(deployment: ModelDeployment, silence: str, now: datetime) -> Decision:
    """KServe did not answer the dry run of a transition that needs it (`silence` says what the
    API server reported): nothing is recorded (no promotion, no rollback or failure on
    readiness KServe cannot report), the condition and a Warning say why, and it is decided
    again when KServe answers."""
    previous = deployment.status
    message = (
        f"KServe did not answer ({silence}); the rollout holds: nothing is promoted or rolled "
        "back on readiness until it does"
    )[:1000]
    before = condition(previous.conditions, KSERVE_ANSWERING)
    events: tuple[EventIntent, ...] = ()
    if before is None or before.status != "False":
        events = (EventIntent("Warning", "KServeNotAnswering", message),)
    update = ConditionUpdate(KSERVE_ANSWERING, "False", "WebhookNotAnswering", message)
    status = previous.model_copy(
        update={
            "conditions": with_condition(
                previous.conditions, update, now=now, generation=deployment.metadata.generation
            )
        }
    )
    return Decision(inference_service=None, status=status, events=events)


def kserve_answered(deployment: ModelDeployment, decision: Decision, now: datetime) -> Decision:
    """KServe answered again: the held transition goes ahead and the condition says so."""
    before = condition(deployment.status.conditions, KSERVE_ANSWERING)
    if before is None or before.status == "True":
        return decision
    update = ConditionUpdate(KSERVE_ANSWERING, "True", "WebhookAnswered", "KServe answers")
    conditions = with_condition(
        decision.status.conditions, update, now=now, generation=deployment.metadata.generation
    )
    event = EventIntent("Normal", "KServeAnswering", "KServe answers again; the rollout goes on")
    return replace(
        decision,
        status=decision.status.model_copy(update={"conditions": conditions}),
        events=(*decision.events, event),
    )
