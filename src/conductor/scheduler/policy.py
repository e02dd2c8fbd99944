"""The scheduler's decisions: a pure function of (pending jobs, nodes, clock).

No I/O and no global state, so tests call `schedule()` directly and the benchmark runs it over
100,000 pending jobs. The loop (`loop.py`) feeds it from the store and applies what it returns.

Backfill with reservations (Slurm's sched/backfill is the model): jobs are taken in priority
order; one that cannot start now gets the earliest time its resources are free, computed from
the running jobs' time limits on each node (`timeline.Timeline`). The first `Backfill.depth` of
those get a reservation: a job behind them starts now only if it cannot delay any of them (it
ends, by its time limit, before the reservation starts, or it uses resources the reservation
does not need). Depth 1 is EASY backfill; a larger depth is conservative backfill.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from conductor.domain.states import Reason
from conductor.scheduler.limits import Limits, LimitTracker, Usage
from conductor.scheduler.timeline import INF, Timeline

# (-tier, -priority, submit time, id): the scheduling order, smallest first.
OrderKey = tuple[int, int, float, int]


class PlacementPolicy(StrEnum):
    SPREAD = "spread"  # least-loaded node that fits: the seed's global load balancing
    PACK = "pack"  # best fit: the node left with the fewest free CPUs


class DependencyStatus(StrEnum):
    SATISFIED = "satisfied"
    WAITING = "waiting"
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class Backfill:
    """How far the plan looks ahead: Slurm's reservation depth and `bf_max_job_test`."""

    # Jobs that get a reservation per pass: 1 is EASY backfill, more is conservative backfill,
    # 0 reserves nothing (the greedy first fit of old: a large job can wait for ever).
    depth: int = 1
    # Jobs tested against the nodes per pass without starting (they get an estimate; the first
    # `depth` a reservation). The rest wait untested until a pass reaches them: this is what
    # bounds a pass whatever the backlog.
    max_job_test: int = 500
    # False: strict priority order (FIFO), nothing starts while a job ahead in its partition waits.
    enabled: bool = True


FIFO = Backfill(depth=0, enabled=False)
EASY = Backfill(depth=1)


@dataclass(slots=True)
class PendingJob:
    id: int
    cpus: int
    memory_mb: int = 0
    partition: str = "debug"
    priority: int = 0
    submit_time: float = 0.0
    exclusive: bool = False
    held: bool = False
    begin_time: float | None = None
    dependency: DependencyStatus = DependencyStatus.SATISFIED
    array_job_id: int | None = None
    array_max_running: int | None = None
    reason: str = Reason.NONE.value
    time_limit: float | None = None  # seconds; None is UNLIMITED
    # The estimate the job carries (what the last plan said), so only changes are written.
    expected_start: float | None = None
    expected_node: str | None = None
    # Whose job, under which QOS (None: the default one): what per-user and QOS limits count.
    user: str = ""
    qos: str | None = None
    account: str | None = None  # the account charged: association limits and fair share
    # What the multifactor priority needs: the explicit priority (0: none, it is computed), nice,
    # and since when the job is eligible.
    explicit_priority: int = 0
    nice: int = 0
    eligible_time: float = 0.0
    # Its partition's PriorityTier when the configuration gives tiers (0 otherwise): it orders
    # before the priority.
    tier: int = 0
    # sbatch --nodelist and --exclude: the one node it must run on, and those it must not.
    required_node: str | None = None
    excluded_nodes: frozenset[str] = frozenset()

    @property
    def constrained(self) -> bool:
        """Whether it may run on some nodes of its partition only (--nodelist, --exclude)."""
        return self.required_node is not None or bool(self.excluded_nodes)

    def allows(self, node: str) -> bool:
        return (self.required_node is None or node == self.required_node) and node not in self.excluded_nodes


@dataclass(frozen=True, slots=True)
class Release:
    """A running job's hold on a node, until its time limit ends it (`end` INF: UNLIMITED)."""

    job_id: int
    cpus: int
    memory_mb: int
    end: float


@dataclass(slots=True)
class NodeView:
    name: str
    cpu_ids: tuple[int, ...]
    free_cpu_ids: list[int]
    memory_mb: int
    free_memory_mb: int
    partitions: frozenset[str]
    running_jobs: int = 0
    # Whether the node takes new jobs: its worker is alive and no administrator drained it. A
    # node that does not is given nothing; its running jobs go on and give their share back.
    up: bool = True
    # Running jobs with their ends. CPUs busy without a release here are held for ever.
    releases: list[Release] = field(default_factory=list)
    # CPUs the running jobs of each partition hold here (a partition's MaxCPUsPerNode caps them).
    partition_cpus: dict[str, int] = field(default_factory=dict)
    # Drained by an administrator (then `up` is False): said apart from a dead node only in
    # explanations.
    drained: bool = False

    @property
    def idle(self) -> bool:
        return self.running_jobs == 0


