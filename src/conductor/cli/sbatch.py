"""`conductor sbatch`: submit a batch script, as Slurm's sbatch does.

Kept lean on purpose: it imports only the stdlib, the pure option parser and the tiny HTTP client,
so a submission round trip stays within a few tens of milliseconds.
"""

from __future__ import annotations

import os
import sys

# typing is imported only by type checkers: at run time it costs the CLI ~4 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from conductor.cli.client import SUBMIT_ATTEMPTS, ApiError, Client, ConnectionFailed, Unanswered
from conductor.cli.getopt import GetoptError
from conductor.cli.sbatch_options import (
    SbatchError,
    SbatchPlan,
    build_plan,
    check_script,
    first_pass,
    wrap_script,
)
from conductor.domain.numbers import whole_number

PROG = "sbatch"

USAGE = """\
Usage: sbatch [-N nnodes] [-n ntasks] [-c ncpus] [-t minutes] [-p partition]
              [-J jobname] [-A account] [-o out] [-e err] [-i in] [-D path]
              [--mem=MB] [--mem-per-cpu=MB] [-a array] [-d dependency] [-H]
              [--begin=time] [--export[=names]] [--exclusive] [--nice[=value]]
              [--priority=value] [--requeue] [--no-requeue] [--signal=[[R][B]:]num[@time]]
              [--open-mode=append|truncate] [-W] [--parsable] [--test-only]
              [-q qos] [--comment=name] [--wrap="command"]
              executable [args...]
"""

