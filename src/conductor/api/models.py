"""HTTP request and response bodies. Field names are the seed's (DESIGN 1.3)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from conductor.domain.text import control_character_problem

_MAX_TEXT = 4096


def no_control_characters(value: str) -> str:
    """`value` if it holds no control character (tabs and newlines included), else ValueError."""
    problem = control_character_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _no_nul(value: str, what: str) -> str:
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL characters")
    return value


class JobDescription(BaseModel):
    """A job's resource request and options, as Slurm's sbatch names them."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=256)
    account: str | None = Field(default=None, max_length=64)
    partition: str | None = Field(default=None, max_length=64)
    qos: str | None = Field(default=None, max_length=64)
    environment: dict[str, str] | list[str] | None = Field(
        default=None, description="Variables for the job: an object, or slurmrestd's list of 'NAME=value'."
    )
    current_working_directory: str | None = Field(default=None, max_length=_MAX_TEXT)
    standard_output: str | None = Field(default=None, max_length=_MAX_TEXT)
    standard_error: str | None = Field(default=None, max_length=_MAX_TEXT)
    standard_input: str | None = Field(default=None, max_length=_MAX_TEXT)
    ntasks: int = Field(default=1, ge=1, le=100_000)
    ntasks_per_node: int | None = Field(default=None, ge=1, le=100_000)
    nodes: int | str | None = Field(default=None, description="Node count; jobs run on one node.")
    cpus_per_task: int = Field(default=1, ge=1, le=100_000)
    memory_per_node: str | int | None = Field(default=None, description="'1G', '512M', bare number = MB.")
    memory_per_cpu: str | int | None = None
    time_limit: str | int | None = Field(default=None, description="Slurm time grammar, or minutes.")
    exclusive: bool | str = False
    hold: bool = False
    begin_time: str | None = Field(default=None, max_length=64)
    dependency: str | None = Field(default=None, max_length=_MAX_TEXT)
    array: str | None = Field(default=None, max_length=_MAX_TEXT)
    priority: int | None = Field(default=None, ge=0, le=2**31 - 2)
    nice: int = Field(default=0, ge=-10_000, le=10_000)
    requeue: bool = False
    signal: str | None = Field(default=None, max_length=32)
    open_mode: Literal["append", "truncate"] = "truncate"
    comment: str | None = Field(default=None, max_length=_MAX_TEXT)
    mail_type: str | None = Field(default=None, max_length=256)
    mail_user: str | None = Field(default=None, max_length=256)
    test_only: bool = False
    argv: list[str] | None = Field(
        default=None, max_length=1024, description="Arguments for the script, as after the script name in sbatch."
    )

    @field_validator("argv")
    @classmethod
    def _argv(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            for arg in value:
                _no_nul(arg, "an argument")
        return value

    @field_validator(
        "name",
        "account",
        "partition",
        "qos",
        "current_working_directory",
        "standard_output",
        "standard_error",
        "standard_input",
        "begin_time",
        "dependency",
        "array",
        "signal",
        "comment",
        "mail_type",
        "mail_user",
    )
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        # Printed by squeue, sacct and scontrol to other users' terminals (domain/text.py).
        return None if value is None else no_control_characters(value)


class SubmitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job: JobDescription
    script: str = Field(description="The batch script; '#!' on its first line names the interpreter.")


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


class QueryResponse(BaseModel):
    job_id: str
    state: str
    error_msg: str | None
    time: QueryTime
    job_log: QueryLog
    detail: QueryDetail


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


class JobList(BaseModel):
    jobs: list[JobRecord]
    total: int
    # The next page: pass it as `after` (null on the last page). Keyset paging: a page is
    # cheap wherever it starts, and jobs submitted meanwhile never shift what follows.
    next_after: int | None = None


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
    state: str
    reason: str | None
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


class NodeList(BaseModel):
    nodes: list[Node]


class Partition(BaseModel):
    name: str
    default: bool
    state: str
    max_time: int | None
    nodes: list[str]
    total_cpus: int


class PartitionList(BaseModel):
    partitions: list[Partition]


class Health(BaseModel):
    status: str
    database: str
    detail: str | None = None


class ErrorBody(BaseModel):
    detail: str
    errors: list[dict[str, Any]] | None = None
