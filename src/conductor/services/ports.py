"""What the services need from the rest of the system: small interfaces that tests can fake."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from conductor.domain.job import Job, JobSummary
from conductor.scheduler.limits import Usage
from conductor.scheduler.policy import NodeView
from conductor.store import (
    CancelOutcome,
    ControlOutcome,
    DependencyTarget,
    KeyedSubmission,
    SingletonState,
    SubmissionKey,
)


class JobStore(Protocol):
    """The store's side of the use cases (conductor.store.Store provides it)."""

    def submit(self, rows: Sequence[dict[str, Any]], *, key: SubmissionKey | None = None) -> list[int]: ...

    def submitted_with(self, user_name: str, key: str) -> KeyedSubmission | None: ...

    def batched_writes(self) -> AbstractContextManager[bool]: ...

    def count_pending(self, user_name: str) -> int: ...

    def count_active(self, user_name: str, qos: str | None) -> int: ...

    def count_active_in(self, user_name: str, account: str) -> int: ...

    def running_holdings(self) -> tuple[dict[tuple[str, str | None], Usage], dict[tuple[str, str], Usage]]: ...

    def node_shapes(self) -> list[NodeView]: ...

    def job_summaries(self, ids: Iterable[int]) -> dict[int, JobSummary]: ...

    def dependencies_of(self, ids: Iterable[int]) -> dict[int, DependencyTarget | None]: ...

    def singleton_blockers(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], SingletonState]: ...

    def get_job(self, job_id: int) -> Job | None: ...

    def list_jobs(
        self,
        *,
        states: Sequence[str] | None = None,
        job_ids: Sequence[int] | None = None,
        limit: int = 1000,
        count: bool = True,
        columns: Collection[str] | None = None,
    ) -> tuple[list[Job], int]: ...

    def resolve_task(self, array_job_id: int, task_id: int) -> int | None: ...

    def array_task_ids(self, job_id: int) -> list[int]: ...

    def cancel(self, job_id: int, *, by: str | None = None) -> CancelOutcome: ...

    def cancel_jobs(self, ids: Sequence[int], *, by: str | None = None) -> ControlOutcome: ...

    def hold_jobs(self, ids: Sequence[int], held: bool) -> ControlOutcome: ...

    def requeue_jobs(self, ids: Sequence[int], *, hold: bool = False) -> ControlOutcome: ...

    def update_jobs(self, ids: Sequence[int], changes: Mapping[str, Any]) -> ControlOutcome: ...

    def queue_signal(self, ids: Sequence[int], entry: str) -> ControlOutcome: ...


class Wakeups(Protocol):
    """Tells the scheduler and nodes that something changed (conductor.bus.Bus provides it)."""

    def publish(self, topic: str) -> None: ...
