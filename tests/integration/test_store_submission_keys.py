"""Idempotent submission in the store, on SQLite and PostgreSQL: a user's Idempotency-Key is
held by one job at most (the partial unique index ix_jobs_submit_key decides), on every path a
submission takes (alone, in a batch's savepoint, in PostgreSQL's group commit), and the job that
holds it is found again with its request's digest and its ids."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from test_store_contract import add_node, job_row

from conductor.api.models import JobDescription, SubmitRequest
from conductor.errors import Conflict, KeyReused
from conductor.services.idempotency import request_digest
from conductor.services.jobs import JobService, Submitted
from conductor.services.principal import Principal
from conductor.services.submission import Limits
from conductor.store import KeyedSubmission, Store, SubmissionKey, SubmitKeyTaken, schema, utcnow

USER = "nobody"  # a user every Debian host has
ALICE = Principal(user=USER, admin=False, token_id=1)
LIMITS = Limits(max_script_bytes=1 << 20, max_environment_bytes=1 << 16, max_array_tasks=1000, default_partition="debug")
KEY = SubmissionKey("3f1c2a9e-7d4b-4c55-9a0e-1b2c3d4e5f60", "a" * 64)


def keyed_rows(store: Store, key: str) -> list[tuple[int, str | None, str | None]]:
    """(id, submit_key, submit_digest) of every job holding `key`, straight from the table."""
    jobs = schema.jobs
    with store.engine.connect() as conn:
        found = conn.execute(select(jobs.c.id, jobs.c.submit_key, jobs.c.submit_digest).where(jobs.c.submit_key == key))
        return [(int(r[0]), r[1], r[2]) for r in found]


def job_count(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(schema.jobs)).scalar_one())


def service(store: Store, **options: Any) -> JobService:
    add_node(store, "n1", 4)
    return JobService(store=store, bus=_NoBus(), limits=LIMITS, hostname="h", **{"max_pending_per_user": 100, **options})


class _NoBus:
    def publish(self, topic: str) -> None:
        pass


def request(**job: Any) -> SubmitRequest:
    return SubmitRequest(job=JobDescription(**{"current_working_directory": "/tmp", **job}), script="#!/bin/sh\ntrue\n")


# ------------------------------------------------------------------ the store
def test_a_key_is_held_by_one_job_of_its_user(store: Store) -> None:
    (job_id,) = store.submit([job_row(user_name="alice")], key=KEY)
    assert store.submitted_with("alice", KEY.key) == KeyedSubmission(KEY.digest, [job_id], array=False)
    before = job_count(store)
    with pytest.raises(SubmitKeyTaken):
        store.submit([job_row(user_name="alice", name="again")], key=KEY)
    with pytest.raises(SubmitKeyTaken):  # the digest does not matter to the index: the key does
        store.submit([job_row(user_name="alice")], key=SubmissionKey(KEY.key, "b" * 64))
    assert job_count(store) == before and keyed_rows(store, KEY.key) == [(job_id, KEY.key, KEY.digest)]
    assert [event.to_state for event in store.events(job_id)] == ["PENDING"]  # no event of a refused one
    # Keys are per user; jobs without a key are many.
    (other,) = store.submit([job_row(user_name="bob")], key=KEY)
    assert store.submitted_with("bob", KEY.key) == KeyedSubmission(KEY.digest, [other], array=False)
    assert len(store.submit([job_row(user_name="alice"), job_row(user_name="alice")])) == 2
    assert store.submitted_with("alice", "never-used") is None
    assert store.submitted_with("carol", KEY.key) is None


def test_no_listing_reads_a_key(store: Store) -> None:
    (job_id,) = store.submit([job_row()], key=KEY)
    whole, _ = store.list_jobs(limit=10)
    chosen, _ = store.list_jobs(limit=10, columns=set(schema.SUBMISSION_KEY_COLUMNS) | {"state"})
    one = store.get_job(job_id)
    for job in (*whole, *chosen, one):
        for column in schema.SUBMISSION_KEY_COLUMNS:
            assert not hasattr(job, column), (column, job)
    assert [job.state for job in chosen] == ["PENDING"]


def test_an_arrays_first_task_alone_holds_the_key(store: Store) -> None:
    rows = [job_row(array_task_id=task, array_spec="0-9") for task in range(10)]
    ids = store.submit(rows, key=KEY)
    assert len(ids) == 10
    # Copied from the first row in the database (_copy_array_tasks), but for its key.
    assert keyed_rows(store, KEY.key) == [(ids[0], KEY.key, KEY.digest)]
    assert store.submitted_with("alice", KEY.key) == KeyedSubmission(KEY.digest, ids, array=True)
    before = job_count(store)
    with pytest.raises(SubmitKeyTaken):
        store.submit(rows, key=KEY)
    assert job_count(store) == before
    # Tasks that differ (not copied in the database): the key is on the first all the same.
    other = SubmissionKey("another", "c" * 64)
    mixed = store.submit([job_row(array_task_id=0, name="a"), job_row(array_task_id=1, name="b")], key=other)
    assert keyed_rows(store, "another") == [(mixed[0], "another", other.digest)]
    assert store.submitted_with("alice", "another") == KeyedSubmission(other.digest, mixed, array=True)


def test_racing_inserts_with_one_key_store_one_job(store: Store) -> None:
    """Threads submitting at once, half with the same key: one keyed job, each without a key
    stored; on PostgreSQL they meet in the group commit, whose batch the index refuses whole
    and which then stores each alone."""
    threads, outcomes = 16, []
    start = threading.Barrier(threads)
    lock = threading.Lock()

    def submit(keyed: bool) -> None:
        start.wait()
        try:
            result: object = store.submit([job_row()], key=KEY if keyed else None)
        except SubmitKeyTaken as exc:
            result = exc
        with lock:
            outcomes.append((keyed, result))

    _run([lambda n=n: submit(n % 2 == 0) for n in range(threads)])
    won = [result for keyed, result in outcomes if keyed and isinstance(result, list)]
    lost = [result for keyed, result in outcomes if keyed and isinstance(result, SubmitKeyTaken)]
    plain = [result for keyed, result in outcomes if not keyed]
    assert len(won) == 1 and len(lost) == threads // 2 - 1, outcomes
    assert all(isinstance(result, list) for result in plain), plain
    assert job_count(store) == 1 + threads // 2
    assert keyed_rows(store, KEY.key) == [(won[0][0], KEY.key, KEY.digest)]


def test_a_group_commit_the_index_refuses_stores_the_others(pg_url: str) -> None:
    """PostgreSQL's group commit writes concurrent plain jobs in one statement: a batch with a
    key already used (here, twice in the batch) is refused whole, then written one submission
    at a time, so only the duplicate fails, with the error the store turns into SubmitKeyTaken."""
    from conductor.store.groupcommit import GroupCommit, _Waiter
    from conductor.store.jobs import _key_taken

    store = Store(pg_url)
    store.migrate()
    try:
        now = utcnow()

        def row(name: str, key: SubmissionKey | None) -> dict[str, Any]:
            values = job_row(name=name, state="PENDING", reason="None", submit_time=now, eligible_time=now)
            return values if key is None else {**values, "submit_key": key.key, "submit_digest": key.digest}

        other = SubmissionKey("other", "d" * 64)
        # One shape (one statement in autocommit), then two shapes (a transaction).
        for batch in (
            [row("k1", KEY), row("k2", KEY), row("o", other)],
            [row("plain", None), row("k3", KEY), row("plain2", None)],
        ):
            waiters = [_Waiter(values) for values in batch]
            GroupCommit(store._submit_batch)._run(waiters)
            stored = {w.values["name"]: w.job_id for w in waiters if w.error is None}
            refused = {w.values["name"]: w.error for w in waiters if w.error is not None}
            assert all(_key_taken(error) for error in refused.values()), refused
            if batch[0]["name"] == "k1":
                assert set(stored) == {"k1", "o"} and set(refused) == {"k2"}
            else:
                assert set(stored) == {"plain", "plain2"} and set(refused) == {"k3"}
        assert keyed_rows(store, KEY.key) == [(stored_id, KEY.key, KEY.digest) for stored_id in _ids(store, "k1")]
        assert job_count(store) == 4
        assert [event.to_state for event in store.events(_ids(store, "plain")[0])] == ["PENDING"]
    finally:
        store.close()


def test_a_group_commit_inserts_keys_in_one_order(pg_url: str) -> None:
    """Two batches holding the same two keys must not deadlock. Another server's transaction
    holds key "a" and will insert "b" next; our batch arrives with "b" before "a". Inserted as
    they came, the batch would hold "b" while waiting for "a": a deadlock, which PostgreSQL
    breaks by failing one of the two with its deadlock error. Inserted in key order, the batch
    waits for "a" holding nothing, the other goes on, and the batch then fails as a duplicate
    (which the group commit retries one submission at a time)."""
    from sqlalchemy import insert, text

    from conductor.store.jobs import _key_taken

    store = Store(pg_url)
    store.migrate()
    try:
        now = utcnow()

        def row(name: str, key: str) -> dict[str, Any]:
            values = job_row(name=name, state="PENDING", reason="None", submit_time=now, eligible_time=now)
            return {**values, "submit_key": key, "submit_digest": "e" * 64}

        outcome: list[BaseException | list[int]] = []

        def batch() -> None:
            try:
                outcome.append(store._submit_batch([row("ours-b", "key-b"), row("ours-a", "key-a")]))
            except Exception as exc:  # noqa: BLE001 - the test looks at which error it is
                outcome.append(exc)

        with store.engine.connect() as other:
            other.execute(insert(schema.jobs).values(**row("theirs-a", "key-a")))
            thread = threading.Thread(target=batch)
            thread.start()
            with store.engine.connect() as watch:  # until our batch waits on the index
                for _ in range(500):
                    waiting = watch.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"))
                    if waiting.scalar_one():
                        break
                    watch.rollback()  # a transaction keeps its first view of pg_stat_activity
                    threading.Event().wait(0.01)
                else:
                    raise AssertionError("the batch never waited for the other transaction")
            other.execute(insert(schema.jobs).values(**row("theirs-b", "key-b")))  # no deadlock here
            other.commit()
        thread.join(30)
        assert len(outcome) == 1 and isinstance(outcome[0], Exception), outcome
        assert _key_taken(outcome[0]), outcome[0]  # a duplicate, not a deadlock
        assert sorted(key for _, key, _ in keyed_rows(store, "key-a") + keyed_rows(store, "key-b")) == ["key-a", "key-b"]
        assert _ids(store, "ours-a") == [] and _ids(store, "ours-b") == []
    finally:
        store.close()


def _ids(store: Store, name: str) -> list[int]:
    return [job.id for job in store.list_jobs(names=[name])[0]]


def test_the_purge_takes_the_key_with_its_job(store: Store) -> None:
    (job_id,) = store.submit([job_row()], key=KEY)
    store.submit([job_row(name="newer")])  # the purge keeps the newest job (the ids' high mark)
    ended = utcnow() - timedelta(days=2)
    with store.engine.begin() as conn:
        conn.execute(update(schema.jobs).where(schema.jobs.c.id == job_id).values(state="COMPLETED", end_time=ended))
    assert store.delete_ended_jobs([job_id], utcnow()) == 1
    assert store.submitted_with("alice", KEY.key) is None
    (again,) = store.submit([job_row(name="again")], key=KEY)  # free again: a new submission
    assert keyed_rows(store, KEY.key) == [(again, KEY.key, KEY.digest)]
    job = store.get_job(again)
    assert job is not None and job.name == "again"


def test_the_purge_keeps_an_arrays_key_while_a_task_remains(store: Store) -> None:
    """The key lives on an array's first task: purged while a throttled task still waits, it
    would free the key, and a retry would make a second array. The first task stays until its
    array's last task is purgeable too, then goes with it."""
    ids = store.submit([job_row(array_task_id=task) for task in range(3)], key=KEY)
    store.submit([job_row(name="newer")])  # the purge keeps the newest job (the ids' high mark)
    ended, cutoff = utcnow() - timedelta(days=2), utcnow() - timedelta(days=1)
    with store.engine.begin() as conn:
        conn.execute(update(schema.jobs).where(schema.jobs.c.id.in_(ids[:2])).values(state="COMPLETED", end_time=ended))
    assert [job.id for job in store.purgeable_jobs(cutoff, 10)] == [ids[1]]
    assert store.submitted_with("alice", KEY.key) == KeyedSubmission(KEY.digest, ids, array=True)
    # The last task ends, but after the cutoff: still not purgeable, nor is the key's holder.
    with store.engine.begin() as conn:
        conn.execute(update(schema.jobs).where(schema.jobs.c.id == ids[2]).values(state="FAILED", end_time=utcnow()))
    assert [job.id for job in store.purgeable_jobs(cutoff, 10)] == [ids[1]]
    with store.engine.begin() as conn:
        conn.execute(update(schema.jobs).where(schema.jobs.c.id == ids[2]).values(end_time=ended))
    assert sorted(job.id for job in store.purgeable_jobs(cutoff, 10)) == ids
    # A plain job's key, and an array's task without one, are purged as before.
    (plain,) = store.submit([job_row(name="plain")], key=SubmissionKey("plain", "b" * 64))
    store.submit([job_row(name="newest")])
    with store.engine.begin() as conn:
        conn.execute(update(schema.jobs).where(schema.jobs.c.id == plain).values(state="COMPLETED", end_time=ended))
    assert plain in [job.id for job in store.purgeable_jobs(cutoff, 10)]


