"""`conductor wait JOBID...`: wait until every named job has ended; exit as `sbatch --wait` does.

On a terminal a progress line (rich) says how many jobs are pending, running and done; a line
per job is printed as it ends, also without a terminal. The exit status is Slurm's for
`sbatch --wait`: the highest among the jobs of their exit code, 128 + the signal that killed
them, or 1 for a job that failed without either (a launch failure, a node failure).
"""

from __future__ import annotations

import sys
import time

from conductor.cli.client import Client
from conductor.cli.common import UsageError, exit_code, job_display_id, run
from conductor.cli.getopt import Option, OptionTable, getopt_long
from conductor.cli.jobsel import fetch_jobs, parse_job_specs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

PROG = "wait"
# Every state a job does not leave (Slurm's; those a job here can reach are the first six).
TERMINAL = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "PREEMPTED"}
)
OPTIONS = OptionTable(
    [
        Option("help", ("help",), "h"),
        Option("quiet", ("quiet",), "q"),
        Option("interval", ("interval",), "i", "required"),
    ]
)
USAGE = "usage: conductor wait [-q] [-i SECONDS] JOBID...\n"
HELP = (
    USAGE
    + "Wait until every job named has ended (an array's id names all its tasks, 12_3 one task);\n"
    "exit with the highest exit status among them, as sbatch --wait does.\n"
    "\n"
    "Options:\n"
    "  -i, --interval=SECONDS  longest time between two looks at the jobs (default 2)\n"
    "  -q, --quiet             print nothing, only exit with the status\n"
    "  -h, --help              show this help and exit\n"
)


def exit_status(job: dict[str, Any]) -> int:
    """The status `sbatch --wait` exits with for one ended job."""
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


def ended_line(job: dict[str, Any]) -> str:
    from conductor.cli.common import job_reason

    line = f"job {job_display_id(job)} {job.get('state')} exit code {exit_code(job)}"
    reason = job_reason(job)
    return line + (f" ({reason})" if reason != "None" and job.get("state") != "COMPLETED" else "") + "\n"


def summary(jobs: list[dict[str, Any]]) -> str:
    """`3 jobs: 1 pending, 1 running, 1 ended` (one job: its id and state)."""
    if len(jobs) == 1:
        return f"waiting for job {job_display_id(jobs[0])}: {str(jobs[0].get('state')).lower()}"
    counts: dict[str, int] = {}
    for job in jobs:
        state = str(job.get("state"))
        key = "ended" if state in TERMINAL else state.lower()
        counts[key] = counts.get(key, 0) + 1
    parts = ", ".join(f"{n} {key}" for key, n in sorted(counts.items(), key=lambda kv: kv[0] == "ended"))
    return f"waiting for {len(jobs)} jobs: {parts}"


def wait_for(
    fetch: Callable[[], list[dict[str, Any]]],
    *,
    interval: float = 2.0,
    progress: bool | None = None,
    on_end: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """Poll `fetch` until every job it returns has ended; Slurm's exit status of the lot.

    `progress`: a rich status line on stderr (default: when stderr is a terminal). `on_end`
    hears of each job once, when it is first seen ended."""
    show = sys.stderr.isatty() if progress is None else progress
    seen: set[int] = set()
    delay = 0.1
    status: Any = None
    if show:
        from rich.console import Console
        from rich.live import Live
        from rich.spinner import Spinner

        # Not rich's console.status: its Live takes over sys.stdout, and the lines of ended
        # jobs must stay on stdout (`conductor wait 12 > log` on a terminal).
        spinner = Spinner("dots", "waiting...")
        status = Live(spinner, console=Console(stderr=True), redirect_stdout=False, redirect_stderr=False, transient=True)
        status.start()
    try:
        while True:
            jobs = fetch()
            for job in jobs:
                if job.get("state") in TERMINAL and int(job["job_id"]) not in seen:
                    seen.add(int(job["job_id"]))
                    if on_end is not None:
                        on_end(job)
            if jobs and all(j.get("state") in TERMINAL for j in jobs):
                return max(exit_status(j) for j in jobs)
            if status is not None:
                spinner.update(text=summary(jobs))
            time.sleep(delay)
            delay = min(delay * 1.5, interval)
    finally:
        if status is not None:
            status.stop()


def main(argv: list[str]) -> int:
    return run(PROG, lambda: _main(argv))


def _main(argv: list[str]) -> int:
    parsed, operands = getopt_long(argv, OPTIONS)
    opts = dict(parsed)
    if "help" in opts:
        sys.stdout.write(HELP)
        return 0
    if not operands:
        raise UsageError("no job id given; " + USAGE.strip())
    interval = 2.0
    if opts.get("interval") is not None:
        try:
            interval = float(opts["interval"] or "")
        except ValueError:
            raise UsageError(f"--interval: '{opts['interval']}' is not a number of seconds") from None
        if not 0.1 <= interval <= 3600:
            raise UsageError("--interval: must be between 0.1 and 3600 seconds")
    specs = parse_job_specs(operands)
    quiet = "quiet" in opts
    client = Client()

    def fetch() -> list[dict[str, Any]]:
        jobs = fetch_jobs(client, specs)
        missing = [s.text for s in specs if not any(s.matches(j) for j in jobs)]
        if missing:
            raise UsageError(f"Invalid job id specified: {missing[0]}")
        return jobs

    def report(job: dict[str, Any]) -> None:
        sys.stdout.write(ended_line(job))
        sys.stdout.flush()

    try:
        return wait_for(fetch, interval=interval, progress=False if quiet else None, on_end=None if quiet else report)
    finally:
        client.close()
