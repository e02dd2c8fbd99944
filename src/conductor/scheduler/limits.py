"""Partition and QOS limits as data for the pure policy, and the count of what holds them.

The configuration file (conductor.config) becomes a `Limits`; the store gives what the running
jobs hold per user and QOS (`Usage`); `LimitTracker` decides, job by job in priority order,
whether a limit keeps a pending job waiting, with Slurm's reason, and counts the jobs the pass
starts. No I/O: the policy stays a function of its inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from conductor.scheduler.timeline import INF

# Slurm's pending reasons for limits (slurm.h, job_reason_string).
PARTITION_DOWN = "PartitionDown"
PARTITION_INACTIVE = "PartitionInactive"
PARTITION_TIME_LIMIT = "PartitionTimeLimit"
QOS_MAX_WALL = "QOSMaxWallDurationPerJobLimit"
QOS_MAX_SUBMIT_PER_USER = "QOSMaxSubmitJobPerUserLimit"
QOS_MAX_JOBS_PER_USER = "QOSMaxJobsPerUserLimit"
QOS_MAX_CPU_PER_USER = "QOSMaxCpuPerUserLimit"
QOS_MAX_MEMORY_PER_USER = "QOSMaxMemoryPerUser"
QOS_GRP_CPU = "QOSGrpCpuLimit"
QOS_GRP_MEMORY = "QOSGrpMemLimit"

LIMIT_REASONS = frozenset({
    PARTITION_DOWN, PARTITION_INACTIVE, PARTITION_TIME_LIMIT, QOS_MAX_WALL, QOS_MAX_SUBMIT_PER_USER,
    QOS_MAX_JOBS_PER_USER, QOS_MAX_CPU_PER_USER, QOS_MAX_MEMORY_PER_USER, QOS_GRP_CPU, QOS_GRP_MEMORY,
})


@dataclass(frozen=True, slots=True)
class PartitionLimit:
    state: str = "UP"  # UP, DOWN (nothing starts), DRAIN (no new submissions), INACTIVE
    max_time: float | None = None  # seconds; None: UNLIMITED


@dataclass(frozen=True, slots=True)
class QosLimit:
    max_jobs_per_user: int | None = None
    max_submit_jobs_per_user: int | None = None
    max_cpus_per_user: int | None = None
    max_memory_per_user: int | None = None  # MB
    max_wall: float | None = None  # seconds
    grp_cpus: int | None = None
    grp_memory: int | None = None  # MB


@dataclass(frozen=True, slots=True)
class Limits:
    partitions: Mapping[str, PartitionLimit] = field(default_factory=dict)
    qos: Mapping[str, QosLimit] = field(default_factory=dict)
    default_qos: str = "normal"


@dataclass(slots=True)
class Usage:
    """What one user's running jobs in one QOS hold (or, per QOS alone, everyone's)."""

    jobs: int = 0
    cpus: int = 0
    memory_mb: int = 0


class LimitTracker:
    """One pass's counts: running usage, plus the pending jobs seen (submit limits) and the jobs
    started (run limits). Jobs are shown to `check` in priority order, as Slurm tests them."""

    __slots__ = ("_group", "_limits", "_submitted", "_user")

    def __init__(self, limits: Limits, running: Mapping[tuple[str, str | None], Usage]) -> None:
        self._limits = limits
        self._user: dict[tuple[str, str], Usage] = {}
        self._group: dict[str, Usage] = {}
        for (user, qos), u in running.items():
            name = qos or limits.default_qos  # a job stored without a QOS has the default one
            for usage in (self._user.setdefault((user, name), Usage()), self._group.setdefault(name, Usage())):
                usage.jobs += u.jobs
                usage.cpus += u.cpus
                usage.memory_mb += u.memory_mb
        self._submitted = {key: u.jobs for key, u in self._user.items()}

    def check(self, partition: str, user: str, qos: str | None, cpus: int, memory_mb: int, time_limit: float | None) -> str | None:
        """The limit that keeps this pending job waiting now (None: none does). Counts it
        among its user's submitted jobs whatever the answer."""
        limits = self._limits
        name = qos or limits.default_qos
        key = (user, name)
        submitted = self._submitted.get(key, 0) + 1
        self._submitted[key] = submitted
        part = limits.partitions.get(partition)
        seconds = INF if time_limit is None else time_limit
        if part is not None:
            if part.state == "DOWN":
                return PARTITION_DOWN
            if part.state == "INACTIVE":
                return PARTITION_INACTIVE
            if part.max_time is not None and seconds > part.max_time:
                return PARTITION_TIME_LIMIT
        q = limits.qos.get(name)
        if q is None:
            return None
        if q.max_wall is not None and seconds > q.max_wall:
            return QOS_MAX_WALL
        if q.max_submit_jobs_per_user is not None and submitted > q.max_submit_jobs_per_user:
            return QOS_MAX_SUBMIT_PER_USER
        used = self._user.get(key)
        if q.max_jobs_per_user is not None and (used.jobs if used else 0) + 1 > q.max_jobs_per_user:
            return QOS_MAX_JOBS_PER_USER
        if q.max_cpus_per_user is not None and (used.cpus if used else 0) + cpus > q.max_cpus_per_user:
            return QOS_MAX_CPU_PER_USER
        if q.max_memory_per_user is not None and (used.memory_mb if used else 0) + memory_mb > q.max_memory_per_user:
            return QOS_MAX_MEMORY_PER_USER
        group = self._group.get(name)
        if q.grp_cpus is not None and (group.cpus if group else 0) + cpus > q.grp_cpus:
            return QOS_GRP_CPU
        if q.grp_memory is not None and (group.memory_mb if group else 0) + memory_mb > q.grp_memory:
            return QOS_GRP_MEMORY
        return None

    def started(self, user: str, qos: str | None, cpus: int, memory_mb: int) -> None:
        name = qos or self._limits.default_qos
        for usage in (self._user.setdefault((user, name), Usage()), self._group.setdefault(name, Usage())):
            usage.jobs += 1
            usage.cpus += cpus
            usage.memory_mb += memory_mb
