"""What a job's process is given: its output paths and its environment, as Slurm sets them.

Pure functions of a job row, shared by the worker (at launch) and the API (to find the output
files a job wrote).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


def _expand(pattern: str, row: Mapping[str, Any], node: str) -> str:
    path = expand_output_pattern(
        pattern,
        job_id=row["id"],
        job_name=row["name"],
        user=row["user_name"],
        node=node,
        array_job_id=row.get("array_job_id"),
        array_task_id=row.get("array_task_id"),
    )
    # Relative paths are taken under the job's working directory, as sbatch does.
    return path if os.path.isabs(path) else os.path.join(row["work_dir"], path)


def job_paths(row: Mapping[str, Any], node: str | None = None) -> JobPaths:
    node_name = node or row.get("node_list") or ""
    is_array = row.get("array_task_id") is not None
    out_pattern = row.get("standard_output") or default_output_name(is_array)
    stdout = _expand(out_pattern, row, node_name)
    err_pattern = row.get("standard_error")
    stderr = _expand(err_pattern, row, node_name) if err_pattern else stdout
    in_pattern = row.get("standard_input")
    stdin = _expand(in_pattern, row, node_name) if in_pattern else "/dev/null"
    return JobPaths(stdout=stdout, stderr=stderr, stdin=stdin)


def job_environment(
    row: Mapping[str, Any],
    *,
    node: str,
    cpu_ids: str,
    home: str | None = None,
    array_bounds: tuple[int, int, int, int] | None = None,
) -> dict[str, str]:
    """The job's submitted environment plus the SLURM_* variables a batch step sees.

    `array_bounds` is (count, min, max, step) of the job's array.
    """
    env: dict[str, str] = dict(json.loads(row["environment"] or "{}"))
    if "PATH" not in env:
        env["PATH"] = BASE_PATH
    user = row["user_name"]
    env.setdefault("USER", user)
    env.setdefault("LOGNAME", user)
    if home:
        env.setdefault("HOME", home)
    cpus = int(row["allocated_cpus"] or row["cpus_per_task"] * row["ntasks"])
    job_id = str(row["id"])
    extra = json.loads(row.get("extra") or "{}")
    slurm = {
        "SLURM_JOB_ID": job_id,
        "SLURM_JOBID": job_id,
        "SLURM_JOB_NAME": row["name"],
        "SLURM_JOB_USER": user,
        "SLURM_JOB_PARTITION": row["partition"],
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
        "SLURM_CPUS_PER_TASK": str(row["cpus_per_task"]),
        "SLURM_NTASKS": str(row["ntasks"]),
        "SLURM_NPROCS": str(row["ntasks"]),
        "SLURM_TASKS_PER_NODE": str(row["ntasks"]),
        "SLURM_SUBMIT_DIR": extra.get("submit_dir") or row["work_dir"],
        "SLURM_SUBMIT_HOST": extra.get("submit_host") or node,
        "SLURM_CLUSTER_NAME": CLUSTER_NAME,
        "SLURM_JOB_CPU_IDS": cpu_ids,
        "CONDUCTOR_CPU_IDS": cpu_ids,
        "SLURM_RESTART_COUNT": str(row.get("restart_count") or 0),
    }
    if row.get("uid") is not None:
        slurm["SLURM_JOB_UID"] = str(row["uid"])
    if row.get("gid") is not None:
        slurm["SLURM_JOB_GID"] = str(row["gid"])
    if row.get("account"):
        slurm["SLURM_JOB_ACCOUNT"] = row["account"]
    if row.get("qos"):
        slurm["SLURM_JOB_QOS"] = row["qos"]
    if row.get("ntasks_per_node"):
        slurm["SLURM_NTASKS_PER_NODE"] = str(row["ntasks_per_node"])
    if row.get("memory_per_node_mb"):
        slurm["SLURM_MEM_PER_NODE"] = str(row["memory_per_node_mb"])
    if row.get("memory_per_cpu_mb"):
        slurm["SLURM_MEM_PER_CPU"] = str(row["memory_per_cpu_mb"])
    if row.get("array_task_id") is not None:
        slurm["SLURM_ARRAY_JOB_ID"] = str(row["array_job_id"])
        slurm["SLURM_ARRAY_TASK_ID"] = str(row["array_task_id"])
        if array_bounds is not None:
            count, low, high, step = array_bounds
            slurm["SLURM_ARRAY_TASK_COUNT"] = str(count)
            slurm["SLURM_ARRAY_TASK_MIN"] = str(low)
            slurm["SLURM_ARRAY_TASK_MAX"] = str(high)
            slurm["SLURM_ARRAY_TASK_STEP"] = str(step)
    env.update(slurm)
    # Threaded libraries would otherwise use every core of the machine.
    env.setdefault("OMP_NUM_THREADS", str(row["cpus_per_task"]))
    return env
