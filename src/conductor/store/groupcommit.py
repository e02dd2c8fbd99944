"""Group commit: concurrent submissions of single jobs written in one transaction.

On PostgreSQL a submission's cost is mostly round trips and a commit (a WAL flush), not work:
each client's own transaction pays for them alone. Here the first submitter to arrive leads: it
takes every submission queued so far, its own included, writes them in one transaction (the
inserts pipelined, one commit), hands each its job id, and passes the lead to the first that
queued meanwhile. Alone, a submitter is its own batch of one and waits for nobody; under load,
batches grow by themselves with the time a write takes. No timer, no thread of its own.

A batch refused by the database (a row it will not take) is retried one submission at a time, so
a bad row fails alone. So is a batch holding an Idempotency-Key its user already used (or two
submissions with one key): the unique index refuses the batch, then that row alone, whose
submitter gets the error (store/jobs.py makes it SubmitKeyTaken, answered as a replay). A batch that failed because the database did (StoreUnavailable, perhaps
during the commit) is not retried: each submitter gets the error, as it would have alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from conductor.errors import StoreUnavailable

Rows = Sequence[dict[str, Any]]


class _Waiter:
    __slots__ = ("_latch", "error", "job_id", "lead", "values")

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        # A latch: taken now, released once by the leader (set()), which lets wait() through.
        # A bare lock, not an Event (a Condition, a lock and a list of waiters): it is signalled
        # for every submission, and under load every cost here is the server's CPU.
        self._latch = threading.Lock()
        self._latch.acquire()
        self.lead = False
        self.job_id: int | None = None
        self.error: BaseException | None = None

    def wait(self) -> None:
        self._latch.acquire()

    def set(self) -> None:
        self._latch.release()

    def result(self) -> int:
        if self.error is not None:
            raise self.error
        assert self.job_id is not None
        return self.job_id


class GroupCommit:
    """Batches concurrent calls of `submit(values)` into calls of `write(batch) -> ids`."""

    def __init__(self, write: Callable[[Rows], list[int]]) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._queue: list[_Waiter] = []
        self._leading = False

    def submit(self, values: dict[str, Any]) -> int:
        me = _Waiter(values)
        with self._lock:
            self._queue.append(me)
            follow = self._leading
            self._leading = True
        if follow:
            me.wait()
            if not me.lead:
                return me.result()
        with self._lock:
            batch, self._queue = self._queue, []
        try:
            self._run(batch)
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.set()
                else:
                    self._leading = False
            for waiter in batch:
                if waiter is not me:
                    waiter.set()
        return me.result()

    def _run(self, batch: list[_Waiter]) -> None:
        try:
            ids = self._write([w.values for w in batch])
        except StoreUnavailable as exc:
            # The database failed, maybe mid-commit: trying again here could store a job twice.
            for waiter in batch:
                waiter.error = exc if len(batch) == 1 else StoreUnavailable(str(exc), exc.kind)
            return
        except Exception as exc:  # noqa: BLE001 - decided per submission below
            if len(batch) == 1:
                batch[0].error = exc
                return
            for waiter in batch:  # one bad row must not fail the others
                try:
                    waiter.job_id = self._write([waiter.values])[0]
                except Exception as single:  # noqa: BLE001 - that submitter's own error
                    waiter.error = single
            return
        for waiter, job_id in zip(batch, ids, strict=True):
            waiter.job_id = job_id
