"""`conductor sbatch`: submit a batch script, as Slurm's sbatch does.

Kept lean on purpose: it imports only the stdlib, the pure option parser and the tiny HTTP client,
so a submission round trip stays within a few tens of milliseconds.
"""

from __future__ import annotations

import os
import sys
import time

# typing is imported only by type checkers: at run time it costs the CLI ~4 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from conductor.cli.client import ApiError, Client, ConnectionFailed
from conductor.cli.getopt import GetoptError
from conductor.cli.sbatch_options import (
    SbatchError,
    SbatchPlan,
    build_plan,
    check_script,
    first_pass,
    wrap_script,
)

PROG = "sbatch"
TERMINAL = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "BOOT_FAIL",
        "DEADLINE",
        "PREEMPTED",
    }
)

USAGE = """\
Usage: sbatch [-N nnodes] [-n ntasks] [-c ncpus] [-t minutes] [-p partition]
              [-J jobname] [-A account] [-o out] [-e err] [-i in] [-D path]
              [--mem=MB] [--mem-per-cpu=MB] [-a array] [-d dependency] [-H]
              [--begin=time] [--export[=names]] [--exclusive] [--nice[=value]]
              [--priority=value] [--requeue] [--no-requeue] [--signal=[B:]num[@time]]
              [--open-mode=append|truncate] [-W] [--parsable] [--test-only]
              [-q qos] [--comment=name] [--wrap="command"]
              executable [args...]
"""

HELP = (
    USAGE
    + """
Parallel run options:
  -a, --array=indexes         job array index values
  -A, --account=name          charge job to specified account
      --begin=time            defer job until HH:MM MM/DD/YY
      --comment=name          arbitrary comment
  -c, --cpus-per-task=ncpus   number of cpus required per task
  -d, --dependency=type:jobid[:time] defer job until condition on jobid is satisfied
  -D, --chdir=directory       set working directory for batch script
  -e, --error=err             file for batch script's standard error
      --export[=names]        specify environment variables to export
  -H, --hold                  submit job in held state
  -i, --input=in              file for batch script's standard input
  -J, --job-name=jobname      name of job
      --mail-type=type        notify on state change (recorded only)
      --mail-user=user        who to send email notification for job state changes
  -n, --ntasks=ntasks         number of tasks to run
      --nice[=value]          decrease scheduling priority by value
      --no-requeue            if set, do not permit the job to be requeued
      --ntasks-per-node=n     number of tasks to invoke on each node
  -N, --nodes=N               number of nodes on which to run (this cluster: 1)
  -o, --output=out            file for batch script's standard output
      --open-mode={append|truncate} output file open mode
  -p, --partition=partition   partition requested
      --parsable              outputs only the jobid and cluster name (if present)
      --priority=value        set the priority of the job to value
  -q, --qos=qos               quality of service
  -Q, --quiet                 quiet mode (suppress informational messages)
      --requeue               if set, permit the job to be requeued
      --signal=[R:]num[@time] send signal when time limit within time seconds
  -t, --time=minutes          time limit
      --test-only             validate the request, do not submit
  -W, --wait                  wait for completion of submitted job
      --wrap[=command string] wrap command string in a sh script and submit
      --exclusive             allocate nodes in exclusive mode
      --mem=MB                minimum amount of real memory
      --mem-per-cpu=MB        maximum amount of real memory per allocated cpu

Help options:
  -h, --help                  show this help message
      --usage                 display brief usage message

Other options:
  -V, --version               output version information and exit
"""
)


def _error_exit() -> int:
    raw = os.environ.get("SLURM_EXIT_ERROR", "")
    return int(raw) if raw.isdigit() else 1


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
    return data.decode("utf-8", errors="replace"), os.path.abspath(candidate)


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
        sys.stdout.write(HELP)
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
            script, script_path = sys.stdin.read(), None
        check_script(script)
        plan = build_plan(
            first, script, script_path=script_path, environ=os.environ, cwd=os.getcwd()
        )
    except SbatchError as exc:
        _print_error(exc)
        return _error_exit()

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


def _submit(client: Client, plan: SbatchPlan) -> int:
    try:
        answer = client.post("/jobs/submit", {"job": plan.job, "script": plan.script})
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
        sys.stdout.write(f"{job_id}\n")
    elif not plan.quiet:
        sys.stdout.write(f"Submitted batch job {job_id}\n")
    sys.stdout.flush()
    if plan.wait:
        is_array = bool(answer.get("array_task_ids")) or "array" in plan.job
        return _wait(client, int(job_id), is_array)
    return 0


def _exit_status(job: dict[str, Any]) -> int:
    """The exit code sbatch -W reports for one job: its code, 128+signal, or 1 if it failed."""
    code, _, signal = str(job.get("exit_code") or "0:0").partition(":")
    try:
        number, sig = int(code), int(signal or 0)
    except ValueError:
        number, sig = 1, 0
    if number:
        return number
    if sig:
        return 128 + sig
    return 0 if job.get("state") == "COMPLETED" else 1


def _wait(client: Client, job_id: int, is_array: bool) -> int:
    delay = 0.1
    while True:
        try:
            if is_array:
                jobs = client.list_jobs(array_job_id=job_id)
            else:
                jobs = [client.get(f"/jobs/{job_id}")]
        except ApiError as exc:
            sys.stderr.write(
                f"{PROG}: error: Failed to get state of job {job_id}: {exc.message}\n"
            )
            return _error_exit()
        if jobs and all(j.get("state") in TERMINAL for j in jobs):
            return max(_exit_status(j) for j in jobs)
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)
