"""When and where a job would start, and why it waits: the scheduler's plan, asked about one job.

`sbatch --test-only` and `conductor explain` run the same pure policy the scheduler runs, over
the same inputs (the backlog, the nodes with their running jobs' ends, the clock): first over
the jobs ahead of the one asked about, as the scheduler's pass would, then over that job with
their reservations kept. So the answer is the plan's, not a second opinion.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from conductor.domain.dependency import JobRef, corresponding_refs, parse_dependency
from conductor.domain.errors import SpecError
from conductor.domain.hostlist import compress_hostlist
from conductor.domain.job import Job, JobSummary
from conductor.domain.priority import effective_priority
from conductor.domain.states import Reason
from conductor.scheduler.dependencies import statuses_for
from conductor.scheduler.limits import (
    ASSOC_MAX_JOBS,
    LIMIT_REASONS,
    QOS_MAX_CPU_PER_USER,
    QOS_MAX_JOBS_PER_USER,
    QOS_MAX_MEMORY_PER_USER,
    Limits,
    LimitTracker,
    Usage,
)
from conductor.scheduler.policy import (
    Backfill,
    Decision,
    DependencyStatus,
    NodeView,
    PendingJob,
    Placement,
    PlacementPolicy,
    Release,
    Reservation,
    order_key,
    schedule,
)
from conductor.scheduler.timeline import INF, Timeline


class PlanStore(Protocol):
    """What a forecast reads (conductor.store.Store provides it)."""

    def pending_snapshot(self) -> tuple[int, list[PendingJob]]: ...

    def node_views(self, *, live_after: datetime | None = None) -> list[NodeView]: ...

    def running_per_array(self) -> dict[int, int]: ...

    def next_job_id(self) -> int: ...

    # The running jobs that count against a limit holding a job back (its user's, its array's).
    def list_jobs(
        self,
        *,
        states: Sequence[str] | None = None,
        users: Sequence[str] | None = None,
        array_job_ids: Sequence[int] | None = None,
        limit: int = 1000,
        count: bool = True,
        columns: Collection[str] | None = None,
    ) -> tuple[list[Job], int]: ...


@dataclass(frozen=True, slots=True)
class Forecast:
    """The plan for one job: it starts now, at `start` on `node`, or cannot be foreseen (INF)."""

    start: float
    node: str | None
    reason: str  # what the scheduler's pass says of it (None when it would start now)
    reserved: bool
    cpus: int
    # Jobs ahead of it in priority order that wait too, and the reservations they hold.
    waiting_ahead: int
    reservations_ahead: list[Reservation]
    # Running jobs on `node` whose time limits must end before it can start (id, end).
    must_end: list[tuple[int, float]]
    unlimited_on_node: list[int]  # running jobs on `node` with no time limit
    now: float
    # (node, free CPUs, CPUs) of the live nodes of its partition, as they are now.
    free_now: list[tuple[str, int, int]] = field(default_factory=list)
    # The longest time limit it could have and start now (0: none would), and where.
    gap: float = 0.0
    gap_node: str | None = None
    # Held back by a limit or by its array's task limit (`reason`; `start` is then INF, the plan
    # cannot tell when it lets go): when and where the nodes alone would let it start (None: not
    # asked, a partition's rule holds it whatever the nodes).
    fit_start: float | None = None
    fit_node: str | None = None
    # The jobs that count against that hold, with the ends their time limits set; when, by those
    # ends, enough of them have ended for it to start (INF: one without a time limit must end;
    # None: cannot be told); and the jobs ahead of it that wait for the same hold and go first.
    counted: list[tuple[int, float]] = field(default_factory=list)
    hold_ends: float | None = None
    queued: int = 0
    started_ahead: list[int] = field(default_factory=list)  # of `counted`: not running, the pass starts them
    # (node, "drained" or "down") of its partition's nodes that take no new job now.
    unavailable: list[tuple[str, str]] = field(default_factory=list)


SNAPSHOT_TTL = 1.0


@dataclass(slots=True)
class Forecaster:
    store: PlanStore
    backfill: Backfill = field(default_factory=Backfill)
    policy: PlacementPolicy = PlacementPolicy.SPREAD
    heartbeat_timeout: float = 30.0
    clock: Callable[[], float] = time.time
    # The cluster configuration's part, as the scheduler's loop has it: multifactor priorities
    # given to the backlog (and its order), and the limits with what running jobs hold.
    prioritise: Callable[[list[PendingJob]], None] | None = None
    limits: Callable[[], tuple[Limits | None, Mapping[tuple[str, str | None], Usage] | None,
                               Mapping[tuple[str, str], Usage] | None]] | None = None
    assign: Callable[[list[NodeView]], list[NodeView]] | None = None  # the file's partitions
    # The backlog as last read, and when (monotonic): explain and --test-only read every pending
    # job, which costs a third of a second at 30,000; within a second they share one read, so
    # a client asking in a loop costs the database one read a second, not one per request.
    _snapshot: tuple[float, list[PendingJob]] | None = field(default=None, init=False, repr=False)

    def _backlog(self) -> list[PendingJob]:
        cached = self._snapshot
        now = time.monotonic()
        if cached is not None and now - cached[0] < SNAPSHOT_TTL:
            return cached[1]
        _, backlog = self.store.pending_snapshot()
        if self.prioritise is not None:
            self.prioritise(backlog)
        self._snapshot = (now, backlog)
        return backlog

    def next_job_id(self) -> int:
        return self.store.next_job_id()

    def forecast_pending(self, job_id: int) -> tuple[PendingJob | None, Forecast | None]:
        """A pending job's forecast; one held or waiting on a dependency or --begin is planned
        as if that were over (what it would then face)."""
        backlog = self._backlog()
        job = next((j for j in backlog if j.id == job_id), None)
        if job is None and self._snapshot is not None:  # submitted since the last read, maybe
            self._snapshot = None
            backlog = self._backlog()
            job = next((j for j in backlog if j.id == job_id), None)
        if job is None:
            return None, None
        free = replace(job, held=False, dependency=DependencyStatus.SATISFIED, begin_time=None)
        return job, self.forecast(free, backlog)

    def forecast(self, job: PendingJob, backlog: list[PendingJob] | None = None) -> Forecast:
        """Plan the backlog ahead of `job`, then `job` itself behind what that plan keeps."""
        now = self.clock()
        if backlog is None:
            backlog = self._backlog()
            if self.prioritise is not None:
                self.prioritise([job])
        key = order_key(job)
        ahead = [j for j in backlog if j.id != job.id and order_key(j) < key]
        live_after = datetime.fromtimestamp(now, UTC) - timedelta(seconds=self.heartbeat_timeout)
        nodes = self.store.node_views(live_after=live_after)
        if self.assign is not None:
            nodes = self.assign(nodes)
        by_name = {n.name: n for n in nodes}
        # The nodes it may use (--nodelist, --exclude keep it to some).
        usable = [n for n in nodes if job.partition in n.partitions and job.allows(n.name)]
        free_now = [(n.name, len(n.free_cpu_ids), len(n.cpu_ids)) for n in usable if n.up]
        unavailable = [(n.name, "drained" if n.drained else "down") for n in usable if not n.up]
        running = self.store.running_per_array()
        limits, usage, account_usage = self.limits() if self.limits is not None else (None, None, None)
        first = schedule(
            ahead, nodes, now, running_per_array=running, policy=self.policy, presorted=True, backfill=self.backfill,
            limits=limits, usage=usage, account_usage=account_usage,
        )
        ahead_by_id = {j.id: j for j in ahead}
        for p in first.placements:  # the jobs it would start hold their CPUs until their limits
            started = ahead_by_id[p.job_id]
            limit = started.time_limit
            by_name[p.node].releases.append(
                Release(p.job_id, len(p.cpu_ids), p.memory_mb, now + limit if limit else INF)
            )
            if started.array_job_id is not None:
                running[started.array_job_id] = running.get(started.array_job_id, 0) + 1
        releases = {n.name: list(n.releases) for n in nodes}
        placed = {p.job_id: p for p in first.placements}
        # What keeps it waiting whatever the nodes, judged as the scheduler's pass would: its
        # array's task limit, else its limits counted after the jobs ahead (their submissions,
        # and what the pass starts of them). A hold, a dependency or --begin comes first.
        limited, held_ahead = _limit_hold(job, ahead, placed, limits, usage, account_usage)
        hold = None if _waits_first(job, now) else _array_hold(job, running) or limited
        # Tested whatever the per-pass budget: the question is about this job.
        alone = replace(self.backfill, max_job_test=1)
        second = schedule(
            [replace(job, reason="", expected_start=None, expected_node=None, array_max_running=None)],
            nodes,
            now,
            running_per_array=running,
            policy=self.policy,
            backfill=alone,
            ahead=first.commitments,
            # Only the rules that count nothing (a partition's state and MaxTime, MaxCPUsPerNode):
            # the counting limits and the array's were judged above, and would hide what the
            # nodes say.
            limits=_rules_only(limits),
        )
        waiting = sum(1 for j in ahead if j.id in first.estimates)
        plan = replace(
            _plan(job, second, nodes, releases, first.commitments.reservations, waiting, now, free_now),
            unavailable=unavailable,
        )
        if hold is None:
            return plan
        counted, need, queued = self._counted(job, hold, ahead, placed, held_ahead, limits, now)
        rules_hold = plan.reason in LIMIT_REASONS  # a partition's rule: the nodes were not asked
        return replace(
            plan, start=INF, node=None, reason=hold, reserved=False, must_end=[], gap=0.0, gap_node=None,
            fit_start=None if rules_hold else plan.start, fit_node=None if rules_hold else plan.node,
            counted=sorted(((i, end) for i, end, _ in counted), key=lambda x: x[1]),
            hold_ends=_hold_ends(counted, need), queued=queued,
            started_ahead=[i for i, _, _ in counted if i in placed],
        )

    def _counted(
        self, job: PendingJob, hold: str, ahead: list[PendingJob], placed: Mapping[int, Placement],
        held_ahead: Mapping[int, str], limits: Limits | None, now: float,
    ) -> tuple[list[tuple[int, float, int]], int, int]:
        """The jobs that count against `hold` as (id, end, amount), the amount of them that must
        end for `job` to start (0: cannot be told), and how many jobs ahead wait for it too.

        Told for the holds one user's or one array's jobs make: its running jobs and those the
        pass starts ahead of it count; the jobs ahead that share the hold, and that nothing else
        keeps waiting, take a freed place first."""
        rule = _HOLD_RULES.get(hold)
        cap = _cap(hold, job, limits)
        if rule is None or cap is None:
            return [], 0, 0
        default = limits.default_qos if limits is not None else ""

        def scope(user: str, qos: str | None, account: str | None, array: int | None) -> tuple[object, ...]:
            return rule.scope(user, qos or default, account, array)

        mine = scope(job.user, job.qos, job.account, job.array_job_id)
        rows, complete = self._running(job, hold)
        counted = [
            (r.id, _end(r), rule.amount(r.allocated_cpus, r.allocated_memory_mb))
            for r in rows if scope(r.user_name, r.qos, r.account, r.array_job_id) == mine
        ]
        queued = first = 0
        for j in ahead:
            if scope(j.user, j.qos, j.account, j.array_job_id) != mine:
                continue
            p = placed.get(j.id)
            if p is not None:
                end = now + j.time_limit if j.time_limit else INF
                counted.append((j.id, end, rule.amount(len(p.cpu_ids), p.memory_mb)))
            elif not _waits_first(j, now) and held_ahead.get(j.id, hold) == hold:
                queued += 1
                first += rule.amount(j.cpus, j.memory_mb)
        need = sum(amount for _, _, amount in counted) + first + rule.amount(job.cpus, job.memory_mb) - cap
        return counted, need if complete else 0, queued

    def _running(self, job: PendingJob, hold: str) -> tuple[list[Job], bool]:
        """The running jobs of `job`'s array or user, and whether that is all of them."""
        if hold == _ARRAY_LIMIT and job.array_job_id is not None:
            rows, _ = self.store.list_jobs(
                states=["RUNNING"], array_job_ids=[job.array_job_id], limit=_MAX_COUNTED, count=False, columns=_COLUMNS
            )
        else:
            rows, _ = self.store.list_jobs(
                states=["RUNNING"], users=[job.user], limit=_MAX_COUNTED, count=False, columns=_COLUMNS
            )
        return rows, len(rows) < _MAX_COUNTED


