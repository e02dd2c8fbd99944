"""`conductor seff JOBID`: a job's CPU and memory efficiency, as Slurm's seff reports it.

Its options are parsed as the other commands' are (getopt_long): `-h`/`--help` shows the page
and `--usage` the one line of usage, as every command here answers them.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from conductor.cli.client import ApiError, Client
from conductor.cli.common import UsageError, hms, job_display_id, recorded_exit_code, run, stop_at_end_request
from conductor.cli.getopt import Option, OptionTable, getopt_long

PROG = "seff"

OPTIONS = OptionTable([Option("help", ("help",), "h"), Option("usage", ("usage",), None)])

DESCRIBED: dict[str, tuple[str, str]] = {
    "help": ("", "Help menu"),
    "usage": ("", "display brief usage message"),
}

USAGE = "Usage: seff [Options] <Jobid>\n"


def main(argv: list[str]) -> int:
    return run(PROG, lambda: _main(argv))


def _main(argv: list[str]) -> int:
    parsed, operands = getopt_long(argv, OPTIONS)
    opts = dict(parsed)
    if "help" in opts:
        from conductor.cli.helptext import page

        sys.stdout.write(page(USAGE, OPTIONS, DESCRIBED))
        return 0
    if "usage" in opts:
        sys.stdout.write(USAGE)
        return 0
    if len(operands) != 1:
        raise UsageError(USAGE.strip())
    job_id = operands[0]
    if not job_id.replace("_", "").isdigit():
        raise UsageError(f"job id '{job_id}' is not a job id (a number, or ARRAYID_TASK)")
    client = Client()
    try:
        job = client.get(f"/jobs/{job_id}")
    except ApiError as exc:
        if exc.status != 404:
            raise
        sys.stderr.write("Job not found.\n")  # and status 2, as seff says it
        return 2
    finally:
        client.close()
    # Ended when its end was asked for, as its accounting record says (sacct shows it so too).
    stop_at_end_request(job, str(job.get("ending_state")))
    sys.stdout.write(report(job))
    return 0


def kbytes(value: float) -> str:
    """seff's kbytes2str: '213.04 MB'."""
    if value <= 0:
        return "0.00 MB"
    exponent = min(int(math.log(value) / math.log(1024)), 5)
    return f"{value / 1024**exponent:.2f} {'KMGTPE'[exponent]}B"


def report(job: dict[str, Any]) -> str:
    usage = job.get("usage") or {}
    cpus = int(job.get("allocated_cpus") or job.get("cpus_per_task") or 1)
    state = str(job.get("state"))
    lines = [f"Job ID: {job['job_id']}"]
    if job.get("array_job_id") is not None and job.get("array_task_id") is not None:
        lines.append(f"Array Job ID: {job_display_id(job)}")
    lines += ["Cluster: conductor", f"User/Group: {job.get('user')}/{_group(str(job.get('user')))}"]
    if state in ("PENDING", "RUNNING"):
        lines.append(f"State: {state}")
    else:  # seff: the accounting record's `exitcode >> 8`
        lines.append(f"State: {state} (exit code {recorded_exit_code(job).partition(':')[0]})")
    if cpus == 1:
        lines.append(f"Cores: {cpus}")
    else:
        lines += ["Nodes: 1", f"Cores per node: {cpus}"]
    if state == "PENDING":
        lines.append("Efficiency not available for jobs in the PENDING state.")
        return "".join(text + "\n" for text in lines)
    wall = int(job.get("elapsed") or 0)
    # Whole seconds, the fraction rounded, as seff adds up its steps' seconds and microseconds.
    cpu_used = float(int(float(usage.get("total_cpu") or 0.0) + 0.5))
    core_wall = wall * cpus
    lines.append(f"CPU Utilized: {hms(cpu_used)}")
    efficiency = 100.0 * cpu_used / core_wall if core_wall else 0.0
    lines.append(f"CPU Efficiency: {efficiency:.2f}% of {hms(core_wall)} core-walltime")
    lines.append(f"Job Wall-clock time: {hms(wall)}")
    used_kb = float(usage.get("max_rss") or 0) / 1024
    lines.append(f"Memory Utilized: {kbytes(used_kb)}")
    per_cpu = job.get("memory_per_cpu_mb")
    per_node = job.get("memory_per_node_mb")
    requested_kb = float(per_cpu) * 1024 * cpus if per_cpu else float(per_node or 0) * 1024
    memory_efficiency = 100.0 * used_kb / requested_kb if requested_kb else 0.0
    line = f"Memory Efficiency: {memory_efficiency:.2f}% of {kbytes(requested_kb)}"
    if per_cpu:
        line += f" ({kbytes(float(per_cpu) * 1024)}/core)"
    lines.append(line)
    if state == "RUNNING":
        lines.append("WARNING: Efficiency statistics may be misleading for RUNNING jobs.")
    return "".join(text + "\n" for text in lines)


def _group(user: str) -> str:
    try:
        import grp
        import pwd

        return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    except (ImportError, KeyError):
        return user
