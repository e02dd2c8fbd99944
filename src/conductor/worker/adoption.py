"""After a restart: taking back the jobs this node was running, and killing the processes of
jobs that no longer run here (their node was declared dead meanwhile, or they were requeued).

`plan_adoption` and `is_orphan` decide from what the database and the status files say; the
functions after them act on the decisions.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime

from conductor.domain.job import JobRun
from conductor.store import aware
from conductor.worker.containment import Containment
from conductor.worker.identity import launcher_alive
from conductor.worker.ports import NodeStore, Signaller
from conductor.worker.protocol import JobStatus
from conductor.worker.running import RunningJob
from conductor.worker.spool import Spool, read_status

log = logging.getLogger("conductor.worker")

GONE_AT_RESTART = "job process was gone when the worker restarted"


@dataclass
class AdoptionPlan:
    running: list[RunningJob] = field(default_factory=list)  # alive: watch them by pid
    ended: list[RunningJob] = field(default_factory=list)  # over, with their status: report them
    # Their process is gone but their status file has no end yet: its launcher may still write it.
    unsettled: list[RunningJob] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)  # started, and nothing left to tell how they ended
    never_started: list[int] = field(default_factory=list)  # claimed, provably never ran: launch them


def plan_adoption(
    rows: Iterable[JobRun],
    status_path: Callable[[int], str],
    read: Callable[[str], JobStatus],
    is_running: Callable[[int, int], bool],
    now: datetime,
) -> AdoptionPlan:
    """What to do with each job the database says runs on this node, given its status file
    (`read`) and whether its process (pid, start ticks) still runs.

    Only called while the worker holds the launch lock: whatever launcher had a job's request
    is done with its requests, and would have written the "start" line before letting it run.
    """
    plan = AdoptionPlan()
    for row in rows:
        if not row.launched:
            continue  # placed but never started: the launch path takes it
        path = status_path(row.id)
        status = read(path)
        job = RunningJob(
            job_id=row.id,
            pid=status.pid or 0,
            status_path=path,
            start_time=aware(row.start_time) or now,
            time_limit=row.time_limit,
            ticks=status.ticks,
            launcher=status.launcher,
            kill_state=row.kill_state,
            restart_count=row.restart_count or 0,
            requeue=bool(row.requeue),
        )
        if status.exit is not None or status.error is not None:
            job.status = status
            plan.ended.append(job)
        elif status.pid is None:
            if row.pid:
                # It started (its launcher replied), yet its status file is gone.
                plan.gone.append(job.job_id)
            else:
                # No "start" line: the script never ran. It may run now, once.
                plan.never_started.append(job.job_id)
        elif is_running(job.pid, job.ticks):
            plan.running.append(job)
        else:
            # Ended (gone, or a zombie its launcher has yet to reap, or an orphan's its new
            # parent has yet to): what its launcher recorded, if it could.
            plan.unsettled.append(job)
    return plan


def settle(plan: AdoptionPlan, status_of: Callable[[RunningJob], JobStatus]) -> None:
    """Move the unsettled jobs to ended (their end was recorded after all) or gone."""
    for job in plan.unsettled:
        status = status_of(job)
        if status.exit is not None or status.error is not None:
            job.status = status
            plan.ended.append(job)
        else:
            plan.gone.append(job.job_id)
    plan.unsettled = []


def hand_back(plan: AdoptionPlan, node: str, store: NodeStore) -> None:
    """Tell the database about the jobs that never started (launch them) and those gone (failed)."""
    if plan.never_started:
        try:
            store.relaunch(node, plan.never_started)
            log.info("jobs %s were claimed but never started: launching them", plan.never_started)
        except Exception:
            log.warning("could not hand back unstarted jobs", exc_info=True)
    if plan.gone:
        try:
            store.fail_stranded(node, plan.gone, GONE_AT_RESTART)
        except Exception:
            log.warning("could not mark stranded jobs", exc_info=True)


def wait_for_exit_line(job: RunningJob, timeout: float = 2.0) -> JobStatus:
    """The status of a job whose process is gone: its launcher, when it lives, writes the exit
    line right after reaping it."""
    deadline = time.monotonic() + timeout
    while True:
        status = read_status(job.status_path)
        if status.exit is not None or status.error is not None or job.launcher is None:
            return status
        if time.monotonic() >= deadline or not launcher_alive(job.launcher):
            # Read once more: it may have written the line just before it went.
            return read_status(job.status_path)
        time.sleep(0.01)


def is_orphan(job: RunningJob, row: JobRun | None) -> bool:
    """Whether the process of `job` no longer belongs to the job: the database says the job is
    not running here (`row` None), or not launched, or that this is an earlier run of it."""
    return row is None or not row.launched or (row.restart_count or 0) != job.restart_count


def kill_orphans(jobs: MutableMapping[int, RunningJob], rows: Iterable[JobRun], spool: Spool, signaller: Signaller) -> None:
    """Kill the processes of jobs the scheduler took from this node while it was silent."""
    current = {row.id: row for row in rows}
    for job in list(jobs.values()):
        if not is_orphan(job, current.get(job.job_id)):
            continue
        log.warning("job %s no longer runs on this node (its node was declared dead): killing it", job.job_id)
        job.orphaned = True
        jobs.pop(job.job_id)
        signaller.group(job.pid, job.ticks, signal.SIGKILL)
        # A later run here gets a new status file; this one must not pass for it meanwhile.
        spool.remove_status(job.job_id)
        spool.forget_script(job.job_id)  # its script stays: its processes may hold it


def kill_strays(ours: set[int], spool: Spool, signaller: Signaller, is_process: Callable[[int, int], bool]) -> None:
    """At start: kill every live job process of this home that is not one of `ours`."""
    for job_id in spool.status_files():
        if job_id in ours:
            continue
        status = read_status(spool.status_path(job_id))
        if status.pid and is_process(status.pid, status.ticks):
            log.warning("job %s no longer runs on this node (its node was declared dead): killing it", job_id)
            signaller.group(status.pid, status.ticks, signal.SIGKILL)
        spool.remove_status(job_id)


def kill_leftovers(containment: Containment, running: set[int]) -> None:
    """At start: end the groups of jobs not `running` here (ended while no worker watched, or
    taken from this node): whatever they left behind is killed."""
    for job_id in containment.leftovers():
        if job_id in running:
            continue
        log.info("job %s is over: killing what is left in its group", job_id)
        with contextlib.suppress(Exception):
            containment.finish(job_id)
