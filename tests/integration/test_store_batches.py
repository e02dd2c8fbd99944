"""Writes batched into one transaction (Store.batched_writes): how the API's event loop stores
the submissions of one turn on SQLite. Elsewhere each write stays its own transaction."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from test_store_contract import add_node, job_row

from conductor.api.models import JobDescription, SubmitRequest
from conductor.errors import StoreUnavailable
from conductor.services.jobs import JobService, Submitted
from conductor.services.principal import Principal
from conductor.services.submission import Limits
from conductor.store import Store

USER = "nobody"  # a user every Debian host has
ALICE = Principal(user=USER, admin=False, token_id=1)
LIMITS = Limits(max_script_bytes=1 << 20, max_environment_bytes=1 << 16, max_array_tasks=1000, default_partition="debug")


def _seen_elsewhere(store: Store, job_id: int) -> bool:
    """Whether another thread (another connection) sees the job."""
    found: list[Any] = []
    reader = threading.Thread(target=lambda: found.append(store.get_job(job_id)))
    reader.start()
    reader.join()
    return found[0] is not None


def test_a_batch_commits_together_and_a_failing_write_is_undone_alone(store: Store) -> None:
    with store.batched_writes() as deferred:
        (first,) = store.submit([job_row(name="first")])
        with pytest.raises(Exception, match="(?i)not null|null value"):
            store.submit([job_row(name=None)])
        (second,) = store.submit([job_row(name="second")])
        # Until the end of the block, no one else sees them (SQLite); elsewhere each is committed.
        assert deferred == (store.dialect == "sqlite")
        assert _seen_elsewhere(store, first) is not deferred
    for job_id, name in ((first, "first"), (second, "second")):
        job = store.get_job(job_id)
        assert job is not None and job.name == name and _seen_elsewhere(store, job_id)
    assert [event.to_state for event in store.events(first)] == ["PENDING"]


def test_an_error_out_of_the_block_stores_nothing_of_it(store: Store) -> None:
    with pytest.raises(RuntimeError, match="gone"), store.batched_writes() as deferred:
        (job_id,) = store.submit([job_row(name="lost")])
        raise RuntimeError("gone")
    assert (store.get_job(job_id) is None) is deferred
    # The next write is a transaction of its own again.
    (after,) = store.submit([job_row(name="after")])
    assert store.get_job(after) is not None and _seen_elsewhere(store, after)


def test_other_writes_are_refused_inside_a_batch(store: Store) -> None:
    # They would wait for the write lock the batch's thread holds (SQLite): said at once.
    (job_id,) = store.submit([job_row(name="held")])
    with store.batched_writes() as deferred:
        if deferred:
            with pytest.raises(RuntimeError, match="batched_writes"):
                store.hold_jobs([job_id], True)
        else:
            store.hold_jobs([job_id], True)
        with store.batched_writes() as inner:  # a batch in a batch: the same one
            assert inner is False
            store.submit([job_row(name="inner")])


class _WatchingBus:
    """A bus that, at every wake-up, counts the pending jobs the scheduler would then see."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.seen: list[int] = []

    def publish(self, topic: str) -> None:
        counts: list[int] = []
        reader = threading.Thread(target=lambda: counts.append(self.store.count_pending(USER)))
        reader.start()
        reader.join()
        self.seen.append(counts[0])


def test_submit_many_answers_each_and_wakes_the_scheduler_once_committed(store: Store) -> None:
    add_node(store, "n1", 4)
    bus = _WatchingBus(store)
    jobs = JobService(store=store, bus=bus, limits=LIMITS, max_pending_per_user=3, hostname="h")

    def request(**job: Any) -> SubmitRequest:
        return SubmitRequest(job=JobDescription(**{"current_working_directory": "/tmp", **job}), script="#!/bin/sh\ntrue\n")

    results = jobs.submit_many(
        [
            (ALICE, request(name="a"), None),
            (ALICE, request(name="too-big", cpus_per_task=64), None),  # refused: no node has 64 CPUs
            (ALICE, request(name="b", test_only=True), None),
            (ALICE, request(name="c"), None),
            (ALICE, request(name="d"), None),
            (ALICE, request(name="over"), None),  # the user's 4th pending job: over the limit of 3
        ]
    )
    kinds = [type(result).__name__ for result in results]
    assert kinds == ["Submitted", "Unsatisfiable", "WouldSubmit", "Submitted", "Submitted", "LimitExceeded"], results
    stored = [job_id for result in results if isinstance(result, Submitted) for job_id in result.job_ids]
    names = []
    for job_id in stored:
        job = store.get_job(job_id)
        assert job is not None
        names.append(job.name)
    assert names == ["a", "c", "d"]
    # Woken once per stored submission, each time with all of them committed: the scheduler,
    # woken before the commit, could miss them until its next periodic pass.
    assert bus.seen == [3, 3, 3]


def test_a_full_disk_fails_the_write_that_did_not_fit_and_what_the_database_undid(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'full.db'}")
    store.migrate()
    try:
        (before,) = store.submit([job_row(name="before")])
        with store._dbapi() as raw:  # room for small jobs, not for a big one
            pages = raw.execute("PRAGMA page_count").fetchone()[0]
            raw.execute(f"PRAGMA max_page_count = {pages + 40}")
        # SQLite undid the statement alone: the others of the batch are stored.
        with store.batched_writes():
            (first,) = store.submit([job_row(name="first")])
            with pytest.raises(StoreUnavailable, match="full"):
                store.submit([job_row(name="big", script="#" * 400_000)])
            (second,) = store.submit([job_row(name="second")])
        assert store.get_job(first) is not None and store.get_job(second) is not None
        # On some errors SQLite rolls back the whole transaction instead (as this ROLLBACK
        # does): what the batch stored before is gone, so none of it may pass for stored.
        with pytest.raises(StoreUnavailable, match="rolled back"), store.batched_writes():
            (lost,) = store.submit([job_row(name="lost")])
            store._local.batch.execute("ROLLBACK")
            with pytest.raises(StoreUnavailable, match="rolled back"):
                store.submit([job_row(name="after")])
        assert store.get_job(lost) is None and store.get_job(before) is not None
        assert [job.name for job in store.list_jobs(limit=10)[0]] == ["before", "first", "second"]
    finally:
        store.close()
