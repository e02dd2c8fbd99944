"""A job as the rest of the system sees it: one typed, frozen record per row of `jobs`.

The store builds these in one place (conductor.store.records.job_from_row); nothing outside the
store sees a row. Times are timezone-aware UTC. `script` and `environment` are read only when
asked for (they can be megabytes), and are None otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    name: str
    user_name: str
    uid: int | None
    gid: int | None
    account: str | None
    partition: str
    qos: str | None
    state: str
    reason: str
    priority: int
    nice: int
    cpus_per_task: int
    ntasks: int
    ntasks_per_node: int | None
    memory_per_node_mb: int | None
    memory_per_cpu_mb: int | None
    exclusive: bool
    time_limit: int | None  # seconds; None is UNLIMITED
    allocated_cpus: int
    allocated_memory_mb: int
    cpu_ids: str | None
    node_list: str | None
    submit_time: datetime
    eligible_time: datetime | None
    begin_time: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    exit_code: str | None
    error_msg: str | None
    work_dir: str
    standard_output: str | None
    standard_error: str | None
    standard_input: str | None
    open_mode: str
    array_job_id: int | None
    array_task_id: int | None
    array_max_running: int | None
    array_spec: str | None
    dependency: str | None
    held: bool
    requeue: bool
    restart_count: int
    signal_spec: str | None
    comment: str | None
    extra: str | None  # JSON
    pid: int | None
    launched: bool
    kill_state: str | None
    kill_time: datetime | None
    pending_signal: str | None
    rusage: str | None  # JSON
    script: str | None = None
    environment: str | None = None  # JSON
    # A pending job's expected start and node, from the scheduler's last plan (None: unknown).
    expected_start_time: datetime | None = None
    sched_nodes: str | None = None
    # The user who cancelled it (sacct's "CANCELLED by UID"); None when nobody did.
    cancelled_by: str | None = None
    # sbatch --nodelist and --exclude: node names, comma-separated (None: none).
    req_nodes: str | None = None
    exc_nodes: str | None = None


# A running job's end asked for (a cancel, its time limit) puts it in one of these; a requeue's is no end.
_ENDING_STATES = ("CANCELLED", "TIMEOUT")


def ending_state(job: Job) -> str | None:
    """The state a running job is being ended into, from the moment its end was asked for
    (`kill_time`) until its processes are gone: slurmctld shows such a job COMPLETING in that
    state, ended at the request. None for any other job."""
    return job.kill_state if job.state == "RUNNING" and job.kill_state in _ENDING_STATES else None


@dataclass(frozen=True, slots=True)
class JobRun:
    """What a node's agent reads of its running jobs at each check (a narrow, frequent read)."""

    id: int
    pid: int | None
    launched: bool
    start_time: datetime | None
    time_limit: int | None
    kill_state: str | None
    kill_time: datetime | None
    restart_count: int
    pending_signal: str | None
    signal_spec: str | None
    requeue: bool  # sbatch --requeue: a run its node fails is run again, not ended


@dataclass(frozen=True, slots=True)
class JobSummary:
    """What dependency resolution reads of the jobs it names: state, times, array and owner."""

    id: int
    state: str
    start_time: datetime | None
    end_time: datetime | None
    array_job_id: int | None
    array_task_id: int | None
    exit_code: str | None
    user_name: str
    name: str
