"""The scheduler's in-memory backlog, kept up to date by the change feed, against the database.

The backlog is edited, not re-read, between full snapshots; after any mix of submissions,
placements, ends, cancels, holds and priority changes it must hold exactly the database's
pending jobs, in scheduling order.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta

import pytest

from conductor.bus import Bus
from conductor.domain.states import JobState
from conductor.scheduler.loop import Scheduler
from conductor.store import Finish, Store, utcnow


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    s.migrate()
    s.register_node(
        name="n1",
        cpus=4,
        cpu_ids=[0, 1, 2, 3],
        cpu_binding=False,
        memory_mb=4000,
        partitions=["debug"],
        instance="test:n1",
        hostname="test-host",
        stale_before=utcnow() - timedelta(seconds=30),
    )
    yield s
    s.close()


def row(priority: int, cpus: int) -> dict[str, object]:
    return {
        "name": "j",
        "user_name": "alice",
        "partition": "debug",
        "cpus_per_task": cpus,
        "priority": priority,
        "work_dir": "/tmp",
        "script": "#!/bin/sh\ntrue",
        "environment": "{}",
    }


def test_backlog_matches_the_database_after_every_pass(store: Store) -> None:
    rng = random.Random(7)
    # No fallback snapshot during the test: every pass after the first works from the feed.
    scheduler = Scheduler(store, Bus(), check_interval=3600, heartbeat_timeout=3600)
    scheduler.run_pass()
    for _ in range(60):
        for _ in range(rng.randrange(0, 6)):
            count = rng.choice((1, 1, 1, 2))
            store.submit([row(rng.choice((0, 0, 5)), rng.choice((1, 1, 2, 4))) for _ in range(count)])
        pending = [j.id for j in store.pending_for_scheduling()]
        running = [r.id for r in store.claim_for_launch("n1")]
        if running and rng.random() < 0.7:
            ended = rng.sample(running, k=rng.randrange(1, len(running) + 1))
            store.finish([Finish(i, JobState.COMPLETED, "0:0") for i in ended])
        if pending and rng.random() < 0.3:
            store.cancel_jobs([rng.choice(pending)])
        if pending and rng.random() < 0.3:
            store.hold_jobs([rng.choice(pending)], held=rng.random() < 0.5)
        if pending and rng.random() < 0.3:
            store.update_jobs([rng.choice(pending)], {"priority": rng.choice((0, 1, 9))})
        scheduler.run_pass()
        backlog = [(j.id, j.priority, j.held) for j in scheduler._ordered]
        truth = [(j.id, j.priority, j.held) for j in store.pending_for_scheduling()]
        assert backlog == truth