# option key -> (argument name, one line); options accepted but without effect here say so
# (sbatch_options._IGNORED_WITH_WARNING), and GPU requests are refused unless for none.
DESCRIBED: dict[str, tuple[str, str]] = {
    "account": ("name", "charge job to specified account"),
    "acctg_freq": ("spec", "accounting and profiling sampling intervals (ignored here)"),
    "array": ("indexes", "job array index values, e.g. 1-20%4"),
    "batch": ("features", "features of the batch host (ignored here)"),
    "begin": ("time", "defer job until HH:MM, now+N, or YYYY-MM-DDTHH:MM:SS"),
    "burst_buffer": ("spec", "burst buffer specification (not supported; ignored)"),
    "chdir": ("directory", "set working directory for batch script"),
    "clusters": ("names", "clusters to submit to (one cluster here, conductor)"),
    "comment": ("name", "arbitrary comment"),
    "constraint": ("list", "specify a list of constraints (ignored here)"),
    "container": ("path", "OCI container bundle (not supported; ignored)"),
    "contiguous": ("", "demand a contiguous range of nodes (ignored here)"),
    "core_spec": ("cores", "count of reserved cores (ignored here)"),
    "cores_per_socket": ("C", "number of cores per socket to allocate (ignored here)"),
    "cpu_freq": ("min[-max[:gov]]", "requested cpu frequency (ignored here)"),
    "cpus_per_gpu": ("n", "number of CPUs required per allocated GPU (no GPUs here)"),
    "cpus_per_task": ("ncpus", "number of cpus required per task"),
    "deadline": ("time", "remove the job if no ending possible before this deadline (ignored)"),
    "delay_boot": ("mins", "delay boot for desired node features (ignored here)"),
    "dependency": ("type:jobid[:time]", "defer job until condition on jobid is satisfied"),
    "distribution": ("type", "distribution method for processes to nodes (ignored here)"),
    "error": ("err", "file for batch script's standard error"),
    "exclude": ("hosts...", "exclude a specific list of hosts"),
    "exclusive": ("user|mcs", "allocate nodes in exclusive mode"),
    "export": ("names", "specify environment variables to export (ALL, NONE, NAME[=value],...)"),
    "export_file": ("file|fd", "environment variables to export, from a file (ignored here)"),
    "extra_node_info": ("S[:C[:T]]", "sockets, cores and threads per node (ignored here)"),
    "get_user_env": ("timeout", "load the user's login environment (ignored here)"),
    "gid": ("group_id", "group to run the job as (ignored: the submitter's)"),
    "gpu_bind": ("type", "task to GPU binding (no GPUs here)"),
    "gpu_freq": ("spec", "requested GPU frequency (no GPUs here)"),
    "gpus": ("n", "count of GPUs required for the job (no GPUs here: refused unless 0)"),
    "gpus_per_node": ("n", "number of GPUs required per node (no GPUs here)"),
    "gpus_per_socket": ("n", "number of GPUs required per socket (no GPUs here)"),
    "gpus_per_task": ("n", "number of GPUs required per task (no GPUs here)"),
    "gres": ("list", "required generic resources (GPUs: none here)"),
    "gres_flags": ("opts", "flags related to GRES management (ignored here)"),
    "help": ("", "show this help message"),
    "hint": ("hint", "bind tasks according to application hints (ignored here)"),
    "hold": ("", "submit job in held state"),
    "ignore_pbs": ("", "ignore #PBS and #BSUB options in the batch script"),
    "immediate": ("", "exit if resources are not immediately available (ignored here)"),
    "input": ("in", "file for batch script's standard input"),
    "job_name": ("jobname", "name of job"),
    "kill_on_invalid_dep": ("yes|no", "kill the job if its dependency can never be met (ignored)"),
    "licenses": ("names", "required license, comma separated (ignored here)"),
    "mail_type": ("type", "notify on state change: BEGIN, END, FAIL or ALL (recorded only)"),
    "mail_user": ("user", "who to send email notification for job state changes (recorded)"),
    "mcs_label": ("mcs", "mcs label if the mcs plugin is used (ignored here)"),
    "mem": ("MB", "minimum amount of real memory"),
    "mem_bind": ("type", "bind memory to locality domains (ignored here)"),
    "mem_per_cpu": ("MB", "maximum amount of real memory per allocated cpu"),
    "mem_per_gpu": ("MB", "real memory required per allocated GPU (no GPUs here)"),
    "mincpus": ("n", "minimum number of logical processors per node (ignored here)"),
    "network": ("type", "specify information pertaining to the switch or network (ignored)"),
    "nice": ("value", "decrease scheduling priority by value"),
    "no_kill": ("on|off", "do not kill job on node failure (ignored here)"),
    "no_requeue": ("", "if set, do not permit the job to be requeued"),
    "nodefile": ("file", "request a specific list of hosts, listed in a file"),
    "nodelist": ("hosts...", "request a specific list of hosts (one: jobs run on one node)"),
    "nodes": ("N", "number of nodes on which to run (this cluster: 1)"),
    "ntasks": ("ntasks", "number of tasks to run"),
    "ntasks_per_core": ("n", "number of tasks to invoke on each core (ignored here)"),
    "ntasks_per_node": ("n", "number of tasks to invoke on each node"),
    "ntasks_per_socket": ("n", "number of tasks to invoke on each socket (ignored here)"),
    "open_mode": ("append|truncate", "output file open mode"),
    "output": ("out", "file for batch script's standard output"),
    "overcommit": ("", "overcommit resources (ignored here)"),
    "oversubscribe": ("", "oversubscribe resources with other jobs (ignored here)"),
    "parsable": ("", "outputs only the jobid and cluster name (if present)"),
    "partition": ("partition", "partition requested"),
    "power": ("flags", "power management options (ignored here)"),
    "priority": ("value", "set the priority of the job to value (administrators)"),
    "profile": ("value", "enable acct_gather_profile for detailed data (ignored here)"),
    "propagate": ("rlimits", "propagate all [or specific list of] rlimits (ignored here)"),
    "qos": ("qos", "quality of service"),
    "quiet": ("", "quiet mode (suppress informational messages)"),
    "reboot": ("", "reboot compute nodes before starting job (ignored here)"),
    "requeue": ("", "if set, permit the job to be requeued"),
    "reservation": ("name", "allocate resources from named reservation (ignored here)"),
    "signal": ("[[R][B]:]num[@time]", "send signal when time limit within time seconds"),
    "sockets_per_node": ("S", "number of sockets per node to allocate (ignored here)"),
    "spread_job": ("", "spread job across as many nodes as possible (ignored here)"),
    "switches": ("max[@time]", "optimum switches and max time to wait (ignored here)"),
    "test_only": ("", "validate the request, do not submit"),
    "thread_spec": ("threads", "count of reserved threads (ignored here)"),
    "threads_per_core": ("T", "number of threads per core to allocate (ignored here)"),
    "time": ("minutes", "time limit"),
    "time_min": ("minutes", "minimum time limit (ignored here)"),
    "tmp": ("MB", "minimum amount of temporary disk (ignored here)"),
    "tres_per_task": ("list", "trackable resources per task (GPUs: none here)"),
    "uid": ("user_id", "user to run the job as (ignored: the submitter)"),
    "usage": ("", "display brief usage message"),
    "use_min_nodes": ("", "prefer the smallest node count of a range (ignored here)"),
    "verbose": ("", "verbose mode (multiple -v's increase verbosity)"),
    "version": ("", "output version information and exit"),
    "wait": ("", "wait for completion of submitted job"),
    "wait_all_nodes": ("0|1", "wait for all nodes to boot before starting (ignored here)"),
    "wckey": ("wckey", "wckey to run job under (ignored here)"),
    "wrap": ("command string", "wrap command string in a sh script and submit"),
}