def _plan(
    job: PendingJob, second: Decision, nodes: list[NodeView], releases: Mapping[str, list[Release]],
    reservations: list[Reservation], waiting: int, now: float, free_now: list[tuple[str, int, int]],
) -> Forecast:
    """The forecast from the pass over `job` alone: placed now, or its estimate and what it rests on."""
    if second.placements:
        placed = second.placements[0]
        return Forecast(now, placed.node, Reason.NONE.value, False, len(placed.cpu_ids), waiting,
                        reservations, [], [], now, free_now)
    by_name = {n.name: n for n in nodes}
    cpus = job.cpus
    reason = second.reasons.get(job.id, Reason.NONE.value)
    estimate = second.estimates.get(job.id)
    start, node = (estimate.start, estimate.node) if estimate is not None else (INF, None)
    must_end: list[tuple[int, float]] = []
    unlimited: list[int] = []
    if node is not None:
        view = by_name[node]
        cpus = len(view.cpu_ids) if job.exclusive else job.cpus
        for r in releases[node]:
            if r.end == INF:
                unlimited.append(r.job_id)
            elif r.end <= start:
                must_end.append((r.job_id, r.end))
    reserved = estimate is not None and estimate.reserved
    gap, gap_node = _gap(job, nodes, reservations, now)
    return Forecast(start, node, reason, reserved, cpus, waiting, reservations,
                    sorted(must_end, key=lambda x: x[1]), unlimited, now, free_now, gap, gap_node)


