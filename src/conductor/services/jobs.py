"""The use cases on jobs, called alike by every entry point (native routes, the submit fast path,
slurmrestd): submit, cancel, signal, hold, release, requeue, update.

Each takes the caller (`Principal`) and a typed request, and returns a typed result or raises a
`conductor.errors.Refusal` whose kind the transport turns into its own answer. A refusal can
only happen before the store commits: what follows a commit (counting the user's pending jobs,
waking the scheduler and nodes) never raises, so no caller can take a stored job for a refused
one and send it again.

Job ids as users write them: `123` is exactly job 123, even when 123 is also an array's id (the
CLI fans an array out into its tasks and addresses each by its own id); `123_4` is task 4 of
array 123 and `123_*` every task of array 123 (the form Slurm's dependencies use). slurmrestd
takes Slurm's own meaning instead, where an array's id is the whole array (`slurm_array_ids`).
"""

from __future__ import annotations

import logging
import math
import re
import signal as posix_signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from conductor.bus import SCHEDULER, node_topic
from conductor.config.live import LiveConfig
from conductor.domain.dependency import parse_dependency
from conductor.domain.job import Job
from conductor.domain.priority import effective_priority
from conductor.domain.signals import signal_name
from conductor.domain.states import JobState
from conductor.errors import (
    AlreadyDone,
    Conflict,
    Forbidden,
    Invalid,
    KeyReused,
    LimitExceeded,
    NotFound,
    Refusal,
    UnknownUser,
)
from conductor.monitoring.metrics import JOBS_SUBMITTED
from conductor.scheduler.dependencies import check_targets, dependency_of_new_job, describe_dependencies
from conductor.scheduler.limits import LIMIT_REASONS
from conductor.scheduler.policy import DependencyStatus, NodeView, PendingJob
from conductor.services.forecast import Forecast, Forecaster, explain_waiting, pending_job_from_row
from conductor.services.idempotency import HEADER, request_digest
from conductor.services.ports import JobStore, Wakeups
from conductor.services.principal import Principal, ensure_owner
from conductor.services.requests import SubmitRequest
from conductor.services.sharing import check_rows, default_time, explain_account_limit, explain_limit, job_partition
from conductor.services.submission import Limits, build_rows, check_privileges, submit_host, submitter_for
from conductor.store import BEING_STOPPED, NOT_HELD, ControlOutcome, SubmissionKey, SubmitKeyTaken, utcnow

log = logging.getLogger("conductor.services")

# ASCII digits only (\d alone takes every script's, which int() reads: '١' was job 1), and used
# with fullmatch (`$` matched before a final newline).
_JOB_REF = re.compile(r"(\d{1,18})(?:_(\d{1,9}|\*))?", re.ASCII)
WHOLE_ARRAY = -1  # the task part of `123_*`


# ------------------------------------------------------------------ results
@dataclass(frozen=True, slots=True)
class Submitted:
    """Jobs stored: one, or an array's tasks in order. `replayed`: stored by an earlier
    submission with the same Idempotency-Key and request, answered again; nothing was stored now."""

    job_ids: list[int]
    array: bool
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class WouldSubmit:
    """A test-only submission that would have been accepted; nothing was stored."""

    count: int
    # When and where the scheduler's plan would start it (None: no planner to ask).
    forecast: Forecast | None = None
    job_id: int | None = None  # the id it would likely get
    partition: str | None = None


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a job waits, in sentences, and the plan they come from (None: it does not wait)."""

    job: Job
    lines: list[str]
    forecast: Forecast | None


@dataclass(frozen=True, slots=True)
class Target:
    """What a job id names: one job, one array task, or every task of an array."""

    text: str
    ids: list[int]
    whole_array: bool


@dataclass(frozen=True, slots=True)
class ControlResult:
    """What an action did: the jobs it applied to, and a sentence saying so."""

    job_id: str
    action: str
    job_ids: list[int]
    message: str


@dataclass(frozen=True, slots=True)
class CancelResult:
    """The seed's cancel answer: a job that had already ended is no error, only said so."""

    job_id: str
    state: str | None
    message: str