@dataclass(frozen=True, slots=True)
class Placement:
    job_id: int
    node: str
    cpu_ids: tuple[int, ...]
    memory_mb: int


@dataclass(frozen=True, slots=True)
class Reservation:
    """Resources kept for a pending job over [start, end) on one node."""

    job_id: int
    node: str
    start: float
    end: float
    cpus: int
    memory_mb: int
    key: OrderKey  # the job's `order_key`: whom the reservation outranks


@dataclass(frozen=True, slots=True)
class Estimate:
    """When and where a waiting job is expected to start (`start` INF: not foreseeable)."""

    job_id: int
    start: float
    node: str | None
    reserved: bool


@dataclass(slots=True)
class Commitments:
    """What the jobs ahead of a pass's `pending` hold: their reservations, and the partitions
    where one of them waits for resources (a job behind it waits with reason Priority)."""

    reservations: list[Reservation] = field(default_factory=list)
    waiting: set[str] = field(default_factory=set)

    def merge(self, more: Commitments) -> None:
        self.reservations.extend(more.reservations)
        self.waiting |= more.waiting

    def horizon(self) -> OrderKey | None:
        """The order key of the last reserved job (a job ordered before it changes the plan)."""
        return max((r.key for r in self.reservations), default=None)


@dataclass(slots=True)
class Decision:
    placements: list[Placement] = field(default_factory=list)
    # Only reasons that differ from what the job already carries, so the loop writes nothing
    # when nothing changed.
    reasons: dict[int, str] = field(default_factory=dict)
    # Every job tested without starting: its estimate (reserved or not).
    estimates: dict[int, Estimate] = field(default_factory=dict)
    # Estimates that differ from what the job carries (None: it no longer has one).
    estimate_changes: dict[int, Estimate | None] = field(default_factory=dict)
    # What this pass reserved and where jobs now wait, for the passes over new jobs only.
    commitments: Commitments = field(default_factory=Commitments)


def order_key(job: PendingJob) -> OrderKey:
    """Higher partition PriorityTier first (Slurm evaluates a higher tier's jobs before any of a
    lower one), then higher priority, then earlier submission, then lower id."""
    return (-job.tier, -job.priority, job.submit_time, job.id)