# ------------------------------------------------------------------ the service on the store
def test_a_retry_is_answered_as_the_first_and_another_request_is_refused(store: Store) -> None:
    jobs = service(store, max_pending_per_user=1)
    first = jobs.submit(ALICE, request(name="a"), key="k1")
    assert isinstance(first, Submitted) and not first.replayed
    # Its own job fills the pending limit of 1: a retry is answered all the same.
    again = jobs.submit(ALICE, request(name="a"), key="k1")
    assert again == Submitted(first.job_ids, array=False, replayed=True)
    with pytest.raises(KeyReused, match="Idempotency-Key: this key was already used for another request"):
        jobs.submit(ALICE, request(name="b"), key="k1")
    assert job_count(store) == 1
    # A test-only submission ignores its key: nothing looked up, nothing stored.
    jobs.max_pending_per_user = 2
    assert type(jobs.submit(ALICE, request(name="c", test_only=True), key="k1")).__name__ == "WouldSubmit"
    assert keyed_rows(store, "k1") == [(first.job_ids[0], "k1", request_digest(request(name="a")))]


def test_an_array_is_answered_again_with_all_its_tasks(store: Store) -> None:
    jobs = service(store)
    first = jobs.submit(ALICE, request(array="1-5"), key="arr")
    again = jobs.submit(ALICE, request(array="1-5"), key="arr")
    assert isinstance(first, Submitted) and first.array and len(first.job_ids) == 5
    assert again == Submitted(first.job_ids, array=True, replayed=True)
    assert job_count(store) == 5


