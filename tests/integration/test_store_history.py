"""The purge of old jobs against SQLite and PostgreSQL alike: only ended jobs past the cutoff
go, with their events, archived first, in batches; a job a pending job depends on stays."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from conductor.domain.states import JobState
from conductor.history.archive import archive_files, read_archives
from conductor.history.purger import Purger
from conductor.scheduler.policy import schedule
from conductor.store import Finish, Store, utcnow
from tests.integration.test_store_contract import add_node, job_row


def run_and_end(store: Store, count: int, state: JobState = JobState.COMPLETED, **values: Any) -> list[int]:
    ids = store.submit([job_row(**values) for _ in range(count)])
    decision = schedule(store.pending_for_scheduling(), store.node_views(), time.time(), presorted=True)
    store.apply_decision(decision.placements, decision.reasons)
    store.claim_for_launch("n1")
    store.finish([Finish(i, state, "0:0") for i in ids])
    return ids


def later(hours: float) -> float:
    return time.time() + hours * 3600


def test_only_old_ended_jobs_go_with_their_events(store: Store, tmp_path: Path) -> None:
    add_node(store, "n1", 64)
    ended = run_and_end(store, 3)
    (failed,) = run_and_end(store, 1, JobState.FAILED)
    (running,) = store.submit([job_row()])
    decision = schedule(store.pending_for_scheduling(), store.node_views(), time.time(), presorted=True)
    store.apply_decision(decision.placements, decision.reasons)
    (waiting,) = store.submit([job_row(dependency=f"afterok:{ended[0]}", held=True)])

    # Not yet old enough: nothing goes.
    assert Purger(store, keep_for=timedelta(hours=1), archive_dir=tmp_path).purge().purged == 0

    result = Purger(store, keep_for=timedelta(hours=1), archive_dir=tmp_path, clock=lambda: later(2)).purge()
    assert result.purged == 3
    gone = [*ended[1:], failed]
    for job_id in gone:
        assert store.get_job(job_id) is None
        assert store.events(job_id) == []
    # Kept: the one a pending job depends on, the running job, the pending job.
    assert store.get_job(ended[0]) is not None
    assert {store.get_job(i).state for i in (running, waiting)} == {"RUNNING", "PENDING"}  # type: ignore[union-attr]
    archived = {a.job.id: a for a in read_archives(tmp_path)}
    assert sorted(archived) == sorted(gone)
    assert archived[failed].job.state == "FAILED"
    assert archived[failed].job.script == "#!/bin/bash\ntrue\n"
    assert [e.to_state for e in archived[failed].events] == ["PENDING", "RUNNING", "FAILED"]


def test_batches(store: Store, tmp_path: Path) -> None:
    add_node(store, "n1", 64)
    ids = run_and_end(store, 8)
    purger = Purger(store, keep_for=timedelta(minutes=1), archive_dir=tmp_path, batch=2, pause=0, clock=lambda: later(1))
    result = purger.purge()
    # Every one but the newest, which holds the ids' high mark (below).
    assert result.purged == 7 and len(result.archives) == 4
    assert [low for low, _, _ in archive_files(tmp_path)] == ids[:-1:2]
    assert [job.id for job in store.list_jobs()[0]] == ids[-1:]


def test_without_an_archive_jobs_just_go(store: Store, tmp_path: Path) -> None:
    add_node(store, "n1", 64)
    run_and_end(store, 3)
    result = Purger(store, keep_for=timedelta(minutes=1), clock=lambda: later(1)).purge()
    assert (result.purged, result.archives) == (2, [])


def test_a_purge_never_lets_a_job_id_be_taken_again(store: Store, tmp_path: Path) -> None:
    # SQLite numbers a new row after the greatest id in the table: with every job purged, the
    # next job took the first job's id, and the archive's record of that job was hidden behind it.
    add_node(store, "n1", 64)
    ids = run_and_end(store, 3)
    for _ in range(2):  # a second pass purges nothing more
        Purger(store, keep_for=timedelta(minutes=1), archive_dir=tmp_path, clock=lambda: later(1)).purge()
        assert [job.id for job in store.list_jobs()[0]] == ids[-1:]
    assert sorted(a.job.id for a in read_archives(tmp_path)) == ids[:-1]  # each archived once
    (new,) = store.submit([job_row()])
    assert new > max(ids)
    (newer,) = run_and_end(store, 1)
    Purger(store, keep_for=timedelta(minutes=1), archive_dir=tmp_path, clock=lambda: later(1)).purge()
    assert store.get_job(ids[-1]) is None and store.get_job(newer) is not None  # the mark moved on


def test_a_job_requeued_since_it_was_read_is_not_deleted(store: Store) -> None:
    (pending,) = store.submit([job_row()])
    assert store.delete_ended_jobs([pending], utcnow()) == 0
    assert store.get_job(pending) is not None
