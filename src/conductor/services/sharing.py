"""The cluster configuration's rules at submission: the partition and QOS a job gets, its
default time, and the limits Slurm checks before it accepts a job (with Slurm's messages).

Limits that depend on what runs (MaxJobsPerUser, MaxTRESPerUser, GrpTRES, MaxWall, a DOWN
partition) are not refused here: the job waits with the limit's reason (scheduler/limits.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from conductor.config.live import Effective
from conductor.errors import Forbidden, Invalid, InvalidPartition, LimitExceeded, Unsatisfiable
from conductor.services.requests import JobDescription

# Slurm's words (slurm_errno.c), which sbatch prints after "Batch job submission failed: ".
TIME_LIMIT_INVALID = "Requested time limit is invalid (missing or exceeds some limit)"
PARTITION_UNAVAILABLE = "Required partition not available (inactive or drain)"
QOS_POLICY = "Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)"
INVALID_QOS = "Invalid qos specification"
INVALID_ACCOUNT = "Invalid account or account/partition combination specified"


class ActiveJobs(Protocol):
    def count_active(self, user_name: str, qos: str | None) -> int: ...


def job_partition(effective: Effective, job: JobDescription, fallback: str) -> str:
    """The partition a job runs in: its own, else the file's Default one, else the setting's."""
    if job.partition:
        return job.partition
    config = effective.config
    default = config.default_partition() if config is not None else None
    return default or fallback


def default_time(effective: Effective, partition: str, qos: str | None, fallback: int | None) -> int | None:
    """A job without a time limit gets its partition's DefaultTime, else its MaxTime (Slurm's
    rule), else its QOS MaxWall, else CONDUCTOR_DEFAULT_TIME."""
    part = effective.partition(partition)
    if part is not None:
        if part.default_time is not None:
            return part.default_time
        if part.max_time is not None:
            return part.max_time
    found = effective.qos(qos)
    if found is not None and found[1].max_wall is not None:
        return found[1].max_wall
    return fallback


def check_rows(effective: Effective, rows: Sequence[dict[str, Any]], store: ActiveJobs) -> None:
    """Refuse what the configuration refuses; set the QOS the rows are stored with."""
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
    if config is None:
        return  # without a file: one QOS without limits, and --qos is stored as given
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
