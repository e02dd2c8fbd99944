"""The cluster configuration's rules at submission: the partition and QOS a job gets, its
default time, and the limits Slurm checks before it accepts a job (with Slurm's messages).

Limits that depend on what runs (MaxJobsPerUser, MaxTRESPerUser, GrpTRES, MaxWall, a DOWN
partition) are not refused here: the job waits with the limit's reason (scheduler/limits.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from conductor.config.live import Effective
from conductor.domain.job import Job
from conductor.domain.timespec import format_time_limit
from conductor.errors import Forbidden, Invalid, InvalidPartition, LimitExceeded, Unsatisfiable
from conductor.scheduler.limits import (
    ASSOC_GRP_CPU,
    ASSOC_GRP_MEMORY,
    ASSOC_MAX_JOBS,
    ASSOC_MAX_SUBMIT,
    ASSOC_MAX_WALL,
    PARTITION_DOWN,
    PARTITION_INACTIVE,
    PARTITION_INVALID,
    PARTITION_TIME_LIMIT,
    QOS_GRP_CPU,
    QOS_GRP_MEMORY,
    QOS_INVALID,
    QOS_MAX_CPU_PER_USER,
    QOS_MAX_JOBS_PER_USER,
    QOS_MAX_MEMORY_PER_USER,
    QOS_MAX_SUBMIT_PER_USER,
    QOS_MAX_WALL,
    AssociationCounts,
    Usage,
)
from conductor.services.requests import JobDescription

# Slurm's words (slurm_errno.c), which sbatch prints after "Batch job submission failed: ".
TIME_LIMIT_INVALID = "Requested time limit is invalid (missing or exceeds some limit)"
PARTITION_UNAVAILABLE = "Required partition not available (inactive or drain)"
QOS_POLICY = "Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)"
INVALID_QOS = "Invalid qos specification"
INVALID_ACCOUNT = "Invalid account or account/partition combination specified"


class ActiveJobs(Protocol):
    def count_active(self, user_name: str, qos: str | None) -> int: ...

    def count_active_in(self, user_name: str, account: str) -> int: ...


def job_partition(effective: Effective, job: JobDescription, fallback: str) -> str:
    """The partition a job runs in: its own, else the file's Default one, else the setting's."""
    if job.partition:
        return job.partition
    config = effective.config
    default = config.default_partition() if config is not None else None
    return default or fallback


def default_time(
    effective: Effective, partition: str, qos: str | None, fallback: int | None, user: str = "",
    account: str | None = None,
) -> int | None:
    """A job without a time limit gets its partition's DefaultTime, else its MaxTime (Slurm's
    rule), else CONDUCTOR_DEFAULT_TIME; never more than its QOS' or its association's MaxWall
    (it would wait for ever), the smaller of them when nothing else gives one."""
    base: int | None = None
    part = effective.partition(partition)
    if part is not None:
        base = part.default_time if part.default_time is not None else part.max_time
    walls = []
    found = effective.qos(qos)
    if found is not None and found[1].max_wall is not None:
        walls.append(found[1].max_wall)
    accounting = effective.accounting
    if accounting.active and user:
        resolved = accounting.resolve(user, account or accounting.default_account(user) or "")
        if resolved is not None and resolved.max_wall is not None:
            walls.append(resolved.max_wall)
    if base is None:
        base = min(walls) if walls else fallback
    elif walls:
        base = min([base, *walls])
    return base


def check_rows(effective: Effective, rows: Sequence[dict[str, Any]], store: ActiveJobs) -> None:
    """Refuse what the configuration refuses; set the QOS the rows are stored with."""
    # The account first: a job without --account is charged to its user's default account,
    # which AllowAccounts then judges.
    check_account(effective, rows, store)
    row = rows[0]
    partition = row["partition"]
    config = effective.config
    if config is not None and config.partitions:
        part = config.partitions.get(partition)
        if part is None:
            raise InvalidPartition(f"Invalid partition name specified: '{partition}'", field="partition")
        allowed = part.accounts()
        if allowed is not None and row.get("account") not in allowed:
            raise Forbidden(INVALID_ACCOUNT, field="account")
        if part.max_cpus_per_node is not None and row["cpus_per_task"] * row["ntasks"] > part.max_cpus_per_node:
            raise Unsatisfiable(
                f"Requested node configuration is not available: partition '{partition}' gives jobs at most "
                f"{part.max_cpus_per_node} CPUs per node (MaxCPUsPerNode)"
            )
        if config.enforce_part_limits != "NO" and part.max_time is not None:
            limit = row["time_limit"]
            if limit is None or limit > part.max_time:
                raise Invalid(TIME_LIMIT_INVALID)
    if effective.partition_state(partition) in ("DRAIN", "INACTIVE"):
        raise Unsatisfiable(PARTITION_UNAVAILABLE)
    if config is None and not effective.accounting.qos:
        return  # without a file or sacctmgr's QOS: one QOS without limits, and --qos is stored as given
    found = effective.qos(row.get("qos"))
    if found is None:
        raise Invalid(INVALID_QOS)
    name, qos = found
    for r in rows:
        r["qos"] = name  # by name, so a later change of DefaultQOS does not move a job
    if qos.max_submit_jobs_per_user is not None:
        active = store.count_active(row["user_name"], rows[0]["qos"])
        if active + len(rows) > qos.max_submit_jobs_per_user:
            raise LimitExceeded(QOS_POLICY)


def check_account(effective: Effective, rows: Sequence[dict[str, Any]], store: ActiveJobs) -> None:
    """Charge the job to its account: the one named, else the user's default account. Once
    accounts exist, a job charged to an association is held to its MaxSubmitJobs here; with
    AccountingStorageEnforce=associations, a job charged to no association of its user is
    refused (without it, as in Slurm, such a job runs and no account limit counts it)."""
    accounting = effective.accounting
    if not accounting.active:
        return
    row = rows[0]
    user = row["user_name"]
    account = row.get("account") or accounting.default_account(user)
    if account != row.get("account"):
        for r in rows:
            r["account"] = account
    resolved = accounting.resolve(user, account) if account else None
    if resolved is None:
        if effective.enforce_associations:
            raise Forbidden(INVALID_ACCOUNT, field="account")
        return
    if resolved.max_submit_jobs is not None and account:
        active = store.count_active_in(user, account)
        if active + len(rows) > resolved.max_submit_jobs:
            raise LimitExceeded(QOS_POLICY)


# ------------------------------------------------------------------ explain
def _missing_sentences(job: Job, effective: Effective) -> list[str] | None:
    """The sentence for a job whose partition or QOS a reload removed; None for other reasons."""
    if job.reason == PARTITION_INVALID:
        return [f"Partition {job.partition} is no longer in the cluster's configuration (a reload removed it): the "
                f"job waits until a reload brings it back; else cancel it (`scancel {job.id}`) and submit it again "
                "to another partition."]
    if job.reason == QOS_INVALID:
        return [f"Its QOS {job.qos or effective.default_qos} is no longer defined: the job waits until it is again; "
                f"else cancel it (`scancel {job.id}`) and submit it again with another QOS."]
    return None


def explain_limit(
    job: Job, effective: Effective, running: Mapping[tuple[str, str | None], Usage], submitted: int
) -> list[str]:
    """Sentences naming the limit that keeps `job` waiting and the count against it.

    `running`: what running jobs hold per (user, QOS as stored); `submitted`: the user's pending
    and running jobs under the job's QOS."""
    reason = job.reason
    missing = _missing_sentences(job, effective)
    if missing is not None:
        return missing
    partition = job.partition
    part = effective.partition(partition)
    cpus = job.cpus_per_task * job.ntasks
    memory = job.memory_per_node_mb or (job.memory_per_cpu_mb or 0) * cpus
    limit = format_time_limit(job.time_limit)
    if reason in (PARTITION_DOWN, PARTITION_INACTIVE):
        state = effective.partition_state(partition)
        return [f"Partition {partition} is {state}: nothing in it starts until an administrator sets it UP "
                f"(`scontrol update PartitionName={partition} State=UP`)."]
    if reason == PARTITION_TIME_LIMIT and part is not None:
        return [f"Its time limit ({limit}) exceeds partition {partition}'s MaxTime ({format_time_limit(part.max_time)}): "
                "it starts only if MaxTime is raised or its time limit lowered "
                f"(`scontrol update JobId={job.id} TimeLimit=...`)."]
    found = effective.qos(job.qos)
    if found is None:
        return []
    name, qos = found
    default = effective.config.default_qos if effective.config is not None else "normal"
    mine = Usage()
    everyone = Usage()
    for (user, stored), used in running.items():
        if (stored or default) != name:
            continue
        for total in ([mine, everyone] if user == job.user_name else [everyone]):
            total.jobs += used.jobs
            total.cpus += used.cpus
            total.memory_mb += used.memory_mb
    who = job.user_name
    if reason == QOS_MAX_WALL:
        return [f"Its time limit ({limit}) exceeds QOS {name}'s MaxWall ({format_time_limit(qos.max_wall)}): "
                "it starts only if MaxWall is raised or its time limit lowered."]
    if reason == QOS_MAX_SUBMIT_PER_USER:
        return [f"QOS {name} allows {qos.max_submit_jobs_per_user} pending and running jobs per user "
                f"(MaxSubmitJobsPerUser); {who} has {submitted}: jobs beyond it wait until others end."]
    if reason == QOS_MAX_JOBS_PER_USER:
        return [f"QOS {name} allows {qos.max_jobs_per_user} running jobs per user (MaxJobsPerUser); {who} has "
                f"{mine.jobs} running: it starts when enough of them end."]
    if reason == QOS_MAX_CPU_PER_USER:
        return [f"QOS {name} allows {qos.max_tres_per_user.cpu} CPUs per user (MaxTRESPerUser=cpu); {who}'s "
                f"running jobs hold {mine.cpus} and it needs {cpus}: it starts when enough of them end."]
    if reason == QOS_MAX_MEMORY_PER_USER:
        return [f"QOS {name} allows {qos.max_tres_per_user.mem} MB per user (MaxTRESPerUser=mem); {who}'s "
                f"running jobs hold {mine.memory_mb} MB and it needs {memory} MB."]
    if reason == QOS_GRP_CPU:
        return [f"QOS {name} allows {qos.grp_tres.cpu} CPUs for all its jobs (GrpTRES=cpu); its running jobs hold "
                f"{everyone.cpus} and it needs {cpus}."]
    if reason == QOS_GRP_MEMORY:
        return [f"QOS {name} allows {qos.grp_tres.mem} MB for all its jobs (GrpTRES=mem); its running jobs hold "
                f"{everyone.memory_mb} MB and it needs {memory} MB."]
    return []


