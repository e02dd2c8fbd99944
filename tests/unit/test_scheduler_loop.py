"""The scheduler loop against a fake of its store port: what it reads, decides and applies.

The policy itself has its own tests (test_policy.py); these hold the loop to its promises: it
places what fits and wakes the node, reads only what changed between full snapshots, decides
nothing when nothing changed, starts a `--begin` job on time, reads everything again after a
placement it could not apply, and judges dead nodes only after a whole heartbeat timeout.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from conductor.scheduler.loop import Scheduler
from conductor.scheduler.policy import NodeView, PendingJob, Placement
from conductor.store import Reaped


class FakeStore:
    """The scheduler's store port in memory, with the change feed of the real one."""

    def __init__(self, cpus: int = 2) -> None:
        self.pending: dict[int, PendingJob] = {}
        self.events: list[tuple[int, int]] = []  # (event id, job id)
        self.cpus = cpus
        self.used: list[int] = []
        self.placed: dict[int, str] = {}
        self.reasons: dict[int, str] = {}
        self.snapshots = 0
        self.applies = 0
        self.lose_next = False
        self.fail_next = False
        self.reaps = 0

    def add(self, job: PendingJob) -> None:
        self.pending[job.id] = job
        self.events.append((len(self.events) + 1, job.id))

    def latest(self) -> int:
        return self.events[-1][0] if self.events else 0

    # --- the port
    def pending_snapshot(self) -> tuple[int, list[PendingJob]]:
        self.snapshots += 1
        return self.latest(), sorted((replace(j) for j in self.pending.values()), key=lambda j: j.id)

    def pending_changes(self, after_event: int) -> tuple[int, set[int], list[PendingJob]]:
        touched = {job_id for event, job_id in self.events if event > after_event}
        return self.latest(), touched, [replace(self.pending[i]) for i in sorted(touched) if i in self.pending]

    def node_views(self, *, live_after: datetime | None = None) -> list[NodeView]:
        free = [c for c in range(self.cpus) if c not in self.used]
        return [NodeView("n1", tuple(range(self.cpus)), free, 1000, 1000, frozenset({"debug"}), len(self.placed))]

    def running_per_array(self) -> dict[int, int]:
        return {}

    def apply_decision(
        self, placements: Sequence[Placement], reasons: Mapping[int, str], *, estimates: object = None
    ) -> list[Placement]:
        self.applies += 1
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("the database went away")
        applied = []
        for placement in placements:
            if self.lose_next:  # cancelled meanwhile: its compare-and-set finds no PENDING row
                self.lose_next = False
                del self.pending[placement.job_id]
                continue
            del self.pending[placement.job_id]
            self.placed[placement.job_id] = placement.node
            self.used.extend(placement.cpu_ids)
            applied.append(placement)
        self.reasons.update(reasons)
        return applied

    def reap_dead_nodes(self, stale_before: datetime) -> Reaped:
        self.reaps += 1
        return Reaped()

    def dependency_targets(self) -> dict[int, Any]:
        return {}

    def job_summaries(self, ids: Any) -> dict[int, Any]:
        return {}

    def singleton_blockers(self, pairs: Any) -> dict[Any, Any]:
        return {}


class FakeBus:
    def __init__(self) -> None:
        self.published: list[str] = []

    def subscribe(self, topic: str, callback: Any) -> None:
        pass

    def publish(self, topic: str) -> None:
        self.published.append(topic)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def loop(store: FakeStore, clock: Clock | None = None, **kw: Any) -> tuple[Scheduler, FakeBus]:
    bus = FakeBus()
    scheduler = Scheduler(
        store,
        bus,
        clock=clock or Clock(),
        dependency_resolver=lambda _store, _jobs: None,
        check_interval=kw.pop("check_interval", 3600.0),
        **kw,
    )
    return scheduler, bus


def test_places_what_fits_wakes_the_node_and_then_rests() -> None:
    store = FakeStore(cpus=2)
    store.add(PendingJob(1, cpus=1))
    store.add(PendingJob(2, cpus=2))
    scheduler, bus = loop(store)
    decision = scheduler.run_pass()
    assert [p.job_id for p in decision.placements] == [1]
    assert store.placed == {1: "n1"} and bus.published == ["node:n1"]
    assert store.reasons == {2: "Resources"}
    # Nothing changed since: the next pass decides nothing and writes nothing.
    applies = store.applies
    assert scheduler.run_pass().placements == [] and store.applies == applies
    assert store.snapshots == 1  # between full snapshots, only the change feed is read


def test_new_submissions_alone_are_decided_when_only_they_changed() -> None:
    store = FakeStore(cpus=2)
    store.add(PendingJob(1, cpus=2))
    scheduler, _ = loop(store)
    scheduler.run_pass()
    store.add(PendingJob(2, cpus=1))  # the node is full: it waits too
    decision = scheduler.run_pass()
    assert decision.placements == []
    assert set(decision.reasons) <= {2}, "the job that waited before was decided again for nothing"


def test_a_begin_time_job_starts_when_its_time_comes_without_any_event() -> None:
    clock = Clock()
    store = FakeStore(cpus=2)
    store.add(PendingJob(1, cpus=1, begin_time=clock.now + 60))
    scheduler, _ = loop(store, clock, heartbeat_timeout=3600)
    scheduler.reap()  # as the loop does before each pass: nothing to judge for an hour
    assert scheduler.run_pass().placements == []
    assert 59 < scheduler._next_wakeup() <= 61  # it sleeps until then, not until the fallback tick
    clock.now += 61
    assert [p.job_id for p in scheduler.run_pass().placements] == [1]


def test_a_placement_that_could_not_be_applied_makes_it_read_everything_again() -> None:
    store = FakeStore(cpus=2)
    store.add(PendingJob(1, cpus=1))
    scheduler, _ = loop(store)
    store.lose_next = True
    scheduler.run_pass()
    assert store.placed == {}
    store.add(PendingJob(2, cpus=1))
    scheduler.run_pass()
    assert store.snapshots == 2 and store.placed == {2: "n1"}


def test_a_failed_apply_is_raised_and_the_backlog_read_again() -> None:
    store = FakeStore(cpus=2)
    store.add(PendingJob(1, cpus=1))
    scheduler, bus = loop(store)
    store.fail_next = True
    with pytest.raises(RuntimeError):
        scheduler.run_pass()
    assert bus.published == []
    scheduler.run_pass()
    assert store.snapshots == 2 and store.placed == {1: "n1"}


def test_dead_nodes_are_judged_only_after_a_whole_heartbeat_timeout() -> None:
    store = FakeStore()
    scheduler, _ = loop(store, heartbeat_timeout=0.2)
    assert scheduler.reap() is None and store.reaps == 0
    time.sleep(0.25)
    scheduler.reap()
    assert store.reaps == 1