def schedule(
    pending: Sequence[PendingJob],
    nodes: Iterable[NodeView],
    now: float,
    *,
    running_per_array: dict[int, int] | None = None,
    policy: PlacementPolicy | str = PlacementPolicy.SPREAD,
    presorted: bool = False,
    backfill: Backfill = EASY,
    ahead: Commitments | None = None,
    limits: Limits | None = None,
    usage: Mapping[tuple[str, str | None], Usage] | None = None,
    account_usage: Mapping[tuple[str, str], Usage] | None = None,
) -> Decision:
    """Place what fits now without delaying any reservation; plan and explain the rest.

    `pending` in any order unless `presorted` (the store returns it in `order_key` order already;
    skipping the sort is what keeps a pass over 100,000 jobs fast). `ahead`: the commitments of
    higher-priority jobs not in `pending` (a pass over newly submitted jobs only keeps the
    reservations the last full pass made). Nodes are mutated: the caller passes fresh views.

    Reasons as Slurm gives them: the first job of a partition that waits for resources says
    `Resources` (they are being kept for it, when it has a reservation); the jobs behind it
    say `Priority`, and so do jobs that would fit now but would delay a reservation.

    A job that only nodes taking no new job now (drained, or down) could ever hold, since no node
    of its partition that is up is big enough, waits with `ReqNodeNotAvail`, as Slurm's does
    (node_scheduler.c: ESLURM_NODE_NOT_AVAIL when the job cannot run on the available nodes
    even idle): it reserves nothing and keeps nobody behind it waiting (Slurm's scheduler goes
    on with the partition's next job). A job the nodes that are up could hold waits for them
    (`Resources`), whatever else is drained.

    `limits` (partitions' states and MaxTime, QOS limits) with `usage` (what running jobs hold
    per (user, QOS)): a job a limit holds back waits with the limit's reason (PartitionDown,
    QOSMaxJobsPerUserLimit...), reserves nothing and keeps nobody behind it waiting. So does a
    job whose partition or QOS a reload removed (InvalidPartition, InvalidQOS): it never starts
    while they are missing, and is scheduled as any other once a reload brings them back. None:
    no limits, as without a configuration file. `account_usage`: what running jobs hold per (user,
    account charged), for the limits of accounts and associations.
    """
    decision = Decision()
    reasons = decision.reasons
    estimates = decision.estimates
    views = list(nodes)
    up_nodes = [n for n in views if n.up]
    unavailable = _Unavailable(views)
    pack = PlacementPolicy(policy) is PlacementPolicy.PACK
    array_running = dict(running_per_array or {})
    max_free = max((len(n.free_cpu_ids) for n in up_nodes), default=0)
    jobs = pending if presorted else sorted(pending, key=order_key)
    plan = _Plan(up_nodes, now)
    if ahead is not None:
        for r in ahead.reservations:
            plan.reserve(r)
    reserved = len(ahead.reservations) if ahead is not None else 0
    waiting = set(ahead.waiting) if ahead is not None else set()
    tested = 0
    tracker = LimitTracker(limits, usage or {}, account_usage) if limits is not None else None

    budget = backfill.max_job_test
    # Past the test budget a job gets no timeline estimate, but it is still offered the nodes
    # as they are now: a budget spent on jobs that cannot run (a partition that is down, jobs
    # bigger than anything free) must not keep an idle node of another partition idle, nor stop
    # short jobs from backfilling. What failed to fit bounds the search: a job of the same
    # partition needing at least as many CPUs, as much memory and as long cannot fit either.
    misses: dict[MissKey, list[tuple[int, int, float, bool]]] = {}
    for job in jobs:
        reason = _blocking_reason(job, now, array_running)
        reason = _limited(tracker, job, reason)
        if reason is None:
            if not backfill.enabled and job.partition in waiting:
                # Behind a waiting job, in strict order: it waits untested.
                reason = _PRIORITY
            else:
                duration = job.time_limit or INF
                end = now + duration
                node, capped = None, False
                if job.cpus <= max_free and not _dominated(misses, job, duration):
                    node, capped = _pick_node(job, up_nodes, pack, plan, now, end, _cpu_cap(limits, job.partition))
                    if node is None:
                        _note_miss(misses.setdefault(_miss_key(job), []), job, duration)
                if node is not None:
                    taken = _take_cpus(node, job)
                    node.partition_cpus[job.partition] = node.partition_cpus.get(job.partition, 0) + len(taken)
                    plan.place(node, now, end, len(taken), job.memory_mb)
                    decision.placements.append(Placement(job.id, node.name, taken, job.memory_mb))
                    if job.array_job_id is not None:
                        array_running[job.array_job_id] = array_running.get(job.array_job_id, 0) + 1
                    if tracker is not None:
                        tracker.started(job.user, job.qos, len(taken), job.memory_mb, job.account)
                    if len(taken) == max_free or not node.free_cpu_ids:
                        max_free = max((len(n.free_cpu_ids) for n in up_nodes), default=0)
                    _note_estimate(decision, job, None)
                    continue
                # Capped, or ReqNodeNotAvail: no estimate, no reservation, nobody kept waiting.
                reason = (
                    _RESOURCES
                    if capped
                    else unavailable.reason(job)
                    if job.partition in unavailable.risky or job.required_node is not None or job.excluded_nodes
                    else None
                )
                if reason is None:
                    if tested >= budget:
                        _wait_for_resources(decision, job, None, waiting)  # untested: no estimate
                        continue
                    tested += 1
                    reserved += _plan_later(decision, plan, job, duration, backfill.enabled and reserved < backfill.depth)
                    _wait_for_resources(decision, job, estimates[job.id], waiting)
                    continue
        _note_estimate(decision, job, None)
        if reason != job.reason:
            reasons[job.id] = reason
    return decision


def _wait_for_resources(decision: Decision, job: PendingJob, estimate: Estimate | None, waiting: set[str]) -> None:
    """A job that cannot start now: `Resources` for the first of its partition, `Priority` behind."""
    reason = _PRIORITY if job.partition in waiting else _RESOURCES
    waiting.add(job.partition)
    decision.commitments.waiting.add(job.partition)
    _note_estimate(decision, job, estimate)
    if reason != job.reason:
        decision.reasons[job.id] = reason


