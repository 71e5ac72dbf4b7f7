"""Leader election's decisions (core/leases.py), and the property they exist for: whatever the
order of reads, writes, lost requests, lost answers, releases and clock offsets, two replicas
never both hold the write fence at the same moment."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelops.core.leases import (
    LeaseTiming,
    LeaseTimingError,
    Sighting,
    Step,
    decide,
    lease_name,
    lease_spec,
    released_spec,
    sighting,
    still_leading,
)

TIMING = LeaseTiming(lease_duration=15, renew_deadline=10, retry_period=2)


def held_by(holder: str | None, duration: int = 15) -> dict[str, Any]:
    return {"holderIdentity": holder, "leaseDurationSeconds": duration, "renewTime": "t"}


def test_no_lease_is_created() -> None:
    assert decide("a", None, now=0) is Step.CREATE


def test_our_own_lease_is_renewed() -> None:
    assert decide("a", Sighting(held_by("a"), "1", since=0), now=100) is Step.RENEW


def test_a_released_lease_is_taken_at_once() -> None:
    assert decide("a", Sighting(held_by(None), "1", since=0), now=0) is Step.ACQUIRE
    assert decide("a", Sighting(held_by(""), "1", since=0), now=0) is Step.ACQUIRE


def test_another_holders_lease_is_taken_only_after_its_duration_unchanged() -> None:
    seen = Sighting(held_by("b"), "1", since=100)
    assert decide("a", seen, now=114.9) is Step.WAIT
    assert decide("a", seen, now=115) is Step.ACQUIRE


def test_a_renewal_restarts_the_wait() -> None:
    first = sighting(None, held_by("b"), "1", now=100)
    same = sighting(first, held_by("b"), "1", now=110)
    assert same.since == 100
    renewed = sighting(same, held_by("b"), "2", now=112)
    assert renewed.since == 112
    assert decide("a", renewed, now=120) is Step.WAIT


def test_a_write_of_the_identical_record_still_counts_as_a_renewal() -> None:
    first = sighting(None, held_by("b"), "1", now=0)
    assert sighting(first, held_by("b"), "2", now=5).since == 5


def test_the_duration_the_holder_wrote_is_the_one_waited() -> None:
    seen = Sighting(held_by("b", duration=60), "1", since=0)
    assert decide("a", seen, now=59) is Step.WAIT
    assert decide("a", seen, now=60) is Step.ACQUIRE


def test_records_written_per_step() -> None:
    current = {
        "holderIdentity": "b", "leaseDurationSeconds": 15, "acquireTime": "old",
        "renewTime": "old", "leaseTransitions": 3,
    }  # fmt: skip
    taken = lease_spec(Step.ACQUIRE, "a", current, "now", TIMING)
    assert taken == {
        "holderIdentity": "a", "leaseDurationSeconds": 15, "acquireTime": "now",
        "renewTime": "now", "leaseTransitions": 4,
    }  # fmt: skip
    renewed = lease_spec(Step.RENEW, "a", {**current, "holderIdentity": "a"}, "now", TIMING)
    assert renewed["acquireTime"] == "old" and renewed["renewTime"] == "now"
    assert renewed["leaseTransitions"] == 3
    created = lease_spec(Step.CREATE, "a", {}, "now", TIMING)
    assert created["leaseTransitions"] == 0 and created["acquireTime"] == "now"


def test_a_release_empties_the_holder_and_shortens_the_lease() -> None:
    released = released_spec(lease_spec(Step.CREATE, "a", {}, "t0", TIMING), "t1")
    assert released["holderIdentity"] is None
    assert released["leaseDurationSeconds"] == 1
    assert released["renewTime"] == "t1"


def test_lease_seconds_round_up() -> None:
    assert LeaseTiming(lease_duration=2.5, renew_deadline=2, retry_period=1).lease_seconds == 3
    assert TIMING.lease_seconds == 15


def test_the_fence_closes_at_the_renew_deadline() -> None:
    assert not still_leading(None, 0, TIMING)
    assert still_leading(100, 109.9, TIMING)
    assert not still_leading(100, 110, TIMING)


@pytest.mark.parametrize(
    ("duration", "deadline", "retry", "named"),
    [
        (10, 10, 2, "lease duration must be longer than the renew deadline"),
        (5, 10, 2, "lease duration must be longer than the renew deadline"),
        (15, 2, 2, "renew deadline must be longer than the retry period"),
        (15, 10, 0, "renew deadline must be longer than the retry period"),
    ],
)
def test_timings_that_could_let_two_leaders_write_are_refused(
    duration: float, deadline: float, retry: float, named: str
) -> None:
    with pytest.raises(LeaseTimingError, match=named):
        LeaseTiming(lease_duration=duration, renew_deadline=deadline, retry_period=retry)


def test_lease_names_are_one_per_shard_and_valid() -> None:
    assert lease_name(None) == "modelops-shard"
    assert lease_name("default") == "modelops-shard-default"
    assert lease_name("east-1") == "modelops-shard-east-1"
    folded = lease_name("East_1")
    assert folded.startswith("modelops-shard-east-1-") and folded != lease_name("east_1")
    assert folded == folded.lower()


# ---- the property: one writer at a time ------------------------------------------------


@dataclass
class Replica:
    name: str
    offset: float
    """Its monotonic clock reads real time plus this: clocks disagree on the time, not rate."""
    fence_length: float
    seen: Sighting | None = None
    renewed_at: float | None = None
    fences: list[tuple[float, float]] = field(default_factory=list)
    """Real-time intervals over which it was allowed to write."""

    def clock(self, real: float) -> float:
        return real + self.offset

    def leading(self, now: float) -> bool:
        return self.renewed_at is not None and now - self.renewed_at < self.fence_length

    def renewed(self, sent_local: float) -> None:
        self.renewed_at = sent_local
        start = sent_local - self.offset
        self.fences.append((start, start + self.fence_length))

    def released(self, real: float) -> None:
        # The fence closes before the release is written.
        self.fences = [(start, min(end, real)) for start, end in self.fences]
        self.renewed_at = None


@dataclass
class Store:
    record: dict[str, Any] | None = None
    version: int = 0


ACTIONS = st.one_of(
    st.tuples(st.just("wait"), st.floats(0, 8)),
    st.tuples(
        st.just("try"),
        st.integers(0, 2),
        st.sampled_from(["ok", "ok", "request lost", "answer lost"]),
    ),
    st.tuples(st.just("release"), st.integers(0, 2)),
)
RUNS = st.tuples(
    st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=3), st.lists(ACTIONS, max_size=120)
)


def two_could_write(
    run: tuple[list[float], list[tuple[Any, ...]]], fence_length: float = TIMING.renew_deadline
) -> bool:
    """Play the run; true when two replicas' write fences overlapped in real time."""
    offsets, actions = run
    replicas = [Replica(f"r{i}", offset, fence_length) for i, offset in enumerate(offsets)]
    store = Store()
    real = 0.0
    for action in actions:
        if action[0] == "wait":
            real += action[1]
            continue
        replica = replicas[action[1]]
        now = replica.clock(real)
        if action[0] == "release":
            if replica.leading(now) and store.record is not None:
                replica.released(real)
                store.record = released_spec(store.record, str(real))
                store.version += 1
            continue
        # A read, the decision, and a compare-and-swap write at the same instant (a write
        # committed later only makes the writer's fence, counted from its sending, shorter
        # than what the others wait from their sight of it).
        if store.record is not None:
            replica.seen = sighting(replica.seen, store.record, str(store.version), now)
        else:
            replica.seen = None
        step = decide(replica.name, replica.seen, now)
        if step is Step.WAIT or action[2] == "request lost":
            continue
        store.record = lease_spec(step, replica.name, store.record or {}, str(real), TIMING)
        store.version += 1
        if action[2] == "ok":
            replica.renewed(now)
            replica.seen = Sighting(store.record, str(store.version), now)
    # Overlaps shorter than a microsecond are float rounding of the clock offsets (a release
    # and the next acquisition at one instant), not two writers.
    return any(
        min(end, other_end) - max(start, other_start) > 1e-6
        for one, other in itertools.combinations(replicas, 2)
        for start, end in one.fences
        for other_start, other_end in other.fences
    )


@settings(max_examples=400, deadline=None)
@given(RUNS)
def test_two_replicas_never_hold_the_fence_at_once(
    run: tuple[list[float], list[tuple[Any, ...]]],
) -> None:
    assert not two_could_write(run)


def test_the_simulation_sees_two_writers_when_the_fence_outlasts_the_lease() -> None:
    """Not vacuous: a takeover after the lease while the old leader's fence is still open."""
    run = (
        [0.0, 0.0, 0.0],
        [("try", 0, "ok"), ("try", 1, "ok"), ("wait", 8.0), ("wait", 8.0), ("try", 1, "ok")],
    )
    assert two_could_write(run, fence_length=TIMING.lease_duration + 3)
    assert not two_could_write(run)
