"""How an ended job is recorded: a pure decision from what is known of its end.

Known of an ended job: what its launcher reported (or its status file says), the kill the
worker or a user asked for (`TIMEOUT` once its time limit passed, `CANCELLED`, `PENDING` for a
requeue), and which run of the job it was. Nothing here reads a file or the database.
"""

from __future__ import annotations

from datetime import UTC, datetime

from conductor.domain.states import LOST_EXIT_CODE, JobState, Reason
from conductor.domain.usage import Usage, merge
from conductor.store import Finish
from conductor.worker.protocol import JobStatus

NO_EXIT_STATUS = "exit status lost: launcher died (the job ran; how it ended is not known)"
# Kill states a user may still change once the job's process ended (a cancel overrides a
# requeue); the others are final.
OPEN_KILL_STATES = (None, JobState.PENDING.value)
# What sacct shows for a job the out-of-memory killer ended (Slurm 22.05).
OOM_EXIT_CODE = "0:125"
# The record of a job its launcher killed, its node's worker gone too long (launcher.py, fencing).
FENCED = "killed by its launcher: the node's worker was gone longer than the heartbeat timeout allows"


def final_usage(status: JobStatus, measured: Usage | None) -> Usage | None:
    """What the job used: its group's figures (`measured`), else, or beyond them where the
    polling fallback missed some, what wait4 said of its batch script and what it waited for."""
    waited = None
    if status.rusage is not None:
        maxrss = status.rusage.get("maxrss")
        waited = Usage(
            user_cpu=status.rusage.get("utime"),
            system_cpu=status.rusage.get("stime"),
            max_rss=int(maxrss * 1024) if maxrss else None,
        )
    if measured is None or waited is None or measured.source != "polling":
        # A control group's figures hold everything the job ran; wait4's fill in what it lacks.
        return merge(waited, measured)
    # Polling: every figure is a lower bound; take the larger.
    max_rss = max(measured.max_rss or 0, waited.max_rss or 0) or None
    return Usage(
        user_cpu=max(measured.user_cpu or 0.0, waited.user_cpu or 0.0),
        system_cpu=max(measured.system_cpu or 0.0, waited.system_cpu or 0.0),
        max_rss=max_rss,
        ave_rss=max_rss,
        max_vmsize=measured.max_vmsize,
        oom_kills=measured.oom_kills,
        source=measured.source,
        steps=measured.steps,
    )


def decide_outcome(
    job_id: int, status: JobStatus, kill_state: str | None, usage: Usage | None = None, *, requeue: bool = False
) -> Finish:
    """The Finish to record for a job whose process ended with `status`, after `kill_state` was
    asked for (None: no kill); `usage` is what its group measured; `requeue`: it asked to run
    again when its node fails it. Its end time is when its launcher reaped it, where the
    launcher said (a worker that was down learns it later)."""
    if kill_state is None and status.timed_out is not None:
        kill_state = JobState.TIMEOUT.value  # its launcher enforced its limit while the worker was down
    if kill_state is None and status.fenced is not None and requeue:
        # Fenced, its node was failing it: as the scheduler does for the jobs of a node it
        # declares dead, a job that asked for --requeue goes back to the queue.
        kill_state = JobState.PENDING.value
    finish = _decide(job_id, status, kill_state, usage)
    end = status.rusage.get("end") if status.rusage is not None else None
    if end:
        finish.end_time = datetime.fromtimestamp(end, UTC)
    return finish


def _decide(job_id: int, status: JobStatus, kill_state: str | None, usage: Usage | None) -> Finish:
    measured = final_usage(status, usage)
    rusage = None
    if measured is not None:
        rusage = {key: value for key, value in measured.as_dict().items() if value is not None and value != []}
    if status.error is not None:
        # Its setup failed (working directory, output files, user): the command never ran.
        return Finish(job_id, JobState.FAILED, "1:0", Reason.JOB_LAUNCH_FAILURE.value, status.error, rusage)
    if status.exit is None:
        # Its launcher died before it could learn and record the job's end: the record says so,
        # and claims no exit code or signal.
        exit_code, lost = LOST_EXIT_CODE, NO_EXIT_STATUS
    else:
        code, sig = status.exit
        exit_code, lost = f"{code}:{sig}", None
    if kill_state == JobState.PENDING.value:
        # scontrol requeue, or a fenced --requeue job: the run is over, the job goes back to the
        # queue (store.finish).
        why = FENCED if status.fenced is not None else lost
        return Finish(job_id, JobState.PENDING, exit_code, Reason.NONE.value, why, rusage)
    if kill_state == JobState.TIMEOUT.value:
        return Finish(job_id, JobState.TIMEOUT, exit_code, Reason.TIME_LIMIT.value, lost, rusage)
    if kill_state == JobState.CANCELLED.value:
        return Finish(job_id, JobState.CANCELLED, exit_code, Reason.NONE.value, lost, rusage)
    if status.fenced is not None:
        # Killed by its launcher when its worker had been gone too long (its node was being
        # declared dead): the node failed it, as it would have had it run on.
        return Finish(job_id, JobState.NODE_FAIL, exit_code, Reason.NODE_DOWN.value, FENCED, rusage)
    if measured is not None and measured.oom_kills:
        # As Slurm: any process of the job killed for its memory makes the job OUT_OF_MEMORY.
        return Finish(job_id, JobState.OUT_OF_MEMORY, OOM_EXIT_CODE, Reason.OUT_OF_MEMORY.value, None, rusage)
    if status.exit is None:
        # Slurm's state for a job whose node lost track of it.
        return Finish(job_id, JobState.NODE_FAIL, exit_code, Reason.NODE_DOWN.value, NO_EXIT_STATUS, rusage)
    if code == 0 and sig == 0:
        return Finish(job_id, JobState.COMPLETED, exit_code, Reason.NONE.value, None, rusage)
    reason = Reason.RAISED_SIGNAL.value if sig else Reason.NON_ZERO_EXIT_CODE.value
    return Finish(job_id, JobState.FAILED, exit_code, reason, None, rusage)


def settled_kill_state(known: str | None, job_id: int, requested: dict[int, str | None]) -> str | None:
    """The kill state to decide an ended job by: what the worker knew, unless it was open to
    change and the database (`requested`, read once the process ended) says otherwise."""
    if known in OPEN_KILL_STATES:
        return requested.get(job_id, known)
    return known


def report(finish: Finish, node: str, restart_count: int) -> Finish:
    """Tie a report to the run it is about, so it cannot end a later run of the job."""
    finish.node = node
    finish.restart_count = restart_count
    return finish


def launch_failure(job_id: int, message: str, node: str, restart_count: int) -> Finish:
    """A job whose process could not be started."""
    # Tied to this run: if the node is declared dead before the report gets through, it must
    # not end the job's next run elsewhere.
    return report(
        Finish(job_id, JobState.FAILED, "1:0", Reason.JOB_LAUNCH_FAILURE.value, f"launch failed: {message}"),
        node,
        restart_count,
    )
