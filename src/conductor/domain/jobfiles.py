"""What a job's process is given: its output paths and its environment, as Slurm sets them.

Pure functions of a job, shared by the worker (at launch) and the API (to find the output
files a job wrote).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from conductor.domain.job import Job
from conductor.domain.patterns import default_output_name, expand_output_pattern

CLUSTER_NAME = "conductor"
# What a job gets when it was submitted without an environment (the API's default, or
# `--export=NONE`): enough to find the usual tools, never the worker's own variables.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True, slots=True)
class JobPaths:
    stdout: str
    stderr: str
    stdin: str


def _expand(pattern: str, job: Job, node: str) -> str:
    path = expand_output_pattern(
        pattern,
        job_id=job.id,
        job_name=job.name,
        user=job.user_name,
        node=node,
        array_job_id=job.array_job_id,
        array_task_id=job.array_task_id,
    )
    # Relative paths are taken under the job's working directory, as sbatch does.
    return path if os.path.isabs(path) else os.path.join(job.work_dir, path)


def job_paths(job: Job, node: str | None = None) -> JobPaths:
    node_name = node or job.node_list or ""
    is_array = job.array_task_id is not None
    out_pattern = job.standard_output or default_output_name(is_array)
    stdout = _expand(out_pattern, job, node_name)
    err_pattern = job.standard_error
    stderr = _expand(err_pattern, job, node_name) if err_pattern else stdout
    in_pattern = job.standard_input
    stdin = _expand(in_pattern, job, node_name) if in_pattern else "/dev/null"
    return JobPaths(stdout=stdout, stderr=stderr, stdin=stdin)


def job_environment(
    job: Job,
    *,
    node: str,
    cpu_ids: str,
    home: str | None = None,
    array_bounds: tuple[int, int, int, int] | None = None,
    bound: bool = False,
) -> dict[str, str]:
    """The job's submitted environment plus the SLURM_* variables a batch step sees.

    `array_bounds` is (count, min, max, step) of the job's array. `bound`: the job's process is
    bound to its CPUs (then OMP_NUM_THREADS is left alone, as Slurm leaves it: threaded
    libraries count the CPUs the process may run on).
    """
    env: dict[str, str] = dict(json.loads(job.environment or "{}"))
    if "PATH" not in env:
        env["PATH"] = BASE_PATH
    user = job.user_name
    env.setdefault("USER", user)
    env.setdefault("LOGNAME", user)
    if home:
        env.setdefault("HOME", home)
    cpus = int(job.allocated_cpus or job.cpus_per_task * job.ntasks)
    job_id = str(job.id)
    extra = json.loads(job.extra or "{}")
    slurm = {
        "SLURM_JOB_ID": job_id,
        "SLURM_JOBID": job_id,
        "SLURM_JOB_NAME": job.name,
        "SLURM_JOB_USER": user,
        "SLURM_JOB_PARTITION": job.partition,
        "SLURM_JOB_NODELIST": node,
        "SLURM_NODELIST": node,
        "SLURMD_NODENAME": node,
        "SLURM_TOPOLOGY_ADDR": node,
        "SLURM_JOB_NUM_NODES": "1",
        "SLURM_NNODES": "1",
        "SLURM_NODEID": "0",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_GTIDS": "0",
        "SLURM_PRIO_PROCESS": "0",
        "SLURM_CPUS_ON_NODE": str(cpus),
        "SLURM_JOB_CPUS_PER_NODE": str(cpus),
        "SLURM_CPUS_PER_TASK": str(job.cpus_per_task),
        "SLURM_NTASKS": str(job.ntasks),
        "SLURM_NPROCS": str(job.ntasks),
        "SLURM_TASKS_PER_NODE": str(job.ntasks),
        "SLURM_SUBMIT_DIR": extra.get("submit_dir") or job.work_dir,
        "SLURM_SUBMIT_HOST": extra.get("submit_host") or node,
        "SLURM_CLUSTER_NAME": CLUSTER_NAME,
        "SLURM_JOB_CPU_IDS": cpu_ids,
        "CONDUCTOR_CPU_IDS": cpu_ids,
        "SLURM_RESTART_COUNT": str(job.restart_count or 0),
    }
    slurm.update(_batch_extras(job, node, env))
    if job.uid is not None:
        slurm["SLURM_JOB_UID"] = str(job.uid)
    if job.gid is not None:
        slurm["SLURM_JOB_GID"] = str(job.gid)
    if job.account:
        slurm["SLURM_JOB_ACCOUNT"] = job.account
    if job.qos:
        slurm["SLURM_JOB_QOS"] = job.qos
    if job.ntasks_per_node:
        slurm["SLURM_NTASKS_PER_NODE"] = str(job.ntasks_per_node)
    if job.memory_per_node_mb:
        slurm["SLURM_MEM_PER_NODE"] = str(job.memory_per_node_mb)
    if job.memory_per_cpu_mb:
        slurm["SLURM_MEM_PER_CPU"] = str(job.memory_per_cpu_mb)
    if job.array_task_id is not None:
        slurm["SLURM_ARRAY_JOB_ID"] = str(job.array_job_id)
        slurm["SLURM_ARRAY_TASK_ID"] = str(job.array_task_id)
        if array_bounds is not None:
            count, low, high, step = array_bounds
            slurm["SLURM_ARRAY_TASK_COUNT"] = str(count)
            slurm["SLURM_ARRAY_TASK_MIN"] = str(low)
            slurm["SLURM_ARRAY_TASK_MAX"] = str(high)
            slurm["SLURM_ARRAY_TASK_STEP"] = str(step)
    env.update(slurm)
    if not bound:
        # Not bound to its CPUs, threaded libraries would use every core of the machine: each
        # task gets its share of the job's CPUs (all of them with --exclusive).
        env.setdefault("OMP_NUM_THREADS", str(max(1, cpus // max(1, job.ntasks))))
    return env


def _batch_extras(job: Job, node: str, env: dict[str, str]) -> dict[str, str]:
    """As slurmd's batch environment (env_array_for_batch_job), and what sbatch exports of its
    options: srun in the job appends to its files as the job does (SLURM_OPEN_MODE)."""
    extras = {"ENVIRONMENT": "BATCH", "HOSTNAME": node}
    if job.open_mode == "append":
        extras["SLURM_OPEN_MODE"] = "a"
    elif "SLURM_OPEN_MODE" in env:  # inherited from a job it was submitted from: this one truncates
        extras["SLURM_OPEN_MODE"] = "t"
    if job.dependency:
        extras["SLURM_JOB_DEPENDENCY"] = job.dependency
    return extras
