"""A job whose process this worker supervises, and what it knows of that process."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from conductor.domain.usage import Usage
from conductor.worker.protocol import JobStatus


@dataclass(slots=True)
class RunningJob:
    job_id: int
    pid: int  # the job's process (its batch script), leader of its session and process group
    status_path: str
    start_time: datetime
    time_limit: int | None
    ticks: int = 0  # with pid, the process's identity (see JobStatus.ticks)
    # While the worker's launcher reports its end: the tag of its launch; 0 when watched by pidfd
    # (re-adopted, or its launcher died).
    tag: int = 0
    launcher: tuple[int, int] | None = None  # watched by pidfd: the launcher to await its exit line from
    status: JobStatus | None = None  # its outcome, as the launcher reported it
    pidfd: int = -1
    kill_state: str | None = None
    term_sent: float | None = None  # monotonic time of the SIGTERM
    kill_sent: bool = False
    # Which run of the job this process is: a job requeued after its node was declared dead
    # runs again with restart_count + 1, and this process then no longer belongs to it.
    restart_count: int = 0
    requeue: bool = False  # sbatch --requeue: a run its launcher fenced goes back to the queue
    orphaned: bool = False  # killed because the job no longer runs here: report nothing
    # sbatch --signal=[B:]SIG@TIME, read from the job's row: sent once, TIME s before the limit.
    signal_spec: str | None = None
    warned: bool = False
    # Where slurmstepd's notices go (its standard error, a path from its working directory) and
    # whose file it must be.
    stderr: str | None = None
    uid: int | None = None
    usage: Usage | None = None  # what its control group measured, once it ended
    notice: str | None = None  # slurmstepd's line about its end (time limit, cancel), written once it ended
