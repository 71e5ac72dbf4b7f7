"""Leader election on a coordination.k8s.io Lease, as client-go does it: the decisions only.

Replicas of one shard compete for one Lease in the operator's namespace. Nobody trusts
another machine's clock: a candidate measures a lease's age from when *it* first saw the
lease's current record (its own monotonic clock), and takes the lease over only when that
record has not changed for the lease's duration. The leader writes only while its last
successful renewal was sent less than `renew_deadline` ago, which is shorter than the lease
duration: a leader cut off from the API server stops writing before any other replica could
take the lease (clocks may disagree on the time, not on how fast it passes).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

LEASE_PREFIX = "modelops-shard"
_NOT_IN_LEASE_NAME = re.compile(r"[^a-z0-9.-]")


class LeaseTimingError(ValueError):
    pass


@dataclass(frozen=True)
class LeaseTiming:
    """client-go's and controller-runtime's defaults: 15 s, 10 s, 2 s."""

    lease_duration: float = 15.0
    """How long the others wait, from their last sight of a change, before taking over."""
    renew_deadline: float = 10.0
    """How long the leader keeps writing after its last successful renewal was sent."""
    retry_period: float = 2.0
    """How often the leader renews and the candidates look."""

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline:
            raise LeaseTimingError(
                "the lease duration must be longer than the renew deadline, or two leaders "
                f"could write at once (got {self.lease_duration} s and {self.renew_deadline} s)"
            )
        if not self.renew_deadline > self.retry_period > 0:
            raise LeaseTimingError(
                "the renew deadline must be longer than the retry period (> 0), or the leader "
                f"loses the lease between two renewals (got {self.renew_deadline} s and "
                f"{self.retry_period} s)"
            )

    @property
    def lease_seconds(self) -> int:
        """leaseDurationSeconds is an integer: round up, never shorten what the others wait."""
        return -int(-self.lease_duration // 1)


class Step(Enum):
    CREATE = "create"
    """No lease yet: create it, holding it."""
    RENEW = "renew"
    """We hold it: write a new renewTime."""
    ACQUIRE = "acquire"
    """Released, or unchanged for its whole duration: take it over."""
    WAIT = "wait"
    """Another replica holds it."""


@dataclass(frozen=True)
class Sighting:
    """A lease record and when this replica first saw it (its own monotonic clock)."""

    record: Mapping[str, Any]
    version: str
    """The Lease's resourceVersion: any write changes it, even one of an identical record."""
    since: float


def sighting(
    previous: Sighting | None, record: Mapping[str, Any], version: str, now: float
) -> Sighting:
    """The lease's age restarts whenever it was written since the last look."""
    if previous is not None and previous.version == version and previous.record == record:
        return previous
    return Sighting(dict(record), version, now)


def decide(identity: str, seen: Sighting | None, now: float) -> Step:
    """What to do with the lease as last read (None: it does not exist)."""
    if seen is None:
        return Step.CREATE
    holder = seen.record.get("holderIdentity") or ""
    if holder == identity:
        return Step.RENEW
    if not holder:
        return Step.ACQUIRE
    duration = float(seen.record.get("leaseDurationSeconds") or 0)
    return Step.ACQUIRE if now >= seen.since + duration else Step.WAIT


def lease_spec(
    step: Step,
    identity: str,
    current: Mapping[str, Any],
    wall_time: str,
    timing: LeaseTiming,
) -> dict[str, Any]:
    """The record to write for CREATE, RENEW or ACQUIRE. Times are for people (kubectl); the
    decisions never read them."""
    renewing = step is Step.RENEW
    transitions = int(current.get("leaseTransitions") or 0)
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": timing.lease_seconds,
        "acquireTime": current.get("acquireTime", wall_time) if renewing else wall_time,
        "renewTime": wall_time,
        "leaseTransitions": transitions + 1 if step is Step.ACQUIRE else transitions,
    }


def released_spec(current: Mapping[str, Any], wall_time: str) -> dict[str, Any]:
    """What a leader writes when it stops cleanly, so a standby need not wait out the lease."""
    return {
        **current,
        "holderIdentity": None,
        "leaseDurationSeconds": 1,
        "renewTime": wall_time,
    }


def still_leading(renewed_at: float | None, now: float, timing: LeaseTiming) -> bool:
    """May the leader write? Only within the renew deadline of its last renewal's sending."""
    return renewed_at is not None and now - renewed_at < timing.renew_deadline


def lease_name(shard_name: str | None) -> str:
    """One Lease per shard. Shard names are label values ('_' and capitals allowed); a Lease's
    name is a DNS subdomain, so such names are folded and keep a hash of the original, lest
    two shards share a lease."""
    if shard_name is None:
        return LEASE_PREFIX  # not "-default": a shard may be named "default"
    folded = _NOT_IN_LEASE_NAME.sub("-", shard_name.lower())
    if folded != shard_name:
        folded += "-" + hashlib.sha256(shard_name.encode()).hexdigest()[:8]
    return f"{LEASE_PREFIX}-{folded}"
