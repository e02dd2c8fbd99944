"""The submission request every entry point hands to the services: Slurm's job description.

A pydantic model, so that the HTTP layer validates the body's types and ranges on the way in and
documents them in the OpenAPI schema; the services then check what needs the cluster (nodes,
partitions, dependencies, limits).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from conductor.domain.mail import mail_type_problem
from conductor.domain.text import control_character_problem

_MAX_TEXT = 4096
_MAX_HOST_LISTS = 1024
# The minimum of a node count, "N" or "MIN-MAX" (services/submission.py checks the whole count).
_MIN_NODES = re.compile(r"\s*(\d{1,9})(?:-\d*)?\s*", re.ASCII)


def no_control_characters(value: str) -> str:
    """`value` if it holds no control character (tabs and newlines included), else ValueError."""
    problem = control_character_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def one_of(value: str, words: Sequence[str]) -> str:
    """`value` as one of `words` (upper case), in any case and without surrounding spaces;
    ValueError listing them otherwise."""
    upper = value.strip().upper()
    if upper not in words:
        raise ValueError(f"must be one of {', '.join(words)}")
    return upper


def not_bool(value: object, expected: str = "a number") -> object:
    """`value` unless it is a boolean, else ValueError. For the numbers of a body, checked before
    their type: pydantic's lax integers take JSON true and false as 1 and 0, so `time_limit:
    true` would be one minute and `false` UNLIMITED, and the grammars' own checks see a number."""
    if isinstance(value, bool):
        raise ValueError(f"must be {expected}, not true or false")
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
    submit_directory: str | None = Field(
        default=None,
        max_length=_MAX_TEXT,
        description="Where the submission was made (sbatch's current directory), an absolute path: the job's "
        "SLURM_SUBMIT_DIR. Left out, the working directory.",
    )
    command: str | None = Field(
        default=None,
        max_length=_MAX_TEXT,
        description="What was submitted, as scontrol show job's Command= shows it: the batch script's absolute "
        "path (sbatch sends it for a script read from a file). Shown, not run: the script is `script`.",
    )
    standard_output: str | None = Field(default=None, max_length=_MAX_TEXT)
    standard_error: str | None = Field(default=None, max_length=_MAX_TEXT)
    standard_input: str | None = Field(default=None, max_length=_MAX_TEXT)
    ntasks: int = Field(
        default=1,
        ge=1,
        le=100_000,
        description="Number of tasks. Not given: nodes x ntasks_per_node when ntasks_per_node is given, else 1.",
    )
    ntasks_per_node: int | None = Field(default=None, ge=1, le=100_000)
    nodes: int | str | None = Field(default=None, description="Node count; jobs run on one node.")
    cpus_per_task: int = Field(default=1, ge=1, le=100_000)
    memory_per_node: str | int | None = Field(default=None, description="'1G', '512M', bare number = MB.")
    memory_per_cpu: str | int | None = None
    time_limit: str | int | None = Field(default=None, description="Slurm time grammar, or minutes.")
    exclusive: bool | str = False
    required_nodes: str | list[str] | None = Field(
        default=None,
        description="sbatch --nodelist: the node the job must run on, a host list or a list of names (jobs run "
        "on one node, so one name).",
    )
    excluded_nodes: str | list[str] | None = Field(
        default=None,
        description="sbatch --exclude: the nodes the job must not run on, a host list (node[1-3],gpu2) or a list "
        "of them.",
    )
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
    mail_type: str | None = Field(
        default=None,
        max_length=256,
        description="Comma-separated: NONE, BEGIN, END, FAIL, ALL, ... (sbatch --mail-type).",
    )
    mail_user: str | None = Field(default=None, max_length=256)
    test_only: bool = False
    argv: list[str] | None = Field(
        default=None, max_length=1024, description="Arguments for the script, as after the script name in sbatch."
    )

    @field_validator(
        "ntasks",
        "ntasks_per_node",
        "nodes",
        "cpus_per_task",
        "memory_per_node",
        "memory_per_cpu",
        "time_limit",
        "priority",
        "nice",
        mode="before",
    )
    @classmethod
    def _numbers(cls, value: object) -> object:
        return not_bool(value)

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
        "submit_directory",
        "command",
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

    @field_validator("required_nodes", "excluded_nodes")
    @classmethod
    def _host_lists(cls, value: str | list[str] | None) -> str | list[str] | None:
        # Expanded and checked against the nodes by services/submission.py; bounded here.
        if value is None:
            return None
        items = [value] if isinstance(value, str) else value
        if len(items) > _MAX_HOST_LISTS or sum(len(item) for item in items) > _MAX_TEXT:
            raise ValueError(f"at most {_MAX_TEXT} characters in at most {_MAX_HOST_LISTS} host lists")
        for item in items:
            no_control_characters(item)
        return value

    # After `_text` (validators run in the order they are defined): a control character is
    # refused as such first.
    @field_validator("mail_type")
    @classmethod
    def _mail_type(cls, value: str | None) -> str | None:
        # The list sbatch --mail-type checks (domain/mail.py): the same rule on every path.
        if value is not None:
            problem = mail_type_problem(value)
            if problem is not None:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _tasks_per_node(self) -> JobDescription:
        """`ntasks` not given and `ntasks_per_node` given: that many tasks on each of the minimum
        number of nodes, as Slurm decides (sbatch's _opt_verify in src/sbatch/opt.c and, for
        every client, validate_job_create_req in src/slurmctld/job_mgr.c: "num_tasks =
        ntasks_per_node * min_nodes"). Here, in the one model every submission path builds
        (sbatch, `POST /jobs/submit`, slurmrestd's `tasks_per_node`), so the job's CPUs, its
        SLURM_NTASKS and the tasks srun starts in it agree. A node count this cannot read, or
        above 1, is refused by build_rows as before (jobs run on one node here)."""
        if "ntasks" not in self.model_fields_set and self.ntasks_per_node is not None:
            self.ntasks = _min_nodes(self.nodes) * self.ntasks_per_node
        return self


def _min_nodes(value: int | str | None) -> int:
    """The minimum of a node count; 1 when none is given or it cannot be read (then refused
    later, with its own message)."""
    if isinstance(value, int):
        return max(value, 1)
    match = _MIN_NODES.fullmatch(value) if value is not None else None
    return max(int(match.group(1)), 1) if match else 1


class SubmitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job: JobDescription
    script: str = Field(description="The batch script; '#!' on its first line names the interpreter.")
