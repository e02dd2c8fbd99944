"""HTTP request and response bodies. Field names are the seed's (DESIGN 1.3)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

# The submission's body is the services' typed request; the API takes it as it is.
from conductor.services.requests import JobDescription, SubmitRequest, no_control_characters, not_bool

__all__ = ["JobDescription", "SubmitRequest", "no_control_characters", "not_bool"]

class SubmitResponse(BaseModel):
    job_id: str | None
    array_task_ids: list[str] | None = None
    message: str | None = None


class CancelResponse(BaseModel):
    job_id: str
    state: str | None
    message: str


class StatsResponse(BaseModel):
    total_cpus: int
    used_cpus: int
    available_cpus: int
    running_jobs: int
    pending_jobs: int


class DependencyStates(BaseModel):
    """GET /jobs/dependencies: each job's dependency as squeue and scontrol show it."""

    # Job id -> the conditions not fulfilled yet, each with "(unfulfilled)" or "(failed)"
    # ("afterok:12(unfulfilled),afterany:13_*(unfulfilled)"); null for a job without a
    # dependency, one that started or one whose dependency is satisfied. Unknown ids are left out.
    dependencies: dict[str, str | None]


class QueryTime(BaseModel):
    submit_time: str | None
    start_time: str | None
    end_time: str | None
    eligible_time: str | None
    elapsed_time: int
    limit_time: int | None


class QueryLog(BaseModel):
    stdout: str | None
    stderr: str | None


class QueryDetail(BaseModel):
    job_name: str
    user: str
    partition: str
    allocated_cpus: int
    allocated_nodes: int
    node_list: str | None
    exit_code: str | None
    work_dir: str
    account: str | None
    reason: str
    cpu_ids: str | None
    priority: int
    array_job_id: int | None
    array_task_id: int | None


class JobStepUsage(BaseModel):
    """One job step (srun inside the batch script): JOBID.<step_id>."""

    step_id: int
    name: str
    state: str
    exit_code: str
    ntasks: int
    start_time: str
    end_time: str
    elapsed: int
    user_cpu: float | None = None
    system_cpu: float | None = None
    total_cpu: float | None = None
    max_rss: int | None = None


class JobUsage(BaseModel):
    """What a job used, as its node measured it (memory in bytes, CPU in seconds)."""

    user_cpu: float | None = None
    system_cpu: float | None = None
    total_cpu: float | None = None
    max_rss: int | None = None
    ave_rss: int | None = None
    max_vmsize: int | None = None
    oom_kills: int = 0
    source: str | None = None  # cgroup-v2, cgroup-v1 or polling
    steps: list[JobStepUsage] = []


class QueryResponse(BaseModel):
    job_id: str
    state: str
    error_msg: str | None
    time: QueryTime
    job_log: QueryLog
    detail: QueryDetail
    usage: JobUsage | None = None


class JobRecord(BaseModel):
    job_id: int
    array_job_id: int | None
    array_task_id: int | None
    array_max_running: int | None
    array_spec: str | None
    name: str
    user: str
    account: str | None
    partition: str
    state: str
    reason: str
    priority: int
    nice: int
    cpus_per_task: int
    ntasks: int
    ntasks_per_node: int | None
    memory_per_node_mb: int | None
    memory_per_cpu_mb: int | None
    allocated_cpus: int
    cpu_ids: str | None
    node_list: str | None
    submit_time: str | None
    eligible_time: str | None
    start_time: str | None
    end_time: str | None
    elapsed: int
    time_limit: int | None
    exit_code: str | None
    error_msg: str | None
    work_dir: str
    standard_output: str
    standard_error: str
    standard_input: str
    dependency: str | None
    hold: bool
    begin_time: str | None
    requeue: bool
    restart_count: int
    comment: str | None
    qos: str | None
    exclusive: bool
    cancel_requested: bool
    # What squeue shows as its priority: the order the scheduler uses, 0 only when held.
    scheduling_priority: int = 0
    # A pending job's expected start and node, from the scheduler's backfill plan.
    expected_start_time: str | None = None
    sched_nodes: str | None = None
    # What was submitted, as scontrol's Command= shows it: the batch script's path when sbatch
    # read it from a file; null for --wrap, standard input or an API submission without one.
    command: str | None = None
    # Who cancelled it, once somebody asked to (sacct's "CANCELLED by UID"); null otherwise.
    cancelled_by: str | None = None
    # sbatch --nodelist and --exclude, as host lists (scontrol's ReqNodeList and ExcNodeList).
    required_nodes: str | None = None
    excluded_nodes: str | None = None
    # A running job whose end was asked for (a cancel, its time limit), until its processes are
    # gone: the state it will end in (CANCELLED, TIMEOUT) and when it was asked. Slurm's views
    # show it COMPLETING from that moment, its run time stopped there.
    ending_state: str | None = None
    ending_time: str | None = None

    usage: JobUsage | None = None

