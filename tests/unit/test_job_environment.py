"""What a job's process finds in its environment (domain/jobfiles.job_environment)."""

from __future__ import annotations

import dataclasses

from conductor.domain.job import Job
from conductor.domain.jobfiles import job_environment


def job(**values: object) -> Job:
    base: dict[str, object] = {f.name: None for f in dataclasses.fields(Job)}
    base.update(
        id=7, name="j", user_name="alice", partition="debug", state="RUNNING", reason="None", priority=0, nice=0,
        cpus_per_task=1, ntasks=1, exclusive=False, allocated_cpus=1, allocated_memory_mb=0, work_dir="/tmp",
        open_mode="truncate", held=False, requeue=False, restart_count=0, launched=True, script="#!/bin/bash\n",
        environment="{}",
    )
    base.update(values)
    return Job(**base)  # type: ignore[arg-type]


def test_omp_threads_are_left_alone_when_the_job_is_bound_to_its_cpus() -> None:
    """Slurm sets no OMP_NUM_THREADS: bound to its CPUs, threaded libraries count them. Unbound,
    each task gets its share of the job's CPUs: an --exclusive job of one task all of them (it
    was cpus_per_task, 1, whatever the job held)."""
    exclusive = job(allocated_cpus=4)
    assert "OMP_NUM_THREADS" not in job_environment(exclusive, node="n1", cpu_ids="0-3", bound=True)
    assert job_environment(exclusive, node="n1", cpu_ids="0-3")["OMP_NUM_THREADS"] == "4"
    ranks = job(ntasks=4, cpus_per_task=2, allocated_cpus=8)
    assert job_environment(ranks, node="n1", cpu_ids="0-7")["OMP_NUM_THREADS"] == "2"
    mine = job(environment='{"OMP_NUM_THREADS": "3"}', allocated_cpus=4)
    assert job_environment(mine, node="n1", cpu_ids="0-3")["OMP_NUM_THREADS"] == "3"  # the user's own wins
    assert job_environment(mine, node="n1", cpu_ids="0-3", bound=True)["OMP_NUM_THREADS"] == "3"


def test_the_batch_environment_names_what_slurmd_and_sbatch_set() -> None:
    env = job_environment(job(open_mode="append", dependency="afterok:3"), node="cn01", cpu_ids="0")
    assert (env["ENVIRONMENT"], env["HOSTNAME"]) == ("BATCH", "cn01")
    assert (env["SLURM_OPEN_MODE"], env["SLURM_JOB_DEPENDENCY"]) == ("a", "afterok:3")
    plain = job_environment(job(), node="cn01", cpu_ids="0")
    assert "SLURM_OPEN_MODE" not in plain and "SLURM_JOB_DEPENDENCY" not in plain
    inherited = job_environment(job(environment='{"SLURM_OPEN_MODE": "a"}'), node="cn01", cpu_ids="0")
    assert inherited["SLURM_OPEN_MODE"] == "t"  # submitted from an appending job, it truncates


def test_srun_appends_as_its_option_or_the_job_says() -> None:
    import pytest

    from conductor.cli.common import UsageError
    from conductor.cli.srun import _appends

    assert _appends(None, {}) is False
    assert _appends(None, {"SLURM_OPEN_MODE": "a"}) is True
    assert _appends("truncate", {"SLURM_OPEN_MODE": "a"}) is False
    assert _appends("Append", {}) is True
    with pytest.raises(UsageError, match="Invalid --open-mode argument"):
        _appends("sometimes", {})


def test_a_task_of_srun_is_not_given_the_batch_scripts_pid() -> None:
    # SLURM_TASK_PID in the job is the batch script's: a task that signalled it would signal its job.
    from conductor.cli.srun import task_environment

    base = {"SLURM_TASK_PID": "4242", "SLURM_JOB_ID": "7"}
    env = task_environment(base, rank=1, ntasks=2, step_id=0, cpus_per_task=None, job_name=None)
    assert "SLURM_TASK_PID" not in env and env["SLURM_JOB_ID"] == "7" and env["SLURM_PROCID"] == "1"
