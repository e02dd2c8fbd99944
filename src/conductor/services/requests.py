"""The submission request every entry point hands to the services: Slurm's job description.

A pydantic model, so that the HTTP layer validates the body's types and ranges on the way in and
documents them in the OpenAPI schema; the services then check what needs the cluster (nodes,
partitions, dependencies, limits).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from conductor.domain.text import control_character_problem

_MAX_TEXT = 4096


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