# Whose failures to fit say something of a job's: its partition's jobs free to use any of its
# nodes, or those kept to the same nodes as it (--nodelist, --exclude).
MissKey = str | tuple[str, str | None, frozenset[str]]


def _miss_key(job: PendingJob) -> MissKey:
    if job.required_node is None and not job.excluded_nodes:
        return job.partition
    return (job.partition, job.required_node, job.excluded_nodes)


def _dominated(
    misses: Mapping[MissKey, list[tuple[int, int, float, bool]]], job: PendingJob, duration: float
) -> bool:
    """Whether a job that needed no more than `job` failed to fit this pass, where `job` may go
    (a job free to use any node of the partition, or one kept to the same nodes)."""
    # Runs for nearly every job of a pass over the whole backlog: attributes, not `constrained`.
    shapes = misses.get(job.partition)
    if job.required_node is not None or job.excluded_nodes:
        shapes = (shapes or []) + misses.get((job.partition, job.required_node, job.excluded_nodes), [])
    if not shapes:
        return False
    return any(
        job.cpus >= cpus and job.memory_mb >= memory and duration >= length and (job.exclusive or not exclusive)
        for cpus, memory, length, exclusive in shapes
    )


_MAX_MISSES = 8  # per key: enough shapes to cut the search, few enough to check at once


def _note_miss(misses: list[tuple[int, int, float, bool]], job: PendingJob, duration: float) -> None:
    if len(misses) < _MAX_MISSES:
        misses.append((job.cpus, job.memory_mb, duration, job.exclusive))


_PRIORITY = Reason.PRIORITY.value
_RESOURCES = Reason.RESOURCES.value
_NODE_NOT_AVAIL = Reason.REQ_NODE_NOT_AVAIL.value
_SATISFIED = DependencyStatus.SATISFIED


def _note_estimate(decision: Decision, job: PendingJob, estimate: Estimate | None) -> None:
    """Record the estimate when it differs from the job's by a second or more, or by node."""
    if estimate is None or estimate.start == INF:
        if job.expected_start is not None or job.expected_node is not None:
            decision.estimate_changes[job.id] = None
        return
    if (
        job.expected_start is None
        or abs(job.expected_start - estimate.start) >= 1.0
        or job.expected_node != estimate.node
    ):
        decision.estimate_changes[job.id] = estimate


class _Unavailable:
    """Whether only nodes that take no new job now could ever hold a job (its reason is then
    ReqNodeNotAvail): answered once per shape. Asked only in the partitions where it can be so
    (`risky`): those with a node that takes no job and is larger, in CPUs or memory, than every
    node of the partition that does. Usually there is none (a drained node is as large as its
    neighbours), and a pass over 100,000 waiting jobs pays one set lookup for each."""

    __slots__ = ("_answers", "_constrained", "_down", "_up", "risky")

    def __init__(self, nodes: list[NodeView]) -> None:
        self._up = [n for n in nodes if n.up]
        self._down = [n for n in nodes if not n.up]
        self._answers: dict[tuple[str, int, int], bool] = {}
        self._constrained: dict[tuple[str, int, int, str | None, frozenset[str]], bool] = {}
        # Compared by shape (CPUs, memory): a cluster has few, however many nodes it has.
        shapes: dict[str, set[tuple[int, int]]] = {}
        for up in self._up:
            for partition in up.partitions:
                shapes.setdefault(partition, set()).add((len(up.cpu_ids), up.memory_mb))
        self.risky = frozenset(
            partition
            for down in self._down
            for partition in down.partitions
            if not any(
                cpus >= len(down.cpu_ids) and memory >= down.memory_mb for cpus, memory in shapes.get(partition, ())
            )
        )

    def reason(self, job: PendingJob) -> str | None:
        """ReqNodeNotAvail when only such nodes could hold `job`, else None. A job kept to some
        nodes (--nodelist, --exclude) is answered alone: ReqNodeNotAvail too when none of the
        nodes it may use could hold it (they left the cluster, or shrank)."""
        if job.constrained:
            constrained = (job.partition, job.cpus, job.memory_mb, job.required_node, job.excluded_nodes)
            could = self._constrained.get(constrained)
            if could is None:
                could = self._constrained[constrained] = any(job.allows(n.name) and _could_hold(job, n) for n in self._up)
            return None if could else _NODE_NOT_AVAIL
        if job.partition not in self.risky:
            return None
        key = (job.partition, job.cpus, job.memory_mb)
        answer = self._answers.get(key)
        if answer is None:
            answer = self._answers[key] = not any(_could_hold(job, n) for n in self._up) and any(
                _could_hold(job, n) for n in self._down
            )
        return _NODE_NOT_AVAIL if answer else None