def _waits_first(job: PendingJob, now: float) -> bool:
    """Held, waiting on its dependency or on --begin: the pass gives that reason before any limit."""
    return job.held or job.dependency is not DependencyStatus.SATISFIED or (
        job.begin_time is not None and job.begin_time > now
    )


_ARRAY_LIMIT = Reason.ARRAY_TASK_LIMIT.value


def _array_hold(job: PendingJob, running: Mapping[int, int]) -> str | None:
    """JobArrayTaskLimit when its array runs as many tasks as it may (those started ahead counted)."""
    if job.array_max_running is None or job.array_job_id is None:
        return None
    return _ARRAY_LIMIT if running.get(job.array_job_id, 0) >= job.array_max_running else None


def _limit_hold(
    job: PendingJob, ahead: list[PendingJob], placed: Mapping[int, Placement], limits: Limits | None,
    usage: Mapping[tuple[str, str | None], Usage] | None, account_usage: Mapping[tuple[str, str], Usage] | None,
) -> tuple[str | None, dict[int, str]]:
    """The limit that holds `job` once the pass has counted the jobs ahead of it, in order, as
    its tracker does: each one's submission, and what it starts (without them, a job whose
    user's last free place the pass gives to a job ahead would be told it fits now); and the
    jobs ahead a limit holds, with it."""
    if limits is None:
        return None, {}
    tracker = LimitTracker(limits, usage or {}, account_usage)
    held: dict[int, str] = {}
    for j in ahead:
        reason = tracker.check(j.partition, j.user, j.qos, j.cpus, j.memory_mb, j.time_limit, j.account)
        p = placed.get(j.id)
        if p is not None:
            tracker.started(j.user, j.qos, len(p.cpu_ids), p.memory_mb, j.account)
        elif reason is not None:
            held[j.id] = reason
    return tracker.check(job.partition, job.user, job.qos, job.cpus, job.memory_mb, job.time_limit, job.account), held


