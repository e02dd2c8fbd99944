"""Time limits, kills and signals of running jobs: when to act (pure decisions), then the acts.

A kill (time limit, scancel, requeue) is SIGCONT and SIGTERM to the job's process group, then
SIGKILL once the node's kill-wait has passed, as slurmstepd does. `sbatch --signal=[B:]SIG@TIME`
is sent once, TIME seconds before the limit; `scancel --signal` requests are delivered once each.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from conductor.domain.errors import SpecError
from conductor.domain.job import JobRun
from conductor.domain.signals import parse_signal_spec
from conductor.domain.states import JobState
from conductor.worker.outcome import OPEN_KILL_STATES
from conductor.worker.ports import NodeStore, Signaller
from conductor.worker.running import RunningJob

log = logging.getLogger("conductor.worker")


# Which processes of a job a signal is for, as Slurm's flags say (scancel, --signal).
BATCH = "batch"  # the batch script alone: --signal=B:, scancel --batch
STEPS = "steps"  # its steps alone: --signal without B:, scancel --signal (slurmd's KILL_STEPS_ONLY)
FULL = "full"  # every process: scancel --full, and the API's signal without batch_only


@dataclass(frozen=True, slots=True)
class SignalRequest:
    """A signal sent without ending the job."""

    signal: int
    scope: str  # BATCH, STEPS or FULL


@dataclass(frozen=True, slots=True)
class Step:
    """What to do to one job now, in this order."""

    warn: SignalRequest | None = None  # --signal's warning is due
    time_out: bool = False  # its time limit has passed: it ends as TIMEOUT
    terminate: bool = False  # SIGCONT then SIGTERM
    kill: bool = False  # SIGKILL: the kill-wait after the SIGTERM has passed


NOTHING = Step()


def warn_time(job: RunningJob) -> float | None:
    """When --signal's warning is due (wall clock), or None (none asked, or already sent)."""
    if job.warned or not job.signal_spec or job.time_limit is None:
        return None
    try:
        spec = parse_signal_spec(job.signal_spec)
    except SpecError:
        return None
    return job.start_time.timestamp() + job.time_limit - spec.seconds


def decide(job: RunningJob, now_wall: float, now_mono: float, kill_wait: float) -> Step:
    """What enforcement does to `job` at these times (wall clock, monotonic)."""
    warn = None
    warn_at = warn_time(job)
    if warn_at is not None and job.kill_state is None and now_wall >= warn_at:
        spec = parse_signal_spec(job.signal_spec or "")
        # Without B: the steps alone, never the batch script (job_mgr.c send_job_warn_signal).
        warn = SignalRequest(spec.signal, BATCH if spec.batch_only else STEPS)
    kill_state = job.kill_state
    time_out = kill_state is None and job.time_limit is not None and now_wall >= job.start_time.timestamp() + job.time_limit
    if time_out:
        kill_state = JobState.TIMEOUT.value
    terminate = kill = False
    if kill_state is not None and job.term_sent is None:
        terminate = True
    elif job.term_sent is not None and not job.kill_sent and now_mono >= job.term_sent + kill_wait:
        kill = True
    if warn is None and not (time_out or terminate or kill):
        return NOTHING
    return Step(warn, time_out, terminate, kill)


def next_due(jobs: Iterable[RunningJob], now_wall: float, now_mono: float, limit: float, kill_wait: float) -> float:
    """Seconds until enforcement next has something to do (at most `limit`, at least 0)."""
    timeout = limit
    for job in jobs:
        if job.kill_state is None and job.time_limit is not None:
            timeout = min(timeout, job.start_time.timestamp() + job.time_limit - now_wall)
            warn_at = warn_time(job)
            if warn_at is not None:
                timeout = min(timeout, warn_at - now_wall)
        elif job.term_sent is not None and not job.kill_sent:
            timeout = min(timeout, job.term_sent + kill_wait - now_mono)
    return max(timeout, 0.0)


_SCOPES = {"b": BATCH, "s": STEPS, "": FULL}