def _could_hold(job: PendingJob, node: NodeView) -> bool:
    """Whether `node`, idle, could hold `job` (exclusive or not: either needs the job's CPUs)."""
    return job.partition in node.partitions and job.cpus <= len(node.cpu_ids) and job.memory_mb <= node.memory_mb


def _cpus_needed(job: PendingJob, node: NodeView) -> int:
    return len(node.cpu_ids) if job.exclusive else job.cpus


class _Plan:
    """The nodes' timelines, built on first need: a pass where every job starts (or none is
    tested) never pays for them."""

    __slots__ = ("_cache", "_placed", "_timelines", "_version", "nodes", "now", "reserved_nodes")

    def __init__(self, nodes: list[NodeView], now: float) -> None:
        self.nodes = {n.name: n for n in nodes}
        self.now = now
        self._timelines: dict[str, Timeline] | None = None
        self._placed: dict[str, list[tuple[float, int, int]]] = {}
        self.reserved_nodes: set[str] = set()
        # Each node's count of changes: a placement or reservation only ever takes resources,
        # so a node's earliest start only moves later and an answer stays best while the node
        # it names is unchanged (one naming no node, INF, stays right for ever).
        self._version: dict[str, int] = {}
        self._cache: dict[
            tuple[str, int, int, float, bool, str | None, frozenset[str]], tuple[int, float, str | None]
        ] = {}

    def timelines(self) -> dict[str, Timeline]:
        if self._timelines is None:
            self._timelines = {
                name: Timeline(
                    self.now,
                    len(n.free_cpu_ids),
                    n.free_memory_mb,
                    len(n.cpu_ids),
                    [(r.end, r.cpus, r.memory_mb) for r in n.releases] + self._placed.get(name, []),
                )
                for name, n in self.nodes.items()
            }
        return self._timelines

    def place(self, node: NodeView, now: float, end: float, cpus: int, memory: int) -> None:
        # The node view already lost the CPUs and memory; the timeline learns when they return.
        self._version[node.name] = self._version.get(node.name, 0) + 1
        if self._timelines is None:
            self._placed.setdefault(node.name, []).append((end, cpus, memory))
        else:
            self._timelines[node.name].take(now, end, cpus, memory)

    def reserve(self, r: Reservation) -> None:
        timeline = self.timelines().get(r.node)
        if timeline is None or r.end <= self.now:
            return
        self._version[r.node] = self._version.get(r.node, 0) + 1
        timeline.take(max(r.start, self.now), r.end, r.cpus, r.memory_mb)
        self.reserved_nodes.add(r.node)

    def fits_until(self, node: NodeView, start: float, end: float, cpus: int, memory: int) -> bool:
        """Whether a job placed now on `node` leaves every reservation its resources."""
        if node.name not in self.reserved_nodes:
            # Without reservations nothing is planned to take resources later: what is free
            # now stays free (running jobs only give back).
            return True
        return self.timelines()[node.name].fits(start, end, cpus, memory)

    def earliest(self, job: PendingJob, duration: float) -> tuple[float, str | None]:
        """The earliest start of `job` on any node of its partition, and that node."""
        # Jobs of one shape share the answer until the node it names changes: a backlog of
        # thousands of alike jobs costs one search per shape, not one per job.
        key = (job.partition, job.cpus, job.memory_mb, duration, job.exclusive, job.required_node, job.excluded_nodes)
        cached = self._cache.get(key)
        if cached is not None and (cached[2] is None or cached[0] == self._version.get(cached[2], 0)):
            return cached[1], cached[2]
        timelines = self.timelines()
        best, where = INF, None
        for name, node in self.nodes.items():
            if job.partition not in node.partitions or job.memory_mb > node.memory_mb or not job.allows(name):
                continue
            cpus = _cpus_needed(job, node)
            if cpus > len(node.cpu_ids):
                continue
            start = timelines[name].earliest(cpus, job.memory_mb, duration, before=best)
            if start < best:  # ties: the first node in the views' order
                best, where = start, name
        self._cache[key] = (self._version.get(where, 0) if where is not None else 0, best, where)
        return best, where