@dataclass(frozen=True, slots=True)
class JobChanges:
    """`scontrol update`: the fields to change, each present only when given."""

    values: Mapping[str, Any]


# ------------------------------------------------------------------ job ids
def parse_job_ref(job_id: str) -> tuple[int, int | None]:
    """`123` -> (123, None); `123_4` -> (123, 4); `123_*` -> (123, WHOLE_ARRAY)."""
    match = _JOB_REF.fullmatch(job_id.strip(" "))  # spaces around an id are forgiven, not a newline
    if match is None:
        raise Invalid(
            f"'{job_id[:40]}' is not a job id (123, 123_4 for task 4 of array 123, or 123_* for all its tasks)",
            field="job_id",
        )
    task = match.group(2)
    return int(match.group(1)), (WHOLE_ARRAY if task == "*" else int(task)) if task is not None else None


class _Inflight:
    """Jobs a batch of submissions under way stored (JobService.submit_many), which no count of
    the store sees before its commit: pending per user, active per (user, QOS) and per (user,
    account), the counts its limits are checked against."""

    def __init__(self) -> None:
        self.pending: dict[str, int] = {}
        self.qos: dict[tuple[str, str | None], int] = {}
        self.accounts: dict[tuple[str, str], int] = {}

    def add(self, row: Mapping[str, Any], count: int) -> None:
        """Count `count` jobs like `row` (a negative count: no longer)."""
        user = row["user_name"]
        _bump(self.pending, user, count)
        _bump(self.qos, (user, row.get("qos")), count)
        if row.get("account"):
            _bump(self.accounts, (user, row["account"]), count)


def _bump(counts: dict[Any, int], key: Any, by: int) -> None:
    value = counts.get(key, 0) + by
    if value:
        counts[key] = value
    else:
        counts.pop(key, None)


class _WithInflight:
    """The store's counts of active jobs, and those of the batch under way."""

    def __init__(self, store: JobStore, inflight: _Inflight) -> None:
        self.store = store
        self.inflight = inflight

    def count_active(self, user_name: str, qos: str | None) -> int:
        return self.store.count_active(user_name, qos) + self.inflight.qos.get((user_name, qos), 0)

    def count_active_in(self, user_name: str, account: str) -> int:
        return self.store.count_active_in(user_name, account) + self.inflight.accounts.get((user_name, account), 0)


class _Accepted(NamedTuple):
    """A submission of a batch checked and ready to store (JobService.submit_many)."""

    position: int  # in the batch
    user: str
    rows: list[dict[str, Any]]
    array: bool
    key: SubmissionKey | None


