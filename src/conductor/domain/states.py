"""Job states as Slurm names them, and the transitions allowed between them."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"


# Squeue's compact codes.
STATE_CODES: dict[str, str] = {
    "PENDING": "PD",
    "RUNNING": "R",
    "COMPLETING": "CG",
    "COMPLETED": "CD",
    "FAILED": "F",
    "CANCELLED": "CA",
    "TIMEOUT": "TO",
    "OUT_OF_MEMORY": "OOM",
    "NODE_FAIL": "NF",
}


# What a record shows for an exit status nobody saw (a node that failed its job, a launcher
# that died with it): no code, no signal, as Slurm's records of such jobs. Claiming the SIGKILL
# that the status's absence suggests would be a record of something that may not have happened.
LOST_EXIT_CODE = "0:0"


class Reason(StrEnum):
    """Why a job waits, or why it ended, in Slurm's words."""

    NONE = "None"
    RESOURCES = "Resources"
    PRIORITY = "Priority"
    DEPENDENCY = "Dependency"
    DEPENDENCY_NEVER_SATISFIED = "DependencyNeverSatisfied"
    JOB_HELD_USER = "JobHeldUser"
    JOB_HELD_ADMIN = "JobHeldAdmin"
    BEGIN_TIME = "BeginTime"
    PARTITION_NODE_LIMIT = "PartitionNodeLimit"
    # Only nodes that take no new job now (drained, or down) could ever hold it: Slurm's
    # WAIT_NODE_NOT_AVAIL (slurmctld/node_scheduler.c, ESLURM_NODE_NOT_AVAIL).
    REQ_NODE_NOT_AVAIL = "ReqNodeNotAvail"
    ARRAY_TASK_LIMIT = "JobArrayTaskLimit"
    NON_ZERO_EXIT_CODE = "NonZeroExitCode"
    TIME_LIMIT = "TimeLimit"
    NODE_DOWN = "NodeDown"
    RAISED_SIGNAL = "RaisedSignal"
    # The job's process could not be set up (working directory, output files, user): Slurm's
    # FAIL_LAUNCH.
    JOB_LAUNCH_FAILURE = "JobLaunchFailure"
    OUT_OF_MEMORY = "OutOfMemory"
