"""What observing reads and writes, on SQLite and PostgreSQL alike: live jobs counted by
partition and reason, the job history as a feed of transitions, and bounded utilisation samples."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest

from conductor.domain.states import JobState
from conductor.monitoring.feed import TransitionFeed
from conductor.monitoring.metrics import JOBS_ENDED
from conductor.monitoring.samples import Sampler
from conductor.scheduler.policy import schedule
from conductor.store import Finish, QueueCount, Store, utcnow
from tests.integration.test_store_contract import add_node, job_row


def test_queue_counts_by_state_partition_and_reason(store: Store) -> None:
    add_node(store, "n1", 4)
    store.submit([job_row(partition="debug") for _ in range(3)])
    store.submit([job_row(partition="long", held=True, reason="JobHeldUser")])
    decision = schedule(store.pending_for_scheduling(), store.node_views(), time.time(), presorted=True)
    store.apply_decision(decision.placements, decision.reasons)
    counts = store.queue_counts()
    assert sum(c.jobs for c in counts) == 4
    assert QueueCount("PENDING", "long", "JobHeldUser", 1) in counts
    assert sum(c.jobs for c in counts if c.state == "RUNNING") == len(decision.placements) > 0


def test_the_feed_logs_and_counts_each_transition_once(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    add_node(store, "n1", 4)
    feed = TransitionFeed(store)
    feed.poll(utcnow())  # never saved: starts at the newest event, earlier history is not replayed
    (job,) = store.submit([job_row(user_name="ann")])
    decision = schedule(store.pending_for_scheduling(), store.node_views(), time.time(), presorted=True)
    store.apply_decision(decision.placements, decision.reasons)
    store.claim_for_launch("n1")
    store.finish([Finish(job, JobState.FAILED, "1:0")])
    before = JOBS_ENDED.labels("FAILED")._value.get()
    with caplog.at_level(logging.INFO, logger="conductor.jobs"):
        assert feed.poll(utcnow()) == 3
        assert feed.poll(utcnow()) == 0
    lines = [r for r in caplog.records if r.name == "conductor.jobs"]
    assert [(r.from_state, r.state) for r in lines] == [(None, "PENDING"), ("PENDING", "RUNNING"), ("RUNNING", "FAILED")]  # type: ignore[attr-defined]
    assert {r.user for r in lines} == {"ann"}  # type: ignore[attr-defined]
    assert lines[-1].node == "n1"  # type: ignore[attr-defined]
    assert JOBS_ENDED.labels("FAILED")._value.get() == before + 1
    # Read as the driver returns rows: the times are still the aware datetimes stored.
    stored = store.get_job(job)
    assert stored is not None
    transitions = [t for t in store.transitions_after(0, 100) if t.job_id == job]
    assert [t.to_state for t in transitions] == ["PENDING", "RUNNING", "FAILED"]
    assert all(t.time.tzinfo is not None and t.submit_time == stored.submit_time for t in transitions)
    assert transitions[1].time == stored.start_time and transitions[2].time == stored.end_time
    assert [t.event_id for t in store.transitions_after(transitions[0].event_id, 1)] == [transitions[1].event_id]


def test_the_feed_goes_on_where_the_last_process_left_it(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    # A restart, or a failover to another server: what was written while no process read the
    # feed is logged once the next one does, and nothing is logged twice.
    add_node(store, "n1", 4)
    assert store.feed_position() is None
    first = TransitionFeed(store)
    first.poll(utcnow())
    assert store.feed_position() == store.latest_event_id()
    (job,) = store.submit([job_row(user_name="ann")])
    assert first.poll(utcnow()) == 1
    store.cancel(job)  # written while no process reads the feed
    with caplog.at_level(logging.INFO, logger="conductor.jobs"):
        assert TransitionFeed(store).poll(utcnow()) == 1
    lines = [r for r in caplog.records if r.name == "conductor.jobs"]
    assert [(r.from_state, r.state) for r in lines] == [("PENDING", "CANCELLED")]  # type: ignore[attr-defined]
    assert store.feed_position() == store.latest_event_id()
    store.save_feed_position(1)  # a process that lost the feed, late: the position never moves back
    assert store.feed_position() == store.latest_event_id()


def test_samples_are_bounded_and_read_back(store: Store) -> None:
    add_node(store, "n1", 4)
    sampler = Sampler(store, interval=timedelta(seconds=10), keep=timedelta(minutes=1))
    start = utcnow() - timedelta(minutes=5)
    taken = [sampler.maybe_sample(start + timedelta(seconds=s), start) for s in range(0, 300, 5)]
    assert sum(1 for t in taken if t is not None) == 30  # one per interval, not one per call
    kept = store.samples(start - timedelta(hours=1))
    assert 6 <= len(kept) <= 7  # the last minute's only
    assert kept[-1].total_cpus == store.stats().total_cpus


class _Standby:
    active = False

    def is_active(self) -> bool:
        return self.active


def test_only_the_scheduling_process_follows_the_feed_and_samples(store: Store) -> None:
    from conductor.monitoring.monitor import Monitor

    add_node(store, "n1", 4)
    leader = _Standby()
    monitor = Monitor(store, sample_interval=1, sample_keep=3600, heartbeat_timeout=30, leader=leader)
    monitor.step()
    assert store.samples(utcnow() - timedelta(hours=1)) == [] and monitor.feed.after is None
    leader.active = True
    monitor.step()
    assert len(store.samples(utcnow() - timedelta(hours=1))) == 1
    assert monitor.feed.after == store.latest_event_id()