def help_text() -> str:
    from conductor.cli.helptext import page
    from conductor.cli.sbatch_options import OPTIONS

    return page(USAGE, OPTIONS, DESCRIBED, epilog="Each option is also read from #SBATCH lines and SBATCH_* variables.")


def _error_exit() -> int:
    """SLURM_EXIT_ERROR, the status of a failure: 1 unless it is a status from 1 to 255 (0, or
    256 that the shell sees as 0, would make a failure look like success)."""
    return whole_number(os.environ.get("SLURM_EXIT_ERROR", ""), 255) or 1


def _read_script(path: str) -> tuple[str, str]:
    """Read the script named on the command line; like sbatch, look in PATH if not found."""
    candidate = path
    if not os.path.exists(candidate) and "/" not in path:
        import shutil

        found = shutil.which(path, mode=os.R_OK)
        if found:
            candidate = found
    try:
        with open(candidate, "rb") as handle:
            data = handle.read()
    except OSError:
        raise SbatchError(f"Unable to open file {path}") from None
    return _script_text(data, path), os.path.abspath(candidate)


def _script_text(data: bytes, where: str) -> str:
    """The script's text. Bytes that are not UTF-8 are refused, not replaced: the job would run
    another script than the one written (the API carries scripts as text)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SbatchError(
            f"{where}: line {line}: byte 0x{data[exc.start]:02x} is not UTF-8 text; save the script as UTF-8"
        ) from None


def _print_error(exc: SbatchError) -> None:
    if exc.preamble:
        sys.stderr.write(f"{PROG}: {exc.preamble}\n")
    sys.stderr.write(f"{PROG}: error: {exc.message}\n")


def main(argv: list[str]) -> int:
    try:
        first = first_pass(argv)
    except GetoptError as exc:
        sys.stderr.write(f'{PROG}: {exc}\nTry "{PROG} --help" for more information\n')
        return _error_exit()
    except SbatchError as exc:
        _print_error(exc)
        return _error_exit()
    if first.has("help"):
        sys.stdout.write(help_text())
        return 0
    if first.has("usage"):
        sys.stdout.write(USAGE)
        return 0
    if first.has("version"):
        from conductor import __version__

        sys.stdout.write(f"slurm 23.11.0 (scns-conductor {__version__})\n")
        return 0

    try:
        if first.wrap is not None:
            script, script_path = wrap_script(first.wrap), None
        elif first.operands:
            script, script_path = _read_script(first.operands[0])
        else:
            script, script_path = _script_text(sys.stdin.buffer.read(), "standard input"), None
        check_script(script)
        plan = build_plan(
            first, script, script_path=script_path, environ=os.environ, cwd=os.getcwd()
        )
    except SbatchError as exc:
        _print_error(exc)
        return _error_exit()
    plan.warnings += path_warnings(plan.job)

    if not plan.quiet:
        for message in plan.warnings:
            sys.stderr.write(f"{PROG}: warning: {message}\n")

    client = Client()
    try:
        return _submit(client, plan)
    except ConnectionFailed as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return _error_exit()
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()


def path_warnings(job: dict[str, Any]) -> list[str]:
    """Warnings for a working directory or output directory this user cannot use here.

    Slurm accepts them (the job may create them first, another host may have them), so this
    warns and submits; if they are still unusable when the job starts, it fails and its
    Reason (scontrol, sacct, squeue) says which path and why."""
    warnings = []
    work_dir = str(job.get("current_working_directory") or "")
    later = "; the job fails unless it is usable when it starts"
    if work_dir and "%" not in work_dir:
        problem = _directory_problem(work_dir, os.X_OK)
        if problem:
            # As slurmstepd, the job then runs in /tmp, unless a file of its is named from there
            # (the default slurm-%j.out is).
            output, error = str(job.get("standard_output") or ""), str(job.get("standard_error") or "/")
            whole = output.startswith("/") and error.startswith("/")
            then = "; the job runs in /tmp unless it is usable when it starts" if whole else later
            warnings.append(f"--chdir: working directory '{work_dir}' {problem}{then}")
    for field, option in (("standard_output", "--output"), ("standard_error", "--error")):
        path = str(job.get(field) or "")
        if not path or path == "/dev/null":
            continue
        parent = os.path.dirname(os.path.join(work_dir, path))
        if parent and "%" not in parent and not (work_dir and _directory_problem(work_dir, os.X_OK)):
            problem = _directory_problem(parent, os.W_OK | os.X_OK)
            if problem:
                warnings.append(f"{option}: directory '{parent}' {problem}{later}")
    return warnings


def _directory_problem(path: str, mode: int) -> str | None:
    """Why this user cannot use directory `path` with `mode` (None: it can)."""
    if not os.path.exists(path):
        return "does not exist"
    if not os.path.isdir(path):
        return "is not a directory"
    if not os.access(path, mode):
        return "is not writable by you" if mode & os.W_OK else "is not accessible to you"
    return None


def _submit(client: Client, plan: SbatchPlan) -> int:
    """Submit once, whatever the network does: the request carries a fresh Idempotency-Key, and
    one that gets no answer is sent again with it (Client.submit), which the server answers
    with the job it stored the first time, if it did."""

    def retrying(error: Unanswered, attempt: int, pause: float) -> None:
        if not plan.quiet:
            sys.stderr.write(
                f"{PROG}: no answer from {client.url} ({error.reason}); sending the same submission again "
                f"in {pause:.1f}s, attempt {attempt} of {SUBMIT_ATTEMPTS} (it makes one job at most)\n"
            )

    try:
        answer = client.submit({"job": plan.job, "script": plan.script}, on_retry=retrying)
    except ApiError as exc:
        sys.stderr.write(f"{PROG}: error: Batch job submission failed: {exc.message}\n")
        return _error_exit()
    answer = answer if isinstance(answer, dict) else {}
    if plan.test_only:
        message = (
            answer.get("message")
            or "Job validated; nothing was submitted (--test-only)"
        )
        sys.stderr.write(f"{PROG}: {message}\n")
        return 0
    job_id = answer.get("job_id")
    if job_id is None:
        sys.stderr.write(
            f"{PROG}: error: Batch job submission failed: no job id in {answer}\n"
        )
        return _error_exit()
    if plan.parsable:
        sys.stdout.write(f"{job_id};{plan.cluster}\n" if plan.cluster else f"{job_id}\n")
    elif not plan.quiet:
        where = f" on cluster {plan.cluster}" if plan.cluster else ""
        sys.stdout.write(f"Submitted batch job {job_id}{where}\n")
    sys.stdout.flush()
    if plan.wait:
        is_array = bool(answer.get("array_task_ids")) or "array" in plan.job
        return _wait(client, int(job_id), is_array)
    return 0


def _wait(client: Client, job_id: int, is_array: bool) -> int:
    """sbatch --wait: Slurm's exit status of the job (the highest of an array's tasks); a
    progress line on a terminal (cli/wait.py), nothing added to the output otherwise."""
    from conductor.cli.wait import wait_for

    def fetch() -> list[dict[str, Any]]:
        if is_array:
            jobs: list[dict[str, Any]] = client.list_jobs(array_job_id=job_id)
            return jobs
        return [client.get(f"/jobs/{job_id}")]

    try:
        return wait_for(fetch)
    except ApiError as exc:
        sys.stderr.write(f"{PROG}: error: Failed to get state of job {job_id}: {exc.message}\n")
        return _error_exit()
