"""The scheduler loop with backfill, against a real store (SQLite and PostgreSQL alike).

Passes over newly submitted jobs alone (the millisecond path) must keep the reservations the
last full pass made; a new job ordered before a reserved one makes the pass plan everything.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from conductor.bus import Bus
from conductor.scheduler.loop import Scheduler
from conductor.store import Store, utcnow


def job_row(**values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": "job",
        "user_name": "alice",
        "partition": "debug",
        "cpus_per_task": 1,
        "work_dir": "/tmp",
        "script": "#!/bin/bash\ntrue\n",
        "environment": "{}",
        "submit_time": utcnow(),
    }
    row.update(values)
    return row


def setup(store: Store) -> tuple[Scheduler, list[int]]:
    store.register_node(
        name="n1", cpus=4, cpu_ids=[0, 1, 2, 3], cpu_binding=False, memory_mb=4000, partitions=["debug"],
        instance="test:n1", hostname="test-host", stale_before=utcnow() - timedelta(seconds=30),
    )
    scheduler = Scheduler(store, Bus(), heartbeat_timeout=3600)
    # Three CPUs busy: for 100 s and 300 s.
    running = store.submit([job_row(cpus_per_task=2, time_limit=100), job_row(time_limit=300)])
    decision = scheduler.run_pass()
    assert sorted(p.job_id for p in decision.placements) == running
    return scheduler, running


def job(store: Store, job_id: int) -> Any:
    found = store.get_job(job_id)
    assert found is not None
    return found


def test_new_jobs_backfill_around_the_reservation_of_the_last_full_pass(store: Store) -> None:
    scheduler, running = setup(store)
    [whole] = store.submit([job_row(cpus_per_task=4, time_limit=600)])
    scheduler.run_pass()
    planned = job(store, whole)
    assert (planned.state, planned.reason, planned.sched_nodes) == ("PENDING", "Resources", "n1")
    started = job(store, running[1]).start_time
    assert abs((planned.expected_start_time - started).total_seconds() - 300) <= 1

    [long] = store.submit([job_row(time_limit=3600)])
    decision = scheduler.run_pass()
    assert decision.placements == [] and decision.reasons == {long: "Priority"}
    [short] = store.submit([job_row(time_limit=60)])
    decision = scheduler.run_pass()
    assert [p.job_id for p in decision.placements] == [short]


def test_a_new_job_ahead_of_the_reservation_is_planned_before_it(store: Store) -> None:
    scheduler, _ = setup(store)
    [whole] = store.submit([job_row(cpus_per_task=4, time_limit=600)])
    scheduler.run_pass()
    before = job(store, whole).expected_start_time
    # Higher priority than the reserved job: it may take the free CPU although it outlasts the
    # reservation, and the reservation moves behind it.
    [urgent] = store.submit([job_row(time_limit=3600, priority=20_000)])  # default: 10,001
    decision = scheduler.run_pass()
    assert [p.job_id for p in decision.placements] == [urgent]
    scheduler.run_pass()
    after = job(store, whole)
    assert after.reason == "Resources" and after.expected_start_time > before
    assert job(store, urgent).expected_start_time is None  # cleared when it started