def _rules_only(limits: Limits | None) -> Limits | None:
    """The limits without those that count jobs (QOS and associations)."""
    return None if limits is None else replace(limits, qos={}, accounting=None)


@dataclass(frozen=True, slots=True)
class _HoldRule:
    """Whose jobs count against a hold, and how much each one counts (a job, its CPUs, its MB)."""

    scope: Callable[[str, str, str | None, int | None], tuple[object, ...]]
    amount: Callable[[int, int], int]


def _per_user_qos(user: str, qos: str, _account: str | None, _array: int | None) -> tuple[object, ...]:
    return (user, qos)


def _per_association(user: str, _qos: str, account: str | None, _array: int | None) -> tuple[object, ...]:
    return (user, account)


def _per_array(_user: str, _qos: str, _account: str | None, array: int | None) -> tuple[object, ...]:
    return (array,)


def _one(_cpus: int, _memory: int) -> int:
    return 1


def _cpus(cpus: int, _memory: int) -> int:
    return cpus


def _memory(_cpus: int, memory: int) -> int:
    return memory


# The holds whose jobs a forecast can name: one user's or one array's. The group limits
# (GrpTRES) count every user's jobs, the submit limits pending ones: not told.
_HOLD_RULES = {
    _ARRAY_LIMIT: _HoldRule(_per_array, _one),
    QOS_MAX_JOBS_PER_USER: _HoldRule(_per_user_qos, _one),
    QOS_MAX_CPU_PER_USER: _HoldRule(_per_user_qos, _cpus),
    QOS_MAX_MEMORY_PER_USER: _HoldRule(_per_user_qos, _memory),
    ASSOC_MAX_JOBS: _HoldRule(_per_association, _one),
}
_MAX_COUNTED = 1000  # running jobs read for one explanation; beyond, no time is told
_COLUMNS = ("user_name", "qos", "account", "array_job_id", "start_time", "time_limit", "allocated_cpus",
            "allocated_memory_mb")