def explain_account_limit(
    job: Job, effective: Effective, running: Mapping[tuple[str, str], Usage], submitted: int
) -> list[str]:
    """Sentences naming the account or association limit that keeps `job` waiting and the count
    against it. `running`: what running jobs hold per (user, account); `submitted`: the user's
    pending and running jobs charged to the job's account."""
    accounting = effective.accounting
    account = job.account
    if not account or not accounting.active:
        return []
    resolved = accounting.resolve(job.user_name, account)
    if resolved is None:
        return []
    counts = AssociationCounts(accounting, running)
    who = job.user_name
    cpus = job.cpus_per_task * job.ntasks
    memory = job.memory_per_node_mb or (job.memory_per_cpu_mb or 0) * cpus
    held = counts.held.get((accounting.association_user(who, account), account), Usage())
    reason = job.reason
    if reason == ASSOC_MAX_WALL:
        return [f"Its time limit ({format_time_limit(job.time_limit)}) exceeds the MaxWall of {who}'s association "
                f"with account {account} ({format_time_limit(resolved.max_wall)}): it starts only if MaxWall is "
                "raised or its time limit lowered."]
    if reason == ASSOC_MAX_SUBMIT:
        return [f"{who}'s association with account {account} allows {resolved.max_submit_jobs} pending and running "
                f"jobs (MaxSubmitJobs); {who} has {submitted}: jobs beyond it wait until others end."]
    if reason == ASSOC_MAX_JOBS:
        return [f"{who}'s association with account {account} allows {resolved.max_jobs} running jobs (MaxJobs); "
                f"{who} has {held.jobs} running there: it starts when enough of them end."]
    if reason in (ASSOC_GRP_CPU, ASSOC_GRP_MEMORY):
        for (user, scope), grp_cpus, grp_memory in resolved.groups:
            used = counts.held.get((user, scope), Usage())
            what = f"{who}'s association with account {scope}" if user else f"account {scope}"
            if reason == ASSOC_GRP_CPU and grp_cpus is not None and used.cpus + cpus > grp_cpus:
                return [f"{what} allows {grp_cpus} CPUs at once (GrpTRES=cpu); its running jobs hold {used.cpus} "
                        f"and it needs {cpus}: it starts when enough of them end."]
            if reason == ASSOC_GRP_MEMORY and grp_memory is not None and used.memory_mb + memory > grp_memory:
                return [f"{what} allows {grp_memory} MB at once (GrpTRES=mem); its running jobs hold "
                        f"{used.memory_mb} MB and it needs {memory} MB."]
    return []