class Explanation(BaseModel):
    """GET /jobs/{id}/explain: why a job waits, from the scheduler's plan."""

    job_id: str
    state: str
    reason: str
    expected_start_time: str | None  # null: not foreseeable, or not waiting
    sched_nodes: str | None
    reserved: bool  # resources are kept for it (a backfill reservation)
    waits_for: list[int]  # running jobs whose time limits its start is computed from
    jobs_ahead: int  # higher-priority jobs that wait too
    lines: list[str]  # the explanation, one sentence a line


class JobList(BaseModel):
    jobs: list[JobRecord]
    total: int | None  # the matching jobs, `after` aside; null when asked not to count (`total=false`)
    # The next page: pass it as `after` (null on the last page). Keyset paging: a page is
    # cheap wherever it starts, and jobs submitted meanwhile never shift what follows.
    next_after: int | None = None


class JobRows(BaseModel):
    """A page of `GET /jobs?fields=...&layout=rows`: each job as the values of `fields`, in
    that order."""

    next_after: int | None = None
    total: int | None
    fields: list[str]
    rows: list[list[Any]]


class JobEvent(BaseModel):
    id: int
    time: str
    from_state: str | None
    to_state: str
    reason: str | None
    node: str | None
    message: str | None


class JobEvents(BaseModel):
    job_id: str
    events: list[JobEvent]


class Node(BaseModel):
    name: str
    state: str = Field(description="IDLE, MIXED, ALLOCATED or DOWN (its worker is not heard from); a drain is apart.")
    reason: str | None = Field(description="Why it is DOWN (Not responding, worker stopped); None when it is not.")
    cpus: int
    alloc_cpus: int
    free_cpus: int
    cpu_ids: str
    cpu_binding: bool
    memory_mb: int
    alloc_memory_mb: int
    partitions: list[str]
    running_jobs: int
    last_heartbeat: str | None
    # How the node's worker holds its jobs: cgroup-v2, cgroup-v1, or polling (no control groups).
    containment: str | None = None
    drained: bool = Field(
        default=False,
        description="Drained by an administrator: no new job starts on it; its running jobs go on (State=DRAIN).",
    )
    drain_reason: str | None = Field(default=None, description="Why it was drained (None: not drained).")
    drain_user: str | None = Field(default=None, description="Who drained it.")
    drain_time: str | None = Field(default=None, description="When it was drained (ISO 8601).")


class NodeList(BaseModel):
    nodes: list[Node]


class Partition(BaseModel):
    name: str
    default: bool
    state: str
    max_time: int | None
    nodes: list[str]
    total_cpus: int
    # From the cluster configuration file (their Slurm defaults without one).
    default_time: int | None = None
    priority_tier: int = 1
    max_cpus_per_node: int | None = None
    allow_accounts: list[str] | None = Field(default=None, description="None: ALL.")


class PartitionList(BaseModel):
    partitions: list[Partition]


class Health(BaseModel):
    status: str
    database: str
    detail: str | None = None


class ErrorBody(BaseModel):
    detail: str
    errors: list[dict[str, Any]] | None = None


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route's refusals, each answered as an ErrorBody."""
    return {status: {"model": ErrorBody} for status in statuses}