# ------------------------------------------------------------------ the service
@dataclass
class JobService:
    store: JobStore
    bus: Wakeups
    limits: Limits
    max_pending_per_user: int
    hostname: str
    root_jobs_allowed: bool = False
    # The scheduler's plan, asked about one job (sbatch --test-only, explain); None: not asked.
    forecaster: Forecaster | None = None
    # The cluster configuration (partitions, QOS and their limits); None: none, today's rules.
    config: LiveConfig | None = None
    # Node sizes for submission checks: (monotonic expiry, shapes).
    _shapes: tuple[float, list[NodeView]] = (0.0, [])
    # user -> (monotonic time the count was read, pending jobs then + accepted here since)
    _pending: dict[str, tuple[float, int]] = field(default_factory=dict)
    # What submit_many's batch under way stored, which no count of the store sees yet.
    _inflight: _Inflight = field(default_factory=_Inflight)

    # -------------------------------------------------------------- submit
    def submit(
        self,
        principal: Principal,
        request: SubmitRequest,
        *,
        client_host: str | None = None,
        key: str | None = None,
    ) -> Submitted | WouldSubmit:
        """Validate `request` and store its job(s): one, or an array's tasks.

        `key`: the request's Idempotency-Key, as the transport checked it (services/
        idempotency.py). A key the user already submitted with answers that submission again
        (`replayed`, nothing stored) when the request is the same, and is refused (KeyReused)
        when it is not; a retry is answered as the first request was even if it would be
        refused now (by the pending-job limit its own job counts in). A test-only submission
        ignores its key.

        The key is looked up only when it matters: when a check refuses the request
        (`_check_keyed`), or when the insert finds the key taken (SubmitKeyTaken). A new key,
        nearly every one, costs no read."""
        keyed = self._keyed(request, key)
        checked = self._check_keyed(principal, request, client_host, keyed)
        if isinstance(checked, WouldSubmit | Submitted):
            return checked
        user, rows = checked
        if keyed is None:
            ids = self.store.submit(rows)
        else:
            try:
                ids = self.store.submit(rows, key=keyed)
            except SubmitKeyTaken:
                # Another submission with the key was stored meanwhile (the unique index chose):
                # answered as its replay. Nothing of this one was stored.
                return self._winner(user, keyed)
        # Committed: from here on nothing may raise (see the module's docstring).
        self._after_submit(user, len(ids))
        return Submitted(ids, array=bool(request.job.array))

    def submit_many(
        self,
        submissions: Sequence[tuple[Principal, SubmitRequest, str | None]],
        keys: Sequence[str | None] | None = None,
    ) -> list[Submitted | WouldSubmit | Exception]:
        """Several submissions, their jobs stored in one transaction (the store's
        batched_writes): for each, what submit() would have returned, or the error it would
        have raised. One refused or failed does not fail the others; if the commit fails, all
        fail with its error. The scheduler is woken once they are committed.

        All are checked first, then stored: the transaction, which holds the database's one
        write lock, holds it for the inserts alone. Each one checked counts against the limits
        of those after it (`_inflight`) until all are stored.

        `keys`: each submission's Idempotency-Key (None: none), as submit() takes it. Each
        insert is a savepoint of its own: one the unique index refuses (a key stored before,
        or earlier in this batch) is undone alone, and answered once the batch is committed,
        from the job that holds the key (which only then is there to read)."""
        results: list[Submitted | WouldSubmit | Exception | None] = []
        accepted: list[_Accepted] = []
        stored: list[tuple[str, int]] = []  # (user, jobs) of each submission stored
        taken: list[_Accepted] = []  # refused by the unique index on keys: answered after the commit
        try:
            for index, (principal, request, host) in enumerate(submissions):
                outcome = self._checked(index, principal, request, host, keys[index] if keys else None)
                if isinstance(outcome, _Accepted):
                    self._inflight.add(outcome.rows[0], len(outcome.rows))
                    accepted.append(outcome)
                    results.append(None)
                else:
                    results.append(outcome)
            with self.store.batched_writes():
                for job in accepted:
                    try:
                        ids = self.store.submit(job.rows) if job.key is None else self.store.submit(job.rows, key=job.key)
                    except SubmitKeyTaken:
                        taken.append(job)
                        continue
                    except Exception as exc:  # noqa: BLE001 - that submission's own answer
                        results[job.position] = exc
                        continue
                    results[job.position] = Submitted(ids, array=job.array)
                    stored.append((job.user, len(ids)))
        except Exception as exc:  # noqa: BLE001 - the commit failed: nothing of the batch is stored
            failed: list[Submitted | WouldSubmit | Exception] = [
                exc if result is None or isinstance(result, Submitted) and not result.replayed else result
                for result in results
            ]
            return failed + [exc] * (len(submissions) - len(failed))
        finally:
            for job in accepted:
                self._inflight.add(job.rows[0], -len(job.rows))
        for job in taken:
            try:
                results[job.position] = self._winner(job.user, job.key)
            except Exception as exc:  # noqa: BLE001 - that submission's own answer
                results[job.position] = exc
        for user, count in stored:
            self._after_submit(user, count)
        return [result if result is not None else RuntimeError("not stored") for result in results]

    @staticmethod
    def _keyed(request: SubmitRequest, key: str | None) -> SubmissionKey | None:
        """The submission's key with its request's digest (None: no key, or a test-only
        submission, which stores nothing)."""
        if key is None or request.job.test_only:
            return None
        return SubmissionKey(key, request_digest(request))

    def _check_keyed(
        self, principal: Principal, request: SubmitRequest, client_host: str | None, keyed: SubmissionKey | None
    ) -> tuple[str, list[dict[str, Any]]] | WouldSubmit | Submitted:
        """`_check`; but a request it refuses whose key its user already submitted with is
        answered as that submission (or refused as KeyReused if the request was another)."""
        try:
            return self._check(principal, request, client_host)
        except Refusal:
            earlier = self._earlier(principal.user, keyed) if keyed is not None else None
            if earlier is not None:
                return earlier
            raise

    def _checked(
        self, position: int, principal: Principal, request: SubmitRequest, host: str | None, key: str | None
    ) -> _Accepted | Submitted | WouldSubmit | Exception:
        """Submission `position` of a batch, checked: what to store, or its answer already (a
        replay, a test-only submission, the error that refuses it)."""
        try:
            keyed = self._keyed(request, key)
            checked = self._check_keyed(principal, request, host, keyed)
        except Exception as exc:  # noqa: BLE001 - that submission's own answer
            return exc
        if isinstance(checked, WouldSubmit | Submitted):
            return checked
        user, rows = checked
        return _Accepted(position, user, rows, bool(request.job.array), keyed)

    def _earlier(self, user: str, keyed: SubmissionKey) -> Submitted | None:
        """The answer of the user's submission with this key, if there is one and its request
        was this one; KeyReused if it was another."""
        found = self.store.submitted_with(user, keyed.key)
        if found is None:
            return None
        if found.digest != keyed.digest:
            raise KeyReused(
                "this key was already used for another request (a different job description or script); "
                "send a new key with each new submission, and the same key only to retry the same request",
                field=HEADER,
            )
        return Submitted(found.job_ids, array=found.array, replayed=True)

    def _winner(self, user: str, keyed: SubmissionKey | None) -> Submitted:
        """The answer to a submission the unique index refused: the one that holds its key."""
        earlier = self._earlier(user, keyed) if keyed is not None else None
        if earlier is None:  # its job was purged between the two statements: not stored, say so
            raise Conflict(f"{HEADER}: the submission that holds this key is gone; send the request again")
        return earlier

    def _check(
        self, principal: Principal, request: SubmitRequest, client_host: str | None
    ) -> tuple[str, list[dict[str, Any]]] | WouldSubmit:
        """Validate `request`: the submitting user and the rows to store, or (test only) what
        would be. Raises a Refusal saying why it may not be stored."""
        now = utcnow()
        submitter = submitter_for(principal.user, submit_host(client_host, self.hostname))
        if submitter.uid is None:
            # The job would run as a user this host cannot name; in one host the API and the
            # worker share the passwd database, so the worker could not run it either.
            raise UnknownUser(f"Invalid user id: user '{principal.user}' does not exist on this host (no passwd entry)")
        if submitter.uid == 0 and not self.root_jobs_allowed:
            raise Forbidden("jobs as root are not allowed here (set CONDUCTOR_ALLOW_ROOT_JOBS=true to allow them)")
        check_privileges(request.job, admin=principal.admin)
        limits, nodes, effective = self.limits, self.node_shapes(), None
        if self.config is not None:
            self.config.refresh()
            effective = self.config.current
            partition = job_partition(effective, request.job, limits.default_partition)
            limits = replace(
                limits,
                default_partition=partition,
                default_time_limit=default_time(
                    effective, partition, request.job.qos, limits.default_time_limit, principal.user,
                    request.job.account,
                ),
            )
            nodes = self.config.assign([replace(n) for n in nodes])
            if effective.partition(partition) is not None and not any(partition in n.partitions for n in nodes):
                nodes = []  # a partition of the file without nodes yet: its jobs wait for them
        rows = build_rows(request.job, request.script, submitter=submitter, limits=limits, nodes=nodes, now=now)
        if effective is not None:
            check_rows(effective, rows, _WithInflight(self.store, self._inflight))
        check_targets(self.store, rows[0]["dependency"])  # Slurm refuses a dependency on no job
        limit = self.max_pending_per_user
        pending = self._pending_jobs(submitter.user, len(rows), limit)
        if pending + len(rows) > limit:
            raise LimitExceeded(
                f"user '{submitter.user}' has {pending} pending jobs; {len(rows)} more would exceed the limit of "
                f"{limit} pending jobs per user (CONDUCTOR_MAX_PENDING_PER_USER)"
            )
        if request.job.test_only:
            if self.forecaster is None:
                return WouldSubmit(len(rows))
            job_id = self.forecaster.next_job_id()
            first = rows[0]
            dependency = dependency_of_new_job(
                self.store, first["dependency"], job_id=job_id, user=first["user_name"], name=first["name"],
                array_task_id=first.get("array_task_id"), now=now,
            ) if first["dependency"] else None
            forecast = self.forecaster.forecast(pending_job_from_row(first, job_id, now, dependency))
            return WouldSubmit(len(rows), forecast, job_id, rows[0]["partition"])
        return submitter.user, rows

    def _after_submit(self, user: str, count: int) -> None:
        JOBS_SUBMITTED.inc(count)  # a lock and an addition: the fast path's whole cost of metrics
        try:
            read_at, pending = self._pending.get(user, (float("-inf"), 0))
            self._pending[user] = (read_at, pending + count)
            self.bus.publish(SCHEDULER)
        except Exception:
            log.warning("a submission was stored but the scheduler could not be woken", exc_info=True)

    def _pending_jobs(self, user: str, adding: int, limit: int) -> int:
        """The user's pending jobs, for the per-user limit, exact wherever it decides.

        Counting on every submit costs time in proportion to the user's backlog (0.3 ms at
        4,000 pending jobs, on a path that should cost less than a millisecond in all). Far
        from the limit an estimate decides: the last count, at most a second old, plus what
        this process accepted since. Jobs that started meanwhile only make it too high; other
        servers' submissions of the last second could make it too low, so within a margin
        of the limit the count is exact.
        """
        now = time.monotonic()
        read_at, count = self._pending.get(user, (float("-inf"), 0))
        margin = max(limit // 10, 1000)
        inflight = self._inflight.pending.get(user, 0)  # stored in this batch, not yet committed
        if now - read_at > 1.0 or count + inflight + adding > limit - margin:
            count = self.store.count_pending(user)
            self._pending[user] = (now, count)
        return count + inflight

    def node_shapes(self) -> list[NodeView]:
        """Node sizes for submission checks, read at most once a second: they change only
        when a node registers, and every submit reads them."""
        expires, shapes = self._shapes
        now = time.monotonic()
        if expires <= now:
            shapes = self.store.node_shapes()
            self._shapes = (now + 1.0, shapes)
        return shapes

    # -------------------------------------------------------------- job ids
    def explain(self, job_id: str) -> Explanation:
        """Why the job waits and what would change it, from the scheduler's plan."""
        job = self.find(job_id)
        pending: PendingJob | None = None
        forecast: Forecast | None = None
        if job.state == JobState.PENDING.value and self.forecaster is not None:
            pending, forecast = self.forecaster.forecast_pending(job.id)
        targets = {}
        if job.dependency:
            try:
                refs = {r.job_id for t in parse_dependency(job.dependency).terms for r in t.job_ids}
                targets = self.store.job_summaries(refs)
            except Invalid:
                pass
        lines = explain_waiting(job, pending, forecast, targets)
        if forecast is not None and forecast.reason in LIMIT_REASONS and job.reason not in LIMIT_REASONS:
            # The plan counts the jobs ahead: a limit can hold the job before its stored reason
            # (Priority, from the last pass) shows it.
            job = replace(job, reason=forecast.reason)
        if self.config is not None and job.state == JobState.PENDING.value and job.reason in LIMIT_REASONS:
            self.config.refresh()
            by_qos, by_account = self.store.running_holdings()
            limit = explain_limit(
                job, self.config.current, by_qos, self.store.count_active(job.user_name, job.qos)
            ) or explain_account_limit(
                job, self.config.current, by_account,
                self.store.count_active_in(job.user_name, job.account) if job.account else 0,
            )
            lines[1:1] = limit
        if pending is not None and forecast is not None:
            forecast = _when_free(pending, forecast)
        return Explanation(job, lines, forecast)

    def dependency_states(self, ids: Sequence[int]) -> dict[int, str | None]:
        """How the dependency of each job of `ids` shows in squeue and scontrol (Slurm's
        annotated form, domain/dependency.describe_dependency): None for a job without one,
        one that started or one whose dependency is satisfied; unknown ids are left out."""
        found = self.store.dependencies_of(ids)
        described = describe_dependencies(self.store, {i: target for i, target in found.items() if target})
        return {job_id: described.get(job_id) for job_id in found}

    def find(self, job_id: str) -> Job:
        """The one job `job_id` names (`123`, or `123_4`: task 4 of array 123), read once."""
        base, task = parse_job_ref(job_id)
        if task == WHOLE_ARRAY:
            raise Invalid(f"'{job_id[:40]}' names every task of an array; give 123 or 123_4 here", field="job_id")
        if task is not None:
            found = self.store.resolve_task(base, task)
            job = self.store.get_job(found) if found is not None else None
            if job is None:
                raise NotFound(f"job_id: no task {task} in array {base}", field="job_id")
            return job
        job = self.store.get_job(base)
        if job is None:
            raise NotFound(f"job_id: no job {base}", field="job_id")
        return job

    def resolve(self, job_id: str, *, slurm_array_ids: bool = False) -> Target:
        """The jobs `job_id` names for an action: one job, one task, or all tasks of `123_*`."""
        return self._resolve(job_id, slurm_array_ids=slurm_array_ids)[0]

    def _resolve(self, job_id: str, *, slurm_array_ids: bool = False) -> tuple[Target, Job | None]:
        """The target, and its job when it is one job (read once, for the checks that follow)."""
        base, task = parse_job_ref(job_id)
        if task is None and not slurm_array_ids or task is not None and task != WHOLE_ARRAY:
            job = self.find(job_id)
            return Target(job_id, [job.id], whole_array=False), job
        tasks = self.store.array_task_ids(base)
        if tasks:
            return Target(job_id, tasks, whole_array=True), None
        if task == WHOLE_ARRAY:
            raise NotFound(f"job_id: no array {base}", field="job_id")
        job = self.find(job_id)
        return Target(job_id, [job.id], whole_array=False), job

    def _owned(
        self, principal: Principal, job_id: str, action: str, *, slurm_array_ids: bool = False
    ) -> tuple[Target, Job | None]:
        """The target, once the caller is known to own it (an array's tasks share one owner),
        and its first job as read for that check."""
        target, job = self._resolve(job_id, slurm_array_ids=slurm_array_ids)
        if job is None:
            job = self.store.get_job(target.ids[0])
        if job is None:  # gone since it was resolved (purged): nobody's to act on
            raise NotFound(f"job {target.text} not found", field="job_id")
        ensure_owner(principal, job.id, job.user_name, action)
        return target, job

    # -------------------------------------------------------------- actions
    def cancel(self, principal: Principal, job_id: str) -> CancelResult:
        """POST /jobs/cancel: one job, one task, or a whole array; an ended job is no error."""
        try:
            target, _ = self._owned(principal, job_id, "cancel it")
        except NotFound as exc:  # the seed's (and Slurm's) words
            raise NotFound(f"Invalid job id specified: {job_id[:40]}", field="job_id") from exc
        if not target.whole_array:
            outcome = self.store.cancel(target.ids[0], by=principal.user)
            if not outcome.found:
                raise NotFound(outcome.message, field="job_id")
            self._wake(outcome.node and {outcome.node} or set(), scheduler=True)
            return CancelResult(str(target.ids[0]), outcome.state, outcome.message)
        many = self.store.cancel_jobs(target.ids, by=principal.user)
        self._wake(many.nodes, scheduler=True)
        if not many.changed:
            return CancelResult(target.text, None, f"array {target.text}: every task has already finished")
        return CancelResult(
            target.text,
            JobState.CANCELLED.value,
            f"array {target.text}: cancel requested for {len(many.changed)} task(s)"
            + (f"; {len(many.skipped)} had already finished" if many.skipped else ""),
        )

    def signal(
        self,
        principal: Principal,
        job_id: str,
        number: int,
        *,
        batch_only: bool = False,
        steps_only: bool = False,
        slurm_array_ids: bool = False,
        action: str = "signal it",
    ) -> ControlResult:
        """scancel --signal: deliver a signal without ending the job; SIGKILL cancels, as in Slurm.
        The job's worker delivers it, wherever it runs: to the batch shell alone (`batch_only`,
        scancel --batch), to the job's steps alone (`steps_only`: its sruns, which pass it to their
        tasks; scancel --signal without --batch or --full), or to every process."""
        if batch_only and steps_only:
            raise Invalid("batch_only and steps_only exclude each other: give one, or neither for every process",
                          field="steps_only")
        target, _ = self._owned(principal, job_id, action, slurm_array_ids=slurm_array_ids)
        if number == posix_signal.SIGKILL:
            outcome = self.store.cancel_jobs(target.ids, by=principal.user)
            self._wake(outcome.nodes, scheduler=True)
            return _result(target, outcome, "signal", "only a pending or running job can be killed", "killed")
        outcome = self.store.queue_signal(target.ids, f"b:{number}" if batch_only else f"s:{number}" if steps_only else str(number))
        self._wake(outcome.nodes, scheduler=False)
        return _result(
            target, outcome, "signal", "only a running job can be signalled", f"signalled with SIG{signal_name(number)}"
        )

    def hold(self, principal: Principal, job_id: str) -> ControlResult:
        """scontrol hold: a pending job stays pending (reason JobHeldUser) until released."""
        target, _ = self._owned(principal, job_id, "hold it")
        outcome = self.store.hold_jobs(target.ids, True)
        self._wake(outcome.nodes, scheduler=True)
        return _result(target, outcome, "hold", "only a pending job can be held", "held")

    def release(self, principal: Principal, job_id: str) -> ControlResult:
        """scontrol release: a held job becomes eligible again."""
        target, _ = self._owned(principal, job_id, "release it")
        outcome = self.store.hold_jobs(target.ids, False)
        self._wake(outcome.nodes, scheduler=True)
        return _result(target, outcome, "release", "only a held pending job can be released", "released")

    def requeue(self, principal: Principal, job_id: str, *, hold: bool = False) -> ControlResult:
        """scontrol requeue[hold]: a running job is stopped and returns to PENDING; an ended job
        returns to PENDING at once. Either way restart_count grows by one (SLURM_RESTART_COUNT)."""
        target, _ = self._owned(principal, job_id, "requeue it")
        outcome = self.store.requeue_jobs(target.ids, hold=hold)
        self._wake(outcome.nodes, scheduler=True)
        done = "requeued" + (" held" if hold else "")
        return _result(target, outcome, "requeue", "only a running or finished job can be requeued", done)

    def update(self, principal: Principal, job_id: str, changes: JobChanges) -> ControlResult:
        """scontrol update: time_limit, priority, nice, name, comment of a pending or running job.

        A running job's new time limit is enforced by its worker from the moment it hears of it
        (at once: the node is woken). Without administrator rights, as in Slurm, a time limit or a
        priority may only be lowered, and nice may not go below 0.
        """
        target, current = self._owned(principal, job_id, "update it")
        if not principal.admin and current is not None:
            checked = [current]
            if len(target.ids) > 1 and {"time_limit", "priority"} & changes.values.keys():
                # Each task it changes (its pending and running ones): checked against the first
                # alone, a change lifted every task to the first's limit, which an administrator
                # may have raised for it alone; and an ended first task, unchanged, refused it.
                checked, _ = self.store.list_jobs(
                    job_ids=target.ids, states=[JobState.PENDING.value, JobState.RUNNING.value],
                    limit=len(target.ids), count=False, columns=("time_limit", "priority", "nice"),
                )
            for task in checked:
                _check_rights(task, changes.values)
        outcome = self.store.update_jobs(target.ids, changes.values)
        self._wake(outcome.nodes, scheduler=True)
        return _result(target, outcome, "update", "only a pending or running job can be updated", "updated")

    def _wake(self, nodes: set[str], *, scheduler: bool) -> None:
        # After a commit: a wake-up that fails is repaired by the periodic passes, never raised.
        try:
            for node in sorted(nodes):
                self.bus.publish(node_topic(node))
            if scheduler:
                self.bus.publish(SCHEDULER)
        except Exception:
            log.warning("an action was stored but a wake-up failed", exc_info=True)


def _check_rights(job: Job, changes: Mapping[str, Any]) -> None:
    if "time_limit" in changes:
        new, old = changes["time_limit"], job.time_limit
        if old is not None and (new is None or new > old):
            raise Forbidden("time_limit: only an administrator may raise a job's time limit", field="time_limit")
    # Compared as the scheduler orders them: a stored 0 is the default (10,001), so setting 0
    # on a lowered job would raise it, and any value below the default lowers a default job.
    if "priority" in changes and effective_priority(changes["priority"], job.nice) > effective_priority(
        job.priority, job.nice
    ):
        raise Forbidden("priority: only an administrator may raise a job's priority", field="priority")
    if "nice" in changes and changes["nice"] < 0:
        raise Forbidden("nice: only an administrator may set a negative nice value", field="nice")


def _why(job_id: int, state: str, needs: str) -> str:
    if state == NOT_HELD:
        return f"job {job_id} is not held"
    if state == BEING_STOPPED:
        return f"job {job_id} is already being stopped"
    if state in (JobState.PENDING.value, JobState.RUNNING.value):
        return f"job {job_id} is {state}; {needs}"
    return f"job {job_id} has already finished ({state}); {needs}"


def _result(target: Target, outcome: ControlOutcome, action: str, needs: str, done: str) -> ControlResult:
    """Conflict when the action applied to no job; otherwise the answer, naming what was skipped."""
    if not outcome.changed:
        first = min(outcome.skipped) if outcome.skipped else target.ids[0]
        state = outcome.skipped.get(first, "UNKNOWN")
        reason = _why(first, state, needs)
        if target.whole_array:
            reason = f"array {target.text}: no task could be {done} ({reason})"
        ended = state not in (JobState.PENDING.value, JobState.RUNNING.value, NOT_HELD)
        raise (AlreadyDone if ended else Conflict)(reason)
    count = len(outcome.changed)
    what = f"{count} task{'s' if count != 1 else ''} of array {target.text}" if target.whole_array else f"job {target.text}"
    message = f"{what} {done}"
    if outcome.skipped:
        message += f"; {len(outcome.skipped)} skipped (not in a state that allows it)"
    return ControlResult(job_id=target.text, action=action, job_ids=sorted(outcome.changed), message=message)


def _when_free(job: PendingJob, forecast: Forecast) -> Forecast:
    """The plan's start for a job that waits for something first: it was planned as if that were
    over (to tell what it would then face). A hold or a dependency has no foreseeable end, so no
    start is; a --begin time is the earliest start."""
    if job.held or job.dependency != DependencyStatus.SATISFIED:
        return replace(forecast, start=math.inf, node=None, reserved=False)
    if job.begin_time is not None and job.begin_time > forecast.start:
        return replace(forecast, start=job.begin_time)
    return forecast
