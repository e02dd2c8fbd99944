"""Group commit of concurrent single-job submissions (store/groupcommit.py), with a fake write."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from conductor.errors import StoreUnavailable
from conductor.store.groupcommit import GroupCommit


class FakeDatabase:
    """Assigns ids in order; slow enough that concurrent submitters queue up behind a write."""

    def __init__(self, delay: float = 0.005, refuse: str | None = None, fail: bool = False) -> None:
        self.delay, self.refuse, self.fail = delay, refuse, fail
        self.next_id = 1
        self.batches: list[list[str]] = []
        self.stored: dict[int, str] = {}
        self.lock = threading.Lock()
        self.concurrent = 0

    def write(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        with self.lock:
            self.concurrent += 1
            assert self.concurrent == 1, "two writes at once"
        try:
            time.sleep(self.delay)
            if self.fail:
                raise StoreUnavailable("the database went away", "OperationalError")
            if self.refuse is not None and any(row["name"] == self.refuse for row in rows):
                raise ValueError(f"refused {self.refuse}")
            self.batches.append([row["name"] for row in rows])
            ids = []
            for row in rows:
                self.stored[self.next_id] = row["name"]
                ids.append(self.next_id)
                self.next_id += 1
            return ids
        finally:
            with self.lock:
                self.concurrent -= 1


def _submit_concurrently(group: GroupCommit, names: list[str]) -> dict[str, int | BaseException]:
    results: dict[str, int | BaseException] = {}
    start = threading.Barrier(len(names))

    def one(name: str) -> None:
        start.wait()
        try:
            results[name] = group.submit({"name": name})
        except Exception as exc:  # noqa: BLE001 - collected for the assertions
            results[name] = exc

    threads = [threading.Thread(target=one, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


def test_alone_a_submission_is_its_own_batch() -> None:
    db = FakeDatabase(delay=0)
    group = GroupCommit(db.write)
    assert [group.submit({"name": n}) for n in "abc"] == [1, 2, 3]
    assert db.batches == [["a"], ["b"], ["c"]]


def test_concurrent_submissions_share_transactions_and_each_gets_its_own_id() -> None:
    db = FakeDatabase()
    group = GroupCommit(db.write)
    names = [f"job{i}" for i in range(40)]
    results = _submit_concurrently(group, names)
    assert sorted(results) == sorted(names)
    assert all(isinstance(v, int) for v in results.values())
    assert {db.stored[job_id] for job_id in results.values()} == set(names)  # type: ignore[index]
    assert all(db.stored[results[name]] == name for name in names)  # type: ignore[index]
    assert len(db.batches) < len(names)  # some shared a transaction
    assert sum(len(b) for b in db.batches) == len(names)


def test_a_refused_row_fails_alone() -> None:
    db = FakeDatabase(refuse="bad")
    group = GroupCommit(db.write)
    results = _submit_concurrently(group, ["bad", *[f"ok{i}" for i in range(10)]])
    assert isinstance(results.pop("bad"), ValueError)
    assert all(isinstance(v, int) for v in results.values())
    assert set(db.stored.values()) == set(results)


def test_a_failed_database_fails_every_submitter_of_the_batch_and_retries_nothing() -> None:
    db = FakeDatabase(fail=True)
    group = GroupCommit(db.write)
    results = _submit_concurrently(group, [f"j{i}" for i in range(8)])
    assert all(isinstance(v, StoreUnavailable) for v in results.values())
    assert db.stored == {}
    # The lead is free again afterwards.
    db.fail = False
    assert group.submit({"name": "later"}) == 1


def test_after_an_error_the_lead_is_free_and_nobody_waits() -> None:
    calls = []

    def flaky(rows: Sequence[dict[str, Any]]) -> list[int]:
        calls.append(len(rows))
        if len(calls) == 1:
            raise RuntimeError("no")
        return list(range(100, 100 + len(rows)))

    group = GroupCommit(flaky)
    with pytest.raises(RuntimeError):
        group.submit({"name": "x"})
    assert group.submit({"name": "y"}) == 100