def requested_signals(entries: Iterable[str]) -> list[SignalRequest]:
    """`scancel --signal` requests as the store keeps them: "b:SIG" (the batch shell alone),
    "s:SIG" (the steps alone) or "SIG" (every process)."""
    signals = []
    for entry in entries:
        scope, _, number = entry.rpartition(":")
        if number.isdigit() and scope in _SCOPES:
            signals.append(SignalRequest(int(number), _SCOPES[scope]))
    return signals


def send(signaller: Signaller, job: RunningJob, warning: SignalRequest) -> None:
    """Signal a job without ending it: its batch shell, its steps, or every process."""
    if warning.scope == BATCH:
        signaller.batch(job.pid, job.ticks, warning.signal)
    elif warning.scope == STEPS:
        signaller.steps(job, warning.signal)
    else:
        signaller.full(job, warning.signal)


# Told (job, "timeout") when a job's limit passed, (job, "cancel") when a cancel ends it: the
# notice slurmstepd writes into the job's error file.
Notify = Callable[[RunningJob, str], None]


def apply(
    step: Step, job: RunningJob, now_mono: float, store: NodeStore, signaller: Signaller, notify: Notify | None = None
) -> None:
    """Do what `decide` said, and remember it in `job`."""
    if step.warn is not None:
        job.warned = True
        send(signaller, job, step.warn)
    if step.time_out:
        with contextlib.suppress(Exception):
            store.set_kill(job.job_id, JobState.TIMEOUT)
        job.kill_state = JobState.TIMEOUT.value
        if notify is not None:
            notify(job, "timeout")
    if step.terminate:
        if notify is not None and job.kill_state == JobState.CANCELLED.value:
            notify(job, "cancel")
        # As slurmstepd: SIGCONT so a stopped job can act on the SIGTERM that follows.
        signaller.group(job.pid, job.ticks, signal.SIGCONT)
        signaller.group(job.pid, job.ticks, signal.SIGTERM)
        job.term_sent = now_mono
    elif step.kill:
        signaller.group(job.pid, job.ticks, signal.SIGKILL)
        job.kill_sent = True


def deliver_signals(jobs: Mapping[int, RunningJob], node: str, store: NodeStore, signaller: Signaller) -> None:
    """Deliver what `scancel --signal` asked for (through the store: the API may be on another
    host). Taken and cleared in one transaction, so each is delivered once."""
    try:
        taken = store.take_signals(node)
    except Exception:
        log.warning("could not read signal requests", exc_info=True)
        return
    for job_id, entries in taken.items():
        job = jobs.get(job_id)
        if job is None:
            continue
        for warning in requested_signals(entries):
            send(signaller, job, warning)


def enforce(
    jobs: Mapping[int, RunningJob],
    rows: list[JobRun] | None,
    node: str,
    store: NodeStore,
    signaller: Signaller,
    kill_wait: float,
    now_wall: float,
    now_mono: float,
    notify: Notify | None = None,
) -> list[RunningJob]:
    """One pass over the node's jobs: take in what the database says of them (`rows`, read here
    when None), deliver signal requests, then enforce limits and kills. Returns the jobs whose
    time limit changed (scontrol update)."""
    changed: list[RunningJob] = []
    if not jobs:
        return changed
    requested: dict[int, str] = {}
    current: dict[int, JobRun] = {}
    try:
        for row in rows if rows is not None else store.running_on_node(node):
            current[row.id] = row
            if row.kill_state:
                requested[row.id] = row.kill_state
    except Exception:
        log.warning("could not read cancel requests", exc_info=True)
    if any(row.pending_signal for row in current.values()):
        deliver_signals(jobs, node, store, signaller)
    for job in list(jobs.values()):
        known = current.get(job.job_id)
        if known is not None:
            # scontrol update may have changed the limit of the running job.
            if job.time_limit != known.time_limit:
                job.time_limit = known.time_limit
                changed.append(job)
            job.signal_spec = known.signal_spec
        if job.kill_state in OPEN_KILL_STATES and job.job_id in requested:
            job.kill_state = requested[job.job_id]  # a cancel may override a requeue
        step = decide(job, now_wall, now_mono, kill_wait)
        if step is not NOTHING:
            apply(step, job, now_mono, store, signaller, notify)
    return changed