def _cap(hold: str, job: PendingJob, limits: Limits | None) -> int | None:
    """The limit's value: what the counted jobs and `job` may hold together."""
    if hold == _ARRAY_LIMIT:
        return job.array_max_running
    if limits is None:
        return None
    if hold == ASSOC_MAX_JOBS:
        resolved = limits.accounting.resolve(job.user, job.account) if limits.accounting is not None and job.account else None
        return resolved.max_jobs if resolved is not None else None
    qos = limits.qos.get(job.qos or limits.default_qos)
    if qos is None:
        return None
    return {
        QOS_MAX_JOBS_PER_USER: qos.max_jobs_per_user,
        QOS_MAX_CPU_PER_USER: qos.max_cpus_per_user,
        QOS_MAX_MEMORY_PER_USER: qos.max_memory_per_user,
    }.get(hold)


def _end(job: Job) -> float:
    """When a running job's time limit ends it (INF: UNLIMITED)."""
    started = job.start_time
    if started is None or not job.time_limit:
        return INF
    return started.timestamp() + job.time_limit


def _hold_ends(counted: list[tuple[int, float, int]], need: int) -> float | None:
    """When, by their time limits, enough of the counted jobs have ended to free `need` of the
    limit (None: cannot be told; the counts disagree when a job ended since they were read)."""
    if need <= 0:
        return None
    freed = 0
    for _, end, amount in sorted(counted, key=lambda c: c[1]):
        freed += amount
        if freed >= need:
            return end
    return None


def _gap(job: PendingJob, nodes: list[NodeView], reservations: list[Reservation], now: float) -> tuple[float, str | None]:
    """The longest run `job` could start now without delaying a reservation, and on which node."""
    best, where = 0.0, None
    for node in nodes:
        if not node.up or job.partition not in node.partitions or (job.exclusive and not node.idle):
            continue
        if not job.allows(node.name):
            continue
        cpus = len(node.cpu_ids) if job.exclusive else job.cpus
        if len(node.free_cpu_ids) < cpus or node.free_memory_mb < job.memory_mb:
            continue
        timeline = Timeline(
            now, len(node.free_cpu_ids), node.free_memory_mb, len(node.cpu_ids),
            [(r.end, r.cpus, r.memory_mb) for r in node.releases],
        )
        for r in reservations:
            if r.node == node.name and r.end > now:
                timeline.take(max(r.start, now), r.end, r.cpus, r.memory_mb)
        length = timeline.free_until(now, cpus, job.memory_mb) - now
        if length > best:
            best, where = length, node.name
    return best, where


def pending_job_from_row(
    row: Mapping[str, Any], job_id: int, now: datetime, dependency: DependencyStatus | None = None
) -> PendingJob:
    """The job a submission would store, as the policy sees it (for `--test-only`); `dependency`:
    its dependency's status, as the first pass would find it (default: waiting on it)."""
    cpus = int(row["cpus_per_task"]) * int(row["ntasks"])
    memory = row.get("memory_per_node_mb") or int(row.get("memory_per_cpu_mb") or 0) * cpus
    begin = row.get("begin_time")
    limit = row.get("time_limit")
    return PendingJob(
        id=job_id,
        cpus=cpus,
        memory_mb=int(memory),
        partition=str(row["partition"]),
        priority=effective_priority(int(row.get("priority") or 0), int(row.get("nice") or 0)),
        submit_time=now.timestamp(),
        exclusive=bool(row.get("exclusive")),
        held=bool(row.get("held")),
        begin_time=begin.timestamp() if isinstance(begin, datetime) else None,
        time_limit=float(limit) if isinstance(limit, int) and limit else None,
        user=str(row.get("user_name") or ""),
        qos=row.get("qos"),
        account=row.get("account"),
        explicit_priority=int(row.get("priority") or 0),
        nice=int(row.get("nice") or 0),
        eligible_time=now.timestamp(),
        dependency=(
            DependencyStatus.SATISFIED if not row.get("dependency")
            else dependency if dependency is not None else DependencyStatus.WAITING
        ),
        required_node=row.get("req_nodes") or None,
        excluded_nodes=frozenset(row["exc_nodes"].split(",")) if row.get("exc_nodes") else frozenset(),
    )


