"""Job dependencies (``--dependency``) resolved for the scheduler, and checked at submission.

The scheduler's policy only sees a status per pending job (SATISFIED, WAITING, NEVER); this
module computes it from the store: the dependency strings of the pending jobs, then the states
of every job they name in one read (`Store.job_summaries`), then the pure evaluator of
`conductor.domain.dependency`. The evaluation itself (`statuses_for`, `evaluate_all`) is pure so
tests call it without a database.

Slurm's rules kept here:
- a plain job id that is an array's id stands for the whole array (its tasks aggregated);
  ``123_4`` names one task;
- ``aftercorr:123`` makes task N of an array wait for task N of array 123 to complete, or for
  the whole of 123 where it has no task N (Slurm's fallback);
- ``singleton`` waits while another job of the same user and name is running, or pending and
  submitted earlier (``_find_singleton_job`` in slurmctld), so same-named singleton jobs run
  one at a time in submission order;
- a dependency on a job that does not exist is refused at submission ("Job dependency
  problem"); one that can no longer be met leaves the job pending with reason
  ``DependencyNeverSatisfied``, as Slurm does without ``kill_invalid_depend``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from conductor.domain.dependency import (
    Dependency,
    DependencyResult,
    JobRef,
    JobStatus,
    aggregate_array_status,
    corresponding_refs,
    describe_dependency,
    evaluate_dependency,
    parse_dependency,
)
from conductor.domain.errors import SpecError
from conductor.domain.job import JobSummary
from conductor.errors import DependencyProblem
from conductor.scheduler.policy import DependencyStatus, PendingJob
from conductor.store import DependencyTarget, SingletonState

__all__ = [
    "DEPENDENCY_PROBLEM",
    "DependencyResolver",
    "check_targets",
    "describe_dependencies",
    "evaluate_all",
    "resolve_dependencies",
    "statuses_for",
]

DEPENDENCY_PROBLEM = "Job dependency problem"

log = logging.getLogger("conductor.scheduler.dependencies")


class JobFacts(Protocol):
    """What evaluating dependencies reads of the jobs they name (`conductor.store.Store`)."""

    def job_summaries(self, ids: Iterable[int]) -> dict[int, JobSummary]: ...

    def singleton_blockers(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], SingletonState]: ...


class DependencyStore(JobFacts, Protocol):
    """What resolution needs from `conductor.store.Store`."""

    def dependency_targets(self) -> dict[int, DependencyTarget]: ...


def _refs(dep: Dependency) -> set[JobRef]:
    return {ref for term in dep.terms for ref in term.job_ids}


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands timestamps back naive; they were written in UTC.
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _status(job: JobSummary) -> JobStatus:
    return JobStatus(state=job.state, start_time=_aware(job.start_time), end_time=_aware(job.end_time))


def statuses_for(refs: Iterable[JobRef], rows: Iterable[JobSummary]) -> dict[JobRef, JobStatus]:
    """The status of each referenced job, from job summaries (id, state, times, array ids).

    A ref without a task whose id is an array's id gets the aggregate of all the array's tasks;
    a ref to a job that is not among `rows` is left out (the evaluator counts it as never).
    """
    by_id: dict[int, JobSummary] = {}
    tasks: dict[int, list[JobSummary]] = {}
    by_task: dict[tuple[int, int | None], JobSummary] = {}
    for row in rows:
        by_id[row.id] = row
        if row.array_job_id is not None:
            tasks.setdefault(row.array_job_id, []).append(row)
            by_task[(row.array_job_id, row.array_task_id)] = row
    out: dict[JobRef, JobStatus] = {}
    for ref in refs:
        if ref.task_id is not None:
            task = by_task.get((ref.job_id, ref.task_id))
            if task is not None:
                out[ref] = _status(task)
        elif ref.job_id in tasks:
            out[ref] = aggregate_array_status(_status(t) for t in tasks[ref.job_id])
        elif ref.job_id in by_id:
            out[ref] = _status(by_id[ref.job_id])
    return out


def _singleton_blocked(job_id: int, state: SingletonState | None) -> bool:
    if state is None:
        return False
    return state.running or (state.first_pending_id is not None and state.first_pending_id < job_id)


def evaluate_all(
    dependencies: Mapping[int, Dependency],
    statuses: Mapping[JobRef, JobStatus],
    *,
    now: datetime,
    owners: Mapping[int, tuple[str, str]] | None = None,
    singletons: Mapping[tuple[str, str], SingletonState] | None = None,
    task_ids: Mapping[int, int] | None = None,
) -> dict[int, DependencyStatus]:
    """The dependency status of each job; `owners` maps a job to its (user, name) for singleton,
    `task_ids` an array task to its task id for aftercorr."""
    out: dict[int, DependencyStatus] = {}
    for job_id, dep in dependencies.items():
        owner = (owners or {}).get(job_id)
        blocked = owner is not None and _singleton_blocked(job_id, (singletons or {}).get(owner))
        result = evaluate_dependency(
            dep, statuses, now=now, user_singleton_blocked=blocked, array_task_id=(task_ids or {}).get(job_id)
        )
        out[job_id] = _STATUS[result]
    return out


_STATUS = {
    DependencyResult.SATISFIED: DependencyStatus.SATISFIED,
    DependencyResult.WAITING: DependencyStatus.WAITING,
    DependencyResult.NEVER: DependencyStatus.NEVER,
}


class DependencyResolver:
    """The scheduler's hook: re-evaluates, on every pass, the pending jobs that have a dependency.

    The scheduler keeps its pending jobs between passes, with the status this hook last gave
    them; a job found SATISFIED is remembered here and evaluated again while it is pending
    (singleton can close again; a requeued job can undo an afterok). A pass over a backlog
    with no dependency at all costs no query.
    """

    def __init__(self) -> None:
        self._known: set[int] = set()

    def __call__(self, store: DependencyStore, pending: Sequence[PendingJob]) -> None:
        candidates = [j for j in pending if j.dependency is not DependencyStatus.SATISFIED or j.id in self._known]
        if not candidates and not self._known:
            return
        try:
            resolve_dependencies(store, candidates)
        except Exception:
            log.exception("dependency resolution failed; the jobs concerned wait")
            for job in candidates:
                job.dependency = DependencyStatus.WAITING
        # Remember every job ever resolved, not just this pass's: a pass that looks only at new
        # submissions must not make the next full pass skip a job found satisfied earlier
        # (its target may have been requeued since).
        self._known.update(j.id for j in candidates)


def resolve_dependencies(store: DependencyStore, pending: Sequence[PendingJob], now: datetime | None = None) -> None:
    """Set `dependency` of every job of `pending` that has one (others are left as they are).

    Reads: the dependencies (with each job's array task id, which aftercorr pairs), then every
    job they name (and the singleton jobs' own rows) in one `job_summaries` call, then, only
    when some job asks for singleton, one grouped count.
    """
    waiting = {j.id: j for j in pending}
    if not waiting:
        return
    now = now or datetime.now(UTC)
    parsed: dict[int, Dependency] = {}
    task_ids: dict[int, int] = {}
    for job_id, target in store.dependency_targets().items():
        job = waiting.get(job_id)
        if job is None:
            continue
        try:
            parsed[job_id] = parse_dependency(target.text)
        except SpecError:
            # Stored strings were validated at submission; one that no longer parses can never
            # be met, and must not stop the other jobs from being scheduled.
            job.dependency = DependencyStatus.NEVER
            continue
        if target.array_task_id is not None:
            task_ids[job_id] = target.array_task_id
    if not parsed:
        return
    facts = _gather(store, parsed, task_ids)
    results = evaluate_all(
        parsed, facts.statuses, now=now, owners=facts.owners, singletons=facts.singletons, task_ids=facts.task_ids
    )
    for job_id, status in results.items():
        waiting[job_id].dependency = status


def dependency_of_new_job(
    store: JobFacts, text: str, *, job_id: int, user: str, name: str, array_task_id: int | None = None,
    now: datetime | None = None,
) -> DependencyStatus:
    """The status a job not stored yet (`sbatch --test-only`, as `job_id`) would have with the
    dependency `text`: what the scheduler's first pass would decide for it once stored."""
    try:
        dep = parse_dependency(text)
    except SpecError:
        return DependencyStatus.NEVER
    parsed = {job_id: dep}
    task_ids = {job_id: array_task_id} if array_task_id is not None else {}
    facts = _gather(store, parsed, task_ids)
    owners = {job_id: (user, name)} if any(t.type == "singleton" for t in dep.terms) else {}
    singletons = store.singleton_blockers(set(owners.values())) if owners else {}
    return evaluate_all(
        parsed, facts.statuses, now=now or datetime.now(UTC), owners=owners, singletons=singletons, task_ids=task_ids
    )[job_id]


@dataclass(frozen=True, slots=True)
class _Facts:
    """What evaluating some dependencies needs to know of the jobs around them."""

    statuses: dict[JobRef, JobStatus]
    owners: dict[int, tuple[str, str]]  # singleton jobs: (user, name)
    singletons: dict[tuple[str, str], SingletonState]
    task_ids: Mapping[int, int]  # array tasks: their task id (what aftercorr pairs)
    arrays: frozenset[int]  # the named job ids that are arrays'


def _gather(store: JobFacts, parsed: Mapping[int, Dependency], task_ids: Mapping[int, int]) -> _Facts:
    """`task_ids`: the array task id of each job of `parsed` that is an array task."""
    singleton_jobs = {job_id for job_id, dep in parsed.items() if any(t.type == "singleton" for t in dep.terms)}
    referenced = {ref for dep in parsed.values() for ref in _refs(dep)}
    rows = store.job_summaries({ref.job_id for ref in referenced} | singleton_jobs)
    owners: dict[int, tuple[str, str]] = {}
    for job_id in singleton_jobs:
        row = rows.get(job_id)
        if row is not None:
            owners[job_id] = (row.user_name, row.name)
    for job_id, task in task_ids.items():
        dep = parsed.get(job_id)
        if dep is not None:
            referenced |= corresponding_refs(dep, task)
    singletons = store.singleton_blockers(set(owners.values())) if owners else {}
    named = {ref.job_id for ref in referenced}
    arrays = frozenset(row.array_job_id for row in rows.values() if row.array_job_id in named)
    return _Facts(statuses_for(referenced, rows.values()), owners, singletons, task_ids, arrays)


def describe_dependencies(
    store: JobFacts, dependencies: Mapping[int, DependencyTarget], now: datetime | None = None
) -> dict[int, str | None]:
    """How each job's dependency shows in squeue and scontrol (`describe_dependency`): for jobs
    that have not started, given as job id -> the dependency they were submitted with."""
    now = now or datetime.now(UTC)
    parsed: dict[int, Dependency] = {}
    out: dict[int, str | None] = {}
    for job_id, target in dependencies.items():
        try:
            parsed[job_id] = parse_dependency(target.text)
        except SpecError:
            out[job_id] = f"{target.text}(failed)"  # as the scheduler judges it: never
    if not parsed:
        return out
    tasks = {i: t.array_task_id for i, t in dependencies.items() if t.array_task_id is not None}
    facts = _gather(store, parsed, tasks)
    for job_id, dep in parsed.items():
        owner = facts.owners.get(job_id)
        out[job_id] = describe_dependency(
            dep, facts.statuses, now=now,
            user_singleton_blocked=owner is not None and _singleton_blocked(job_id, facts.singletons.get(owner)),
            array_task_id=facts.task_ids.get(job_id), arrays=facts.arrays,
        )
    return out


class JobSummaries(Protocol):
    """What the check at submission needs from the store."""

    def job_summaries(self, ids: Iterable[int]) -> dict[int, JobSummary]: ...


def check_targets(store: JobSummaries, dependency: str | None, *, field: str = "dependency") -> None:
    """At submission: refuse a dependency naming a job (or array task) that does not exist."""
    if not dependency:
        return
    refs = _refs(parse_dependency(dependency, field=field))
    if not refs:
        return
    found = statuses_for(refs, store.job_summaries({ref.job_id for ref in refs}).values())
    missing = sorted(ref for ref in refs if ref not in found)
    if missing:
        names = ", ".join(str(ref) for ref in missing[:5])
        raise DependencyProblem(f"{DEPENDENCY_PROBLEM}: no job {names} exists", field=field)
