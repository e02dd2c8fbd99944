"""When and where a job would start, and why it waits: the scheduler's plan, asked about one job.

`sbatch --test-only` and `conductor explain` run the same pure policy the scheduler runs, over
the same inputs (the backlog, the nodes with their running jobs' ends, the clock): first over
the jobs ahead of the one asked about, as the scheduler's pass would, then over that job with
their reservations kept. So the answer is the plan's, not a second opinion.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from conductor.domain.dependency import parse_dependency
from conductor.domain.errors import SpecError
from conductor.domain.job import Job, JobSummary
from conductor.domain.priority import effective_priority
from conductor.domain.states import Reason
from conductor.scheduler.limits import Limits, Usage
from conductor.scheduler.policy import (
    Backfill,
    DependencyStatus,
    NodeView,
    PendingJob,
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
        free_now = [(n.name, len(n.free_cpu_ids), len(n.cpu_ids)) for n in nodes if n.up and job.partition in n.partitions]
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
        # Tested whatever the per-pass budget: the question is about this job.
        alone = replace(self.backfill, max_job_test=1)
        second = schedule(
            [replace(job, reason="", expected_start=None, expected_node=None)],
            nodes,
            now,
            running_per_array=running,
            policy=self.policy,
            backfill=alone,
            ahead=first.commitments,
            # Its own limits too: a job a limit holds does not "fit now" (what the jobs ahead
            # would start is not counted against them here).
            limits=limits, usage=usage, account_usage=account_usage,
        )
        waiting = sum(1 for j in ahead if j.id in first.estimates)
        cpus = job.cpus
        if second.placements:
            placed = second.placements[0]
            return Forecast(now, placed.node, Reason.NONE.value, False, len(placed.cpu_ids), waiting,
                            first.commitments.reservations, [], [], now, free_now)
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
        gap, gap_node = _gap(job, nodes, first.commitments.reservations, now)
        return Forecast(start, node, reason, reserved, cpus, waiting, first.commitments.reservations,
                        sorted(must_end, key=lambda x: x[1]), unlimited, now, free_now, gap, gap_node)


def _gap(job: PendingJob, nodes: list[NodeView], reservations: list[Reservation], now: float) -> tuple[float, str | None]:
    """The longest run `job` could start now without delaying a reservation, and on which node."""
    best, where = 0.0, None
    for node in nodes:
        if not node.up or job.partition not in node.partitions or (job.exclusive and not node.idle):
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


def pending_job_from_row(row: Mapping[str, Any], job_id: int, now: datetime) -> PendingJob:
    """The job a submission would store, as the policy sees it (for `--test-only`)."""
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
        # A new job's dependency has not been decided by any pass yet: it waits on it, as the
        # stored job would until the scheduler resolves it.
        dependency=DependencyStatus.WAITING if row.get("dependency") else DependencyStatus.SATISFIED,
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
    if job.held:
        lines.append("It is held: it will not start until released (`scontrol release "
                     f"{job.id}`).")
    if job.dependency:
        lines.extend(_explain_dependency(job.dependency, targets))
    if job.begin_time is not None and job.begin_time.timestamp() > time.time():
        lines.append(f"It may not start before its --begin time, {job.begin_time.astimezone():%Y-%m-%dT%H:%M:%S}.")
    if pending is not None and pending.array_max_running is not None and job.reason == Reason.ARRAY_TASK_LIMIT.value:
        lines.append(f"Its array may run only {pending.array_max_running} tasks at once (%{pending.array_max_running}); "
                     "it starts when one of the running tasks ends.")
    if forecast is not None:
        plan = _explain_plan(job, pending, forecast)
        if len(lines) > 1 and plan:
            # Held, or waiting on a dependency or --begin: the plan is what it would then face.
            lines.append("Once free to start, as the queue stands now:")
            plan = ["  " + line for line in plan]
        lines.extend(plan)
    return lines


def _explain_plan(job: Job, pending: PendingJob | None, forecast: Forecast) -> list[str]:
    lines: list[str] = []
    cpus = f"{forecast.cpus} CPU{'s' if forecast.cpus != 1 else ''}"
    if pending is not None and pending.memory_mb:
        cpus += f" and {pending.memory_mb} MB of memory"
    if forecast.start == forecast.now and forecast.reason == Reason.NONE.value:
        lines.append(f"It fits now ({cpus} free on {forecast.node}): the scheduler's next pass starts it.")
        return lines
    if forecast.free_now:
        shown = ", ".join(f"{name} {free}/{total}" for name, free, total in forecast.free_now[:8])
        more = f" and {len(forecast.free_now) - 8} more nodes" if len(forecast.free_now) > 8 else ""
        lines.append(f"Free CPUs now in partition {job.partition}: {shown}{more}.")
    elif forecast.start == INF:
        lines.append(f"No node of partition {job.partition} is up.")
    if forecast.waiting_ahead:
        lines.append(f"{forecast.waiting_ahead} job(s) of higher priority wait ahead of it.")
    for r in forecast.reservations_ahead[:5]:
        lines.append(f"Job {r.job_id} (higher priority) has {r.cpus} CPU(s) of {r.node} reserved from "
                     f"{_when(r.start, forecast.now)}{'' if r.end == INF else ' until ' + _when(r.end, forecast.now)}.")
    limit = pending.time_limit if pending is not None else None
    if forecast.start == INF:
        lines.append(f"It needs {cpus} on one node of partition {job.partition}; no start can be foreseen:")
        if forecast.unlimited_on_node:
            lines.append("  the CPUs it needs are held by jobs without a time limit ("
                         + ", ".join(map(str, forecast.unlimited_on_node[:10])) + ").")
        else:
            lines.append("  no node of its partition that is up can ever hold it, or jobs without a time limit "
                         "hold what it needs.")
        lines.append("What would change it: those jobs ending, a node joining, or asking for less.")
        return lines
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


def _explain_dependency(text: str, targets: Mapping[int, JobSummary]) -> list[str]:
    try:
        dependency = parse_dependency(text)
    except SpecError:
        return [f"It waits on its dependency {text}."]
    join = "all of" if dependency.kind_all else "any of"
    lines = [f"It waits on its dependency {text} ({join}):"]
    for term in dependency.terms:
        if term.type == "singleton":
            lines.append("  singleton: no other job of the same name and user may run first.")
            continue
        for ref in term.job_ids:
            summary = targets.get(ref.job_id)
            state = summary.state if summary is not None else "unknown (purged?)"
            lines.append(f"  {term.type}:{ref} - job {ref} is {state}.")
    return lines