def _limited(tracker: LimitTracker | None, job: PendingJob, reason: str | None) -> str | None:
    """The job's reason with its limits: a limit counts every job, but speaks only for one that
    nothing else (a hold, a dependency...) keeps waiting."""
    if tracker is None:
        return reason
    limited = tracker.check(job.partition, job.user, job.qos, job.cpus, job.memory_mb, job.time_limit, job.account)
    return reason or limited


def _blocking_reason(job: PendingJob, now: float, array_running: dict[int, int]) -> str | None:
    if job.held:
        return Reason.JOB_HELD_USER.value
    if job.dependency is DependencyStatus.NEVER:
        return Reason.DEPENDENCY_NEVER_SATISFIED.value
    if job.dependency is DependencyStatus.WAITING:
        return Reason.DEPENDENCY.value
    if job.begin_time is not None and job.begin_time > now:
        return Reason.BEGIN_TIME.value
    if (
        job.array_max_running is not None
        and job.array_job_id is not None
        and array_running.get(job.array_job_id, 0) >= job.array_max_running
    ):
        return Reason.ARRAY_TASK_LIMIT.value
    return None


def _fits(job: PendingJob, node: NodeView) -> bool:
    if job.partition not in node.partitions:
        return False
    # Not the `constrained` property: this runs for every node a job is offered.
    if (job.required_node is not None or job.excluded_nodes) and not job.allows(node.name):
        return False
    if job.exclusive:
        return node.idle and job.cpus <= len(node.cpu_ids) and job.memory_mb <= node.free_memory_mb
    return len(node.free_cpu_ids) >= job.cpus and node.free_memory_mb >= job.memory_mb


def _plan_later(decision: Decision, plan: _Plan, job: PendingJob, duration: float, may_reserve: bool) -> int:
    """Estimate when `job`, which cannot start now, will; reserve that start when it may (the
    backfill is on and the depth not reached). Returns the reservations made (0 or 1)."""
    start, where = plan.earliest(job, duration)
    keep = may_reserve and start != INF and where is not None
    if keep and where is not None:
        reservation = Reservation(
            job.id, where, start, start + duration, _cpus_needed(job, plan.nodes[where]), job.memory_mb,
            order_key(job),
        )
        plan.reserve(reservation)
        decision.commitments.reservations.append(reservation)
    decision.estimates[job.id] = Estimate(job.id, start, where, keep)
    return 1 if keep else 0


def _pick_node(
    job: PendingJob, nodes: list[NodeView], pack: bool, plan: _Plan, now: float, end: float, cap: int | None
) -> tuple[NodeView | None, bool]:
    """(the node to start `job` on now, whether only its partition's MaxCPUsPerNode keeps it off
    a node that has room). A capped job waits for its partition's jobs there to end and, as the
    plan does not model the cap, reserves nothing."""
    node = _choose_node(job, nodes, pack, plan, now, end, cap)
    if node is not None or cap is None:
        return node, False
    return None, _choose_node(job, nodes, pack, plan, now, end) is not None


def _cpu_cap(limits: Limits | None, partition: str) -> int | None:
    if limits is None:
        return None
    part = limits.partitions.get(partition)
    return part.max_cpus_per_node if part is not None else None


def _choose_node(
    job: PendingJob, nodes: list[NodeView], pack: bool, plan: _Plan, now: float, end: float, cap: int | None = None
) -> NodeView | None:
    """The node to start `job` on now; `cap`: its partition's MaxCPUsPerNode, which its running
    jobs on one node may hold together."""
    best: NodeView | None = None
    best_key: tuple[float, str] | None = None
    for node in nodes:
        if not _fits(job, node):
            continue
        if cap is not None and node.partition_cpus.get(job.partition, 0) + _cpus_needed(job, node) > cap:
            continue
        if not plan.fits_until(node, now, end, _cpus_needed(job, node), job.memory_mb):
            continue
        free = len(node.free_cpu_ids)
        # spread: the largest free fraction wins (load balancing across unequal nodes);
        # pack: the fewest free CPUs left wins (best fit). Name breaks ties deterministically.
        key = (free, node.name) if pack else (-free / len(node.cpu_ids), node.name)
        if best_key is None or key < best_key:
            best, best_key = node, key
    return best


def _take_cpus(node: NodeView, job: PendingJob) -> tuple[int, ...]:
    # Lowest ids first keeps a job's CPUs contiguous when they can be.
    count = len(node.cpu_ids) if job.exclusive else job.cpus
    taken = tuple(node.free_cpu_ids[:count])
    del node.free_cpu_ids[:count]
    node.free_memory_mb -= job.memory_mb
    node.running_jobs += 1
    return taken
