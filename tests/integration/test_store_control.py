"""The store's Slurm-control methods (arrays, hold/release, requeue, update, signals), run against
SQLite and PostgreSQL alike."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from conductor.domain.states import JobState
from conductor.scheduler.policy import schedule
from conductor.store import BEING_STOPPED, NOT_HELD, Finish, Store, utcnow


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    s.migrate()
    s.register_node(
        name="n1", cpus=4, cpu_ids=[0, 1, 2, 3], cpu_binding=False, memory_mb=4000, partitions=["debug"],
        instance="test:n1", hostname="h", stale_before=utcnow() - timedelta(seconds=30),
    )
    yield s
    s.close()


def job_row(**values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"name": "job", "user_name": "ann", "partition": "debug", "cpus_per_task": 1,
                           "work_dir": "/tmp", "script": "#!/bin/bash\ntrue\n", "environment": "{}"}
    row.update(values)
    return row


def start(store: Store) -> list[int]:
    decision = schedule(store.pending_for_scheduling(), store.node_views(), time.time(), presorted=True)
    return sorted(p.job_id for p in store.apply_decision(decision.placements, decision.reasons))


@pytest.mark.parametrize("tasks", [[0, 1, 2, 3], [1, 3, 5], [0, 4, 8, 12], [1, 2, 3, 10, 20, 22, 24], [7]])
def test_array_tasks_are_copies_of_the_first(store: Store, tasks: list[int]) -> None:
    rows = [job_row(name="arr", array_task_id=t, array_spec="x", array_max_running=2, comment="c") for t in tasks]
    ids = store.submit(rows)
    assert len(ids) == len(tasks) and ids == sorted(ids)
    got, _ = store.list_jobs(array_job_ids=[ids[0]], with_script=True)
    assert [g.array_task_id for g in got] == tasks
    assert {(g.array_job_id, g.name, g.comment, g.array_max_running, g.state) for g in got} == {
        (ids[0], "arr", "c", 2, "PENDING")
    }
    assert all(store.events(i)[0].to_state == "PENDING" for i in ids)
    assert store.array_task_ids(ids[0]) == ids
    assert store.resolve_task(ids[0], tasks[-1]) == ids[-1]
    assert store.resolve_task(ids[0], 999) is None


def test_hold_release_and_their_refusals(store: Store) -> None:
    job = store.submit([job_row()])[0]
    held = store.hold_jobs([job], True)
    assert held.changed == [job]
    row = store.get_job(job)
    assert row is not None and row.held and row.reason == "JobHeldUser"
    assert store.hold_jobs([job], False).changed == [job]
    assert store.hold_jobs([job], False).skipped == {job: NOT_HELD}
    assert start(store) == [job]
    assert store.hold_jobs([job], True).skipped == {job: "RUNNING"}
    assert store.hold_jobs([424242], True).found == set()


def test_requeue_of_a_running_job_completes_when_its_process_ends(store: Store) -> None:
    job = store.submit([job_row()])[0]
    assert start(store) == [job]
    outcome = store.requeue_jobs([job])
    assert outcome.changed == [job] and outcome.nodes == {"n1"}
    assert store.requeue_jobs([job]).skipped == {job: BEING_STOPPED}
    row = store.get_job(job)
    assert row is not None and row.state == "RUNNING" and row.kill_state == "PENDING"
    assert store.finish([Finish(job, JobState.PENDING, "0:15")]) == [job]
    row = store.get_job(job)
    assert row is not None
    assert (row.state, row.restart_count, row.node_list, row.allocated_cpus, row.kill_state) == (
        "PENDING", 1, None, 0, None
    )
    assert store.stats().used_cpus == 0
    assert store.requeue_jobs([job]).skipped == {job: "PENDING"}
    assert start(store) == [job]
    store.finish([Finish(job, JobState.COMPLETED, "0:0")])
    again = store.requeue_jobs([job], hold=True)
    assert again.changed == [job]
    row = store.get_job(job)
    assert row is not None and (row.state, row.restart_count, row.held, row.exit_code) == (
        "PENDING", 2, True, None
    )
    assert [e.to_state for e in store.events(job)].count("PENDING") == 3


def test_update_and_signals(store: Store) -> None:
    pending, running, done = store.submit([job_row(), job_row(), job_row()])
    store.hold_jobs([pending], True)
    assert start(store) == [running, done]
    store.finish([Finish(done, JobState.COMPLETED, "0:0")])
    outcome = store.update_jobs([pending, running, done], {"time_limit": 60, "name": "renamed"})
    assert sorted(outcome.changed) == [pending, running] and outcome.skipped == {done: "COMPLETED"}
    assert outcome.nodes == {"n1"}
    row = store.get_job(running)
    assert row is not None and (row.time_limit, row.name) == (60, "renamed")
    with pytest.raises(ValueError):
        store.update_jobs([pending], {"state": "COMPLETED"})

    assert store.queue_signal([pending, running], "10").skipped == {pending: "PENDING"}
    store.queue_signal([running], "b:12")
    assert store.take_signals("n1") == {running: ["10", "b:12"]}
    assert store.take_signals("n1") == {}


def test_cancel_jobs_many_at_once(store: Store) -> None:
    ids = store.submit([job_row(array_task_id=t, array_spec="0-5") for t in range(6)])
    assert len(start(store)) == 4
    outcome = store.cancel_jobs(ids)
    assert sorted(outcome.changed) == ids and outcome.nodes == {"n1"}
    states = {store.get_job(i).state for i in ids[4:]}  # type: ignore[union-attr]
    assert states == {"CANCELLED"}
    assert {store.get_job(i).kill_state for i in ids[:4]} == {"CANCELLED"}  # type: ignore[union-attr]
    assert store.cancel_jobs(ids).changed == []


def test_singleton_blockers(store: Store) -> None:
    a, b, _ = store.submit([job_row(name="s"), job_row(name="s"), job_row(name="t", user_name="bob")])
    blockers = store.singleton_blockers({("ann", "s"), ("bob", "t"), ("ann", "none")})
    assert blockers[("ann", "s")].first_pending_id == a and not blockers[("ann", "s")].running
    assert blockers[("ann", "none")].first_pending_id is None
    store.hold_jobs([b], True)
    start(store)
    assert store.singleton_blockers({("ann", "s")})[("ann", "s")].running
