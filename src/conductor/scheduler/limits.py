"""Partition and QOS limits as data for the pure policy, and the count of what holds them.

The configuration file (conductor.config) becomes a `Limits`; the store gives what the running
jobs hold per user and QOS (`Usage`); `LimitTracker` decides, job by job in priority order,
whether a limit keeps a pending job waiting, with Slurm's reason, and counts the jobs the pass
starts. No I/O: the policy stays a function of its inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from conductor.domain.accounting import NO_ACCOUNT, Accounting, ResolvedLimits
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
ASSOC_MAX_WALL = "AssocMaxWallDurationPerJobLimit"
ASSOC_MAX_SUBMIT = "AssocMaxSubmitJobLimit"
ASSOC_MAX_JOBS = "AssocMaxJobsLimit"
ASSOC_GRP_CPU = "AssocGrpCpuLimit"
ASSOC_GRP_MEMORY = "AssocGrpMemLimit"
# A pending job whose QOS a reload or sacctmgr removed: slurmctld keeps it pending with FAIL_QOS
# and gives it back to the scheduler once the QOS is valid again (job_scheduler.c).
QOS_INVALID = "InvalidQOS"
# A pending job whose partition a reload removed. Slurm 22.05 has no reason for it (its
# reconfigure ends such a job, NODE_FAIL): here the job waits until a reload brings the partition
# back, so it needs a reason of its own, named as Slurm names InvalidAccount and InvalidQOS.
PARTITION_INVALID = "InvalidPartition"

LIMIT_REASONS = frozenset({
    PARTITION_INVALID, PARTITION_DOWN, PARTITION_INACTIVE, PARTITION_TIME_LIMIT, QOS_INVALID, QOS_MAX_WALL,
    QOS_MAX_SUBMIT_PER_USER, QOS_MAX_JOBS_PER_USER, QOS_MAX_CPU_PER_USER, QOS_MAX_MEMORY_PER_USER, QOS_GRP_CPU,
    QOS_GRP_MEMORY, ASSOC_MAX_WALL, ASSOC_MAX_SUBMIT, ASSOC_MAX_JOBS, ASSOC_GRP_CPU, ASSOC_GRP_MEMORY,
})


@dataclass(frozen=True, slots=True)
class PartitionLimit:
    state: str = "UP"  # UP, DOWN (nothing starts), DRAIN (no new submissions), INACTIVE
    max_time: float | None = None  # seconds; None: UNLIMITED
    max_cpus_per_node: int | None = None  # CPUs its running jobs may hold together on one node


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
    # The limits of the partitions the configuration declares and of those `scontrol update`
    # gave a state, declared or not: not the list of the partitions there are.
    partitions: Mapping[str, PartitionLimit] = field(default_factory=dict)
    # Empty: no QOS table (neither a file nor sacctmgr defines one, and a job's --qos is stored
    # as given). Otherwise every QOS there is, the default one included (config.live builds it
    # so): a job whose QOS is missing from it cannot run under it.
    qos: Mapping[str, QosLimit] = field(default_factory=dict)
    default_qos: str = "normal"
    # Accounts and associations with their limits (None: no accounts; nothing to count).
    accounting: Accounting | None = None
    # The partitions the configuration declares. None: it declares none, the partitions are
    # those the workers declare and any name may have nodes; nothing is missing.
    declared_partitions: frozenset[str] | None = None


@dataclass(slots=True)
class Usage:
    """What one user's running jobs in one QOS hold (or, per QOS alone, everyone's)."""

    jobs: int = 0
    cpus: int = 0
    memory_mb: int = 0


def add_usage(total: Usage, jobs: int, cpus: int, memory_mb: int) -> None:
    total.jobs += jobs
    total.cpus += cpus
    total.memory_mb += memory_mb


class AssociationCounts:
    """What running jobs hold per association and per account subtree, and the association
    limits over a job (resolved once per association)."""

    __slots__ = ("_accounting", "_resolved", "held", "submitted")

    def __init__(self, accounting: Accounting, running: Mapping[tuple[str, str], Usage]) -> None:
        self._accounting = accounting
        self._resolved: dict[tuple[str, str], ResolvedLimits | None] = {}
        # (user, account) for an association; (NO_ACCOUNT, account) for an account's subtree.
        self.held: dict[tuple[str, str], Usage] = {}
        self.submitted: dict[tuple[str, str], int] = {}
        for (user, account), u in running.items():
            self.add(user, account, u.jobs, u.cpus, u.memory_mb)
            if account:
                key = (accounting.association_user(user, account), account)
                self.submitted[key] = self.submitted.get(key, 0) + u.jobs

    def limits(self, user: str, account: str) -> ResolvedLimits | None:
        key = (self._accounting.association_user(user, account), account)
        if key not in self._resolved:
            self._resolved[key] = self._accounting.resolve(user, account)
        return self._resolved[key]

    def add(self, user: str, account: str | None, jobs: int, cpus: int, memory_mb: int) -> None:
        # A job charged to an account its user has no association with is held by no account
        # limit, and so counts against none (Slurm: without an association there is no record
        # to charge).
        if not account or self._accounting.association(user, account) is None:
            return
        held = self.held
        # Keyed by the association's user (a login with capitals counts under its lower-case
        # association, whichever spelling its jobs carry).
        user = self._accounting.association_user(user, account)
        add_usage(held.setdefault((user, account), Usage()), jobs, cpus, memory_mb)
        for a in self._accounting.path(account):
            add_usage(held.setdefault((NO_ACCOUNT, a.name), Usage()), jobs, cpus, memory_mb)

    def check(self, user: str, account: str | None, cpus: int, memory_mb: int, seconds: float) -> str | None:
        """The association limit that holds this job now; counts it among its association's
        submitted jobs."""
        if not account:
            return None
        resolved = self.limits(user, account)
        if resolved is None:
            return None
        key = (self._accounting.association_user(user, account), account)
        submitted = self.submitted.get(key, 0) + 1
        self.submitted[key] = submitted
        if resolved.max_wall is not None and seconds > resolved.max_wall:
            return ASSOC_MAX_WALL
        if resolved.max_submit_jobs is not None and submitted > resolved.max_submit_jobs:
            return ASSOC_MAX_SUBMIT
        held = self.held.get(key)
        if resolved.max_jobs is not None and (held.jobs if held else 0) + 1 > resolved.max_jobs:
            return ASSOC_MAX_JOBS
        for scope, grp_cpus, grp_memory in resolved.groups:
            used = self.held.get(scope)
            if grp_cpus is not None and (used.cpus if used else 0) + cpus > grp_cpus:
                return ASSOC_GRP_CPU
            if grp_memory is not None and (used.memory_mb if used else 0) + memory_mb > grp_memory:
                return ASSOC_GRP_MEMORY
        return None


class LimitTracker:
    """One pass's counts: running usage, plus the pending jobs seen (submit limits) and the jobs
    started (run limits). Jobs are shown to `check` in priority order, as Slurm tests them: the
    QOS' limits first, then the association's."""

    __slots__ = ("_assoc", "_group", "_limits", "_submitted", "_user")

    def __init__(
        self, limits: Limits, running: Mapping[tuple[str, str | None], Usage],
        by_account: Mapping[tuple[str, str], Usage] | None = None,
    ) -> None:
        self._limits = limits
        self._assoc = (
            AssociationCounts(limits.accounting, by_account or {}) if limits.accounting is not None else None
        )
        self._user: dict[tuple[str, str], Usage] = {}
        self._group: dict[str, Usage] = {}
        for (user, qos), u in running.items():
            name = qos or limits.default_qos  # a job stored without a QOS has the default one
            for usage in (self._user.setdefault((user, name), Usage()), self._group.setdefault(name, Usage())):
                usage.jobs += u.jobs
                usage.cpus += u.cpus
                usage.memory_mb += u.memory_mb
        self._submitted = {key: u.jobs for key, u in self._user.items()}

    def check(
        self, partition: str, user: str, qos: str | None, cpus: int, memory_mb: int, time_limit: float | None,
        account: str | None = None,
    ) -> str | None:
        """The limit that keeps this pending job waiting now (None: none does). Counts it
        among its user's submitted jobs whatever the answer."""
        limits = self._limits
        name = qos or limits.default_qos
        key = (user, name)
        submitted = self._submitted.get(key, 0) + 1
        self._submitted[key] = submitted
        seconds = INF if time_limit is None else time_limit
        # What a reload removed first: no limit of it can be judged, and the job must not start
        # (a job could not name it at submission).
        declared = limits.declared_partitions
        if declared is not None and partition not in declared:
            reason: str | None = PARTITION_INVALID
        elif limits.qos and name not in limits.qos:
            reason = QOS_INVALID
        else:
            reason = self._check_partition(limits.partitions.get(partition), seconds)
        if reason is None:
            reason = self._check_qos(limits.qos.get(name), key, name, cpus, memory_mb, seconds, submitted)
        if self._assoc is not None:
            # Asked whatever came before, so the association's submit count sees every job.
            assoc = self._assoc.check(user, account, cpus, memory_mb, seconds)
            return reason or assoc
        return reason

    @staticmethod
    def _check_partition(part: PartitionLimit | None, seconds: float) -> str | None:
        if part is None:
            return None
        if part.state == "DOWN":
            return PARTITION_DOWN
        if part.state == "INACTIVE":
            return PARTITION_INACTIVE
        if part.max_time is not None and seconds > part.max_time:
            return PARTITION_TIME_LIMIT
        return None

    def _check_qos(
        self, q: QosLimit | None, key: tuple[str, str], name: str, cpus: int, memory_mb: int, seconds: float,
        submitted: int,
    ) -> str | None:
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

    def started(self, user: str, qos: str | None, cpus: int, memory_mb: int, account: str | None = None) -> None:
        if self._assoc is not None:
            self._assoc.add(user, account, 1, cpus, memory_mb)
        name = qos or self._limits.default_qos
        for usage in (self._user.setdefault((user, name), Usage()), self._group.setdefault(name, Usage())):
            usage.jobs += 1
            usage.cpus += cpus
            usage.memory_mb += memory_mb