def test_a_key_is_looked_up_only_once_the_insert_is_refused(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """No look-up before the insert: a new key, nearly every one, costs no read. A key stored
    before (by a first request, or a racing one) makes the unique index refuse the insert, and
    the answer is the job that holds it; with another request, KeyReused. A job that was
    purged between the refusal and the look-up is said so (409), nothing stored."""
    jobs = service(store)
    (winner,) = store.submit(
        [job_row(user_name=USER)], key=SubmissionKey("race", request_digest(request(name="a")))
    )
    asked = _look_ups(store, monkeypatch)
    assert jobs.submit(ALICE, request(name="a"), key="race") == Submitted([winner], array=False, replayed=True)
    assert asked == ["race"]  # once, after the index refused the insert
    with pytest.raises(KeyReused):
        jobs.submit(ALICE, request(name="b"), key="race")
    asked.clear()
    fresh = jobs.submit(ALICE, request(name="c"), key="fresh")
    assert isinstance(fresh, Submitted) and not fresh.replayed and asked == []
    _look_ups(store, monkeypatch, miss=True)
    with pytest.raises(Conflict, match="the submission that holds this key is gone"):
        jobs.submit(ALICE, request(name="a"), key="race")
    assert job_count(store) == 2


def test_racing_requests_with_one_key_make_one_job(store: Store) -> None:
    jobs = service(store)
    threads, results = 12, []
    start = threading.Barrier(threads)

    def submit() -> None:
        start.wait()
        try:
            results.append(jobs.submit(ALICE, request(name="once"), key="together"))
        except Exception as exc:  # noqa: BLE001 - a thread's failure is the test's to report
            results.append(exc)

    _run([submit] * threads)
    assert len(results) == threads and all(isinstance(r, Submitted) for r in results), results
    assert len({tuple(r.job_ids) for r in results if isinstance(r, Submitted)}) == 1, results
    assert sum(1 for r in results if isinstance(r, Submitted) and not r.replayed) == 1
    assert job_count(store) == 1


def test_a_batch_answers_a_taken_key_once_committed_and_stores_the_rest(store: Store) -> None:
    """The SQLite event loop's batch (submit_many, each insert in a savepoint): a key stored
    earlier in the same batch fails its savepoint alone, the rest of the batch is committed, and
    it is answered from the job that holds the key once that is committed."""
    jobs = service(store)
    (before,) = store.submit([job_row(user_name=USER)], key=SubmissionKey("old", request_digest(request(name="old"))))
    results = jobs.submit_many(
        [
            (ALICE, request(name="a"), None),
            (ALICE, request(name="plain"), None),
            (ALICE, request(name="a"), None),  # the same request and key as the first: its replay
            (ALICE, request(name="other"), None),  # the same key, another request: refused
            (ALICE, request(name="after"), None),  # stored: the failed savepoints broke nothing
            (ALICE, request(name="old"), None),  # a key committed before the batch: a replay
        ],
        keys=["k", None, "k", "k", None, "old"],
    )
    first, plain, replay, other, after, old = results
    assert isinstance(first, Submitted) and not first.replayed
    assert replay == Submitted(first.job_ids, array=False, replayed=True)
    assert isinstance(other, KeyReused)
    assert old == Submitted([before], array=False, replayed=True)
    assert isinstance(plain, Submitted) and isinstance(after, Submitted)
    stored = [first.job_ids[0], plain.job_ids[0], after.job_ids[0]]
    names = [job.name for job in (store.get_job(i) for i in stored) if job is not None]
    assert names == ["a", "plain", "after"]
    assert job_count(store) == 4


# ------------------------------------------------------------------ helpers
def _run(targets: list[Callable[[], None]]) -> None:
    workers = [threading.Thread(target=target) for target in targets]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert not worker.is_alive()


def _look_ups(store: Store, monkeypatch: pytest.MonkeyPatch, *, miss: bool = False) -> list[str]:
    """The keys the store is asked to look up from now on; with `miss`, each look-up finds
    nothing, as if the job holding the key had just been purged."""
    asked: list[str] = []
    real = type(store).submitted_with

    def spy(user_name: str, key: str) -> KeyedSubmission | None:
        asked.append(key)
        return None if miss else real(store, user_name, key)

    monkeypatch.setattr(store, "submitted_with", spy)
    return asked
