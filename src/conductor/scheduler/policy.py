"""The scheduler's decisions: a pure function of (pending jobs, nodes, clock).

No I/O and no global state, so tests call `schedule()` directly and the benchmark runs it over
100,000 pending jobs. The loop (`loop.py`) feeds it from the store and applies what it returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from conductor.domain.states import Reason


class PlacementPolicy(StrEnum):
    SPREAD = "spread"  # least-loaded node that fits: the seed's global load balancing
    PACK = "pack"  # best fit: the node left with the fewest free CPUs


class DependencyStatus(StrEnum):
    SATISFIED = "satisfied"
    WAITING = "waiting"
    NEVER = "never"


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


@dataclass(slots=True)
class NodeView:
    name: str
    cpu_ids: tuple[int, ...]
    free_cpu_ids: list[int]
    memory_mb: int
    free_memory_mb: int
    partitions: frozenset[str]
    running_jobs: int = 0
    up: bool = True

    @property
    def idle(self) -> bool:
        return self.running_jobs == 0


@dataclass(frozen=True, slots=True)
class Placement:
    job_id: int
    node: str
    cpu_ids: tuple[int, ...]
    memory_mb: int


@dataclass(slots=True)
class Decision:
    placements: list[Placement] = field(default_factory=list)
    # Only reasons that differ from what the job already carries, so the loop writes nothing
    # when nothing changed.
    reasons: dict[int, str] = field(default_factory=dict)


def order_key(job: PendingJob) -> tuple[int, float, int]:
    """Higher priority first, then earlier submission, then lower id."""
    return (-job.priority, job.submit_time, job.id)


def schedule(
    pending: Sequence[PendingJob],
    nodes: Iterable[NodeView],
    now: float,
    *,
    running_per_array: dict[int, int] | None = None,
    policy: PlacementPolicy | str = PlacementPolicy.SPREAD,
    presorted: bool = False,
) -> Decision:
    """Place what fits now and say why the rest waits.

    `pending` in any order unless `presorted` (the store returns it in `order_key` order already;
    skipping the sort is what keeps a pass over 100,000 jobs fast). A job that does not fit waits
    with reason Resources while later, smaller jobs may still start (no reservation for large
    jobs yet). Nodes are mutated copies' worth of state: the caller passes fresh views each pass.
    """
    decision = Decision()
    reasons = decision.reasons
    up_nodes = [n for n in nodes if n.up]
    pack = PlacementPolicy(policy) is PlacementPolicy.PACK
    array_running = dict(running_per_array or {})
    max_free = max((len(n.free_cpu_ids) for n in up_nodes), default=0)
    jobs = pending if presorted else sorted(pending, key=order_key)

    for job in jobs:
        reason = _blocking_reason(job, now, array_running)
        if reason is None and job.cpus > max_free:
            reason = Reason.RESOURCES.value
        if reason is None:
            node = _choose_node(job, up_nodes, pack)
            if node is None:
                reason = Reason.RESOURCES.value
            else:
                taken = _take_cpus(node, job)
                decision.placements.append(Placement(job.id, node.name, taken, job.memory_mb))
                if job.array_job_id is not None:
                    array_running[job.array_job_id] = array_running.get(job.array_job_id, 0) + 1
                if len(taken) == max_free or not node.free_cpu_ids:
                    max_free = max((len(n.free_cpu_ids) for n in up_nodes), default=0)
                continue
        if reason != job.reason:
            reasons[job.id] = reason
    return decision


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
    if job.exclusive:
        return node.idle and job.cpus <= len(node.cpu_ids) and job.memory_mb <= node.free_memory_mb
    return len(node.free_cpu_ids) >= job.cpus and node.free_memory_mb >= job.memory_mb


def _choose_node(job: PendingJob, nodes: list[NodeView], pack: bool) -> NodeView | None:
    best: NodeView | None = None
    best_key: tuple[float, str] | None = None
    for node in nodes:
        if not _fits(job, node):
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