# ------------------------------------------------------------------ explanation
def _when(stamp: float, now: float) -> str:
    local = datetime.fromtimestamp(stamp).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{local} (in {_duration(stamp - now)})"


def _duration(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if hours or days:
        parts.append(f"{hours}h")
    if minutes or hours or days:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return " ".join(parts)


def explain_waiting(job: Job, pending: PendingJob | None, forecast: Forecast | None,
                    targets: Mapping[int, JobSummary]) -> list[str]:
    """Plain sentences: why `job` waits, what it waits for, and what would change it."""
    lines: list[str] = []
    if job.state != "PENDING":
        where = f" on {job.node_list}" if job.node_list else ""
        lines.append(f"Job {job.id} is {job.state}{where}: it is not waiting.")
        return lines
    lines.append(f"Job {job.id} is PENDING, reason {job.reason}.")
    never = job.reason == Reason.DEPENDENCY_NEVER_SATISFIED.value or (
        pending is not None and pending.dependency is DependencyStatus.NEVER
    )
    if job.held:
        lines.append("It is held: it will not start until released (`scontrol release "
                     f"{job.id}`).")
    if job.dependency:
        lines.extend(_explain_dependency(job.dependency, targets, never=never, array_task_id=job.array_task_id))
    if never:
        # No pass will ever free it: what it would face once free is beside the point.
        lines.append(f"It will never start by itself: cancel it (`scancel {job.id}`) and submit it again with a "
                     "dependency that can be met (`scontrol update` cannot change a dependency here).")
        return lines
    if job.begin_time is not None and job.begin_time.timestamp() > time.time():
        lines.append(f"It may not start before its --begin time, {job.begin_time.astimezone():%Y-%m-%dT%H:%M:%S}.")
    blocked = len(lines) > 1  # held, or waiting on a dependency or --begin
    if pending is not None and pending.array_max_running is not None and job.reason == Reason.ARRAY_TASK_LIMIT.value:
        lines.append(f"Its array may run only {pending.array_max_running} tasks at once (%{pending.array_max_running}); "
                     "it starts when one of the running tasks ends.")
    if forecast is not None:
        plan = _explain_plan(job, pending, forecast, blocked=blocked)
        if blocked and plan:
            # The plan is what it would then face.
            lines.append("Once free to start, as the queue stands now:")
            plan = ["  " + line for line in plan]
        lines.extend(plan)
    return lines


def _explain_plan(job: Job, pending: PendingJob | None, forecast: Forecast, *, blocked: bool = False) -> list[str]:
    lines: list[str] = []
    cpus = f"{forecast.cpus} CPU{'s' if forecast.cpus != 1 else ''}"
    if pending is not None and pending.memory_mb:
        cpus += f" and {pending.memory_mb} MB of memory"
    if pending is not None and pending.required_node is not None:
        lines.append(f"It may run on node {pending.required_node} alone (--nodelist).")
    elif pending is not None and pending.excluded_nodes:
        kept_off = compress_hostlist(pending.excluded_nodes)
        lines.append(f"It may not run on {kept_off} (--exclude).")
    if forecast.start == forecast.now and forecast.reason == Reason.NONE.value:
        if blocked:  # the next pass does not start it: what holds it comes first
            lines.append(f"It would fit now ({cpus} free on {forecast.node}): the first pass after that would "
                         "start it.")
        else:
            lines.append(f"It fits now ({cpus} free on {forecast.node}): the scheduler's next pass starts it.")
        return lines
    if forecast.free_now:
        shown = ", ".join(f"{name} {free}/{total}" for name, free, total in forecast.free_now[:8])
        more = f" and {len(forecast.free_now) - 8} more nodes" if len(forecast.free_now) > 8 else ""
        lines.append(f"Free CPUs now in partition {job.partition}: {shown}{more}.")
        if forecast.unavailable:
            lines.append(f"Taking no new job in partition {job.partition}: {_unavailable(forecast)}.")
    elif forecast.start == INF and not _held_back(forecast):
        if forecast.unavailable:
            lines.append(f"No node of partition {job.partition} takes new jobs: {_unavailable(forecast)}.")
        else:
            lines.append(f"No node of partition {job.partition} is up.")
    if forecast.waiting_ahead:
        lines.append(f"{forecast.waiting_ahead} job(s) of higher priority wait ahead of it.")
    for r in forecast.reservations_ahead[:5]:
        lines.append(f"Job {r.job_id} (higher priority) has {r.cpus} CPU(s) of {r.node} reserved from "
                     f"{_when(r.start, forecast.now)}{'' if r.end == INF else ' until ' + _when(r.end, forecast.now)}.")
    if _held_back(forecast):
        lines.extend(_explain_hold(job, forecast, cpus))
        return lines
    if forecast.reason == _NODE_NOT_AVAIL:
        first = forecast.unavailable[0][0] if forecast.unavailable else "NAME"
        lines.append(f"It needs {cpus} on one node of partition {job.partition}: only nodes that take no new job now "
                     "could hold it (ReqNodeNotAvail).")
        other = " or other nodes" if pending is not None and pending.constrained else ""
        lines.append(f"What would change it: an administrator resuming one (`scontrol update NodeName={first} "
                     f"State=RESUME`), a down node's worker coming back, or asking for less{other}.")
        return lines
    if forecast.start == INF:
        lines.append(f"It needs {cpus} on one node of partition {job.partition}; no start can be foreseen:")
        lines.append(_unforeseeable(forecast))
        lines.append("What would change it: those jobs ending, a node joining, or asking for less.")
        return lines
    lines.extend(_explain_estimate(pending, forecast, cpus))
    return lines


def _explain_estimate(pending: PendingJob | None, forecast: Forecast, cpus: str) -> list[str]:
    """A foreseen start: when and where, what it rests on, and what would make it sooner."""
    lines: list[str] = []
    limit = pending.time_limit if pending is not None else None
    lines.append(f"It needs {cpus} on one node; expected start {_when(forecast.start, forecast.now)} "
                 f"on {forecast.node}" + (" (resources are reserved for it)." if forecast.reserved else "."))
    if forecast.must_end:
        ends = ", ".join(f"{job_id} at {_when(end, forecast.now)}" for job_id, end in forecast.must_end[:8])
        lines.append(f"This is based on the time limits of the jobs running on {forecast.node}: {ends}.")
        lines.append("Jobs that end before their time limit make it start earlier.")
    elif forecast.reservations_ahead:
        lines.append("This is based on the reservations of the jobs ahead of it.")
    ahead_here = [r for r in forecast.reservations_ahead if r.node == forecast.node and r.end <= forecast.start]
    if ahead_here:
        lines.append("It starts after the reservation(s) ahead of it on " + f"{forecast.node} end: "
                     + ", ".join(f"job {r.job_id}" for r in ahead_here[:5]) + ".")
    if not forecast.reserved:
        if 0 < forecast.gap < INF and (limit is None or limit > forecast.gap):
            lines.append(f"With a time limit (--time) of at most {_duration(forecast.gap)} it would start now on "
                         f"{forecast.gap_node}, before the reservation there.")
        elif limit is None:
            lines.append("It has no time limit (UNLIMITED): it can only start where nothing is reserved for "
                         "higher-priority jobs; a time limit (--time) would let it backfill into gaps.")
    return lines


_NODE_NOT_AVAIL = Reason.REQ_NODE_NOT_AVAIL.value


def _unavailable(forecast: Forecast) -> str:
    """Its partition's nodes that take no new job: "n1 (drained), n2 (down)"."""
    shown = ", ".join(f"{name} ({why})" for name, why in forecast.unavailable[:8])
    more = len(forecast.unavailable) - 8
    return shown + (f" and {more} more" if more > 0 else "")


def _held_back(forecast: Forecast) -> bool:
    """Held by a limit or its array's task limit: not by the nodes."""
    return forecast.reason in LIMIT_REASONS or forecast.reason == _ARRAY_LIMIT


def _unforeseeable(forecast: Forecast) -> str:
    """Why the nodes give no start (the plan's estimate is INF)."""
    if forecast.unlimited_on_node:
        return ("  the CPUs it needs are held by jobs without a time limit ("
                + ", ".join(map(str, forecast.unlimited_on_node[:10])) + ").")
    return "  no node of its partition that is up can ever hold it, or jobs without a time limit hold what it needs."


def _explain_hold(job: Job, forecast: Forecast, cpus: str) -> list[str]:
    """A job a limit holds back: the limit, what the nodes alone would say, and the jobs that
    count against the limit with when, by their time limits, they let it start."""
    what = ("its array's limit on running tasks" if forecast.reason == _ARRAY_LIMIT
            else "a limit") + f" ({forecast.reason})"
    lines = [f"It waits for {what}, not for a node."]
    now = forecast.now
    if forecast.fit_start == now:
        lines.append(f"As far as the nodes go it would fit now ({cpus} free on {forecast.fit_node}).")
    elif forecast.fit_start is not None and forecast.fit_start < INF:
        lines.append(f"As far as the nodes go it could start {_when(forecast.fit_start, now)} on {forecast.fit_node}.")
    elif forecast.fit_start is not None:
        lines.append(f"As far as the nodes go, no start can be foreseen either ({cpus} on one node of partition "
                     f"{job.partition}):")
        lines.append(_unforeseeable(forecast))
    if forecast.counted:
        ends = ", ".join(f"{job_id} at {_when(end, now) if end < INF else 'no time limit'}"
                         for job_id, end in forecast.counted[:8])
        more = f" and {len(forecast.counted) - 8} more" if len(forecast.counted) > 8 else ""
        lines.append(f"The jobs that count against it end by their time limits: {ends}{more}.")
        if forecast.started_ahead:
            lines.append("Of these, the next pass starts ahead of it: "
                         + ", ".join(map(str, forecast.started_ahead[:8])) + ".")
    if forecast.queued:
        lines.append(f"{forecast.queued} job(s) ahead of it wait too and would count against it: they take "
                     "what the limit frees first.")
    if forecast.hold_ends is not None and forecast.hold_ends < INF:
        lines.append(f"By those time limits the limit lets it start {_when(forecast.hold_ends, now)} at the latest, "
                     "as the queue stands now; jobs that end before their time limit make it sooner.")
    elif forecast.hold_ends is not None:
        lines.append("Jobs without a time limit must end before the limit lets it start: when cannot be foreseen.")
    return lines


def _explain_dependency(text: str, targets: Mapping[int, JobSummary], *, never: bool = False,
                        array_task_id: int | None = None) -> list[str]:
    try:
        dependency = parse_dependency(text)
    except SpecError:
        return [f"Its dependency {text} can never be satisfied." if never else f"It waits on its dependency {text}."]
    join = "all of" if dependency.kind_all else "any of"
    head = f"Its dependency {text} can never be satisfied" if never else f"It waits on its dependency {text}"
    lines = [f"{head} ({join}):"]
    refs = {ref for term in dependency.terms for ref in term.job_ids}
    # As the scheduler sees them: a task by its array and index, an array's id as the whole
    # array (its tasks folded), and aftercorr's task of the job's own index where there is one.
    found = statuses_for(refs | corresponding_refs(dependency, array_task_id), targets.values())
    arrays = {t.array_job_id for t in targets.values() if t.array_job_id is not None}
    for term in dependency.terms:
        if term.type == "singleton":
            lines.append("  singleton: no other job of the same name and user may run first.")
            continue
        for ref in term.job_ids:
            if term.type == "aftercorr" and array_task_id is not None:
                task = found.get(JobRef(ref.job_id, array_task_id))
                if task is not None:
                    lines.append(f"  aftercorr:{ref} - its task {ref.job_id}_{array_task_id} is {task.state}.")
                    continue
            status = found.get(ref)
            state = status.state if status is not None else "unknown (purged?)"
            what = "array" if ref.task_id is None and ref.job_id in arrays else "job"
            lines.append(f"  {term.type}:{ref} - {what} {ref} is {state}.")
    return lines
