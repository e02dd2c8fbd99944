"""Routes that act on existing jobs, as scontrol and scancel do: signal, hold, release, requeue,
update; and the Slurm job ids they (and cancel, get, query) accept.

A job id in a path is `123`, `123_4` or `123_*`. `123` is exactly job 123, even when 123 is also
an array's id (its first task's, as in Slurm): the CLI fans an array out into its tasks and
addresses each by its own id, so a plain id must never widen to a whole array here. `123_4` is
task 4 of array 123 and `123_*` every task of array 123 (the form Slurm's dependencies use):
one request acts on a whole array, as `scancel 123` does in Slurm. slurmrestd's routes
(api/slurmrestd.py) take Slurm's own meaning instead, where an array's id is the whole array.

Each action is one store transaction (see the "Slurm control" section of store.py); what it
could not apply to comes back with the job's state and becomes a 409 when nothing applied.
Ownership: only a job's owner or an administrator may act on it (api/auth.py); an array's tasks
share their owner.
"""

from __future__ import annotations

import re
import signal as posix_signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from conductor.api import models
from conductor.api.models import no_control_characters
from conductor.api.auth import CurrentPrincipal, Principal, require_owner
from conductor.bus import SCHEDULER, node_topic
from conductor.domain.errors import SpecError
from conductor.domain.signals import parse_signal, signal_name
from conductor.domain.states import JobState
from conductor.domain.timespec import parse_time_limit
from conductor.store import BEING_STOPPED, NOT_HELD, ControlOutcome, Store

if TYPE_CHECKING:
    from conductor.api.app import AppContext

_JOB_REF = re.compile(r"^(\d{1,18})(?:_(\d{1,9}|\*))?$")
WHOLE_ARRAY = -1  # the task part of `123_*`

router = APIRouter(tags=["control"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": models.ErrorBody},
    403: {"model": models.ErrorBody},
    404: {"model": models.ErrorBody},
    409: {"model": models.ErrorBody},
    422: {"model": models.ErrorBody},
}


# ------------------------------------------------------------------- bodies
class SignalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signal: str | int = Field(description="A name (USR1, SIGUSR1) or a number (10).")
    batch_only: bool = Field(default=False, description="Only the batch shell (scancel --batch), not every process.")


class RequeueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hold: bool = Field(default=False, description="Requeue held (scontrol requeuehold).")


class JobUpdate(BaseModel):
    """`scontrol update JobId=N ...`: each field optional, at least one given."""

    model_config = ConfigDict(extra="forbid")

    time_limit: str | int | None = Field(default=None, description="Slurm time grammar, minutes, or UNLIMITED.")
    priority: int | None = Field(default=None, ge=0, le=2**31 - 2)
    nice: int | None = Field(default=None, ge=-10_000, le=10_000)
    name: str | None = Field(default=None, min_length=1, max_length=256)
    comment: str | None = Field(default=None, max_length=4096)

    @field_validator("name", "comment")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        # As at submission: other users' terminals print them (domain/text.py).
        return None if value is None else no_control_characters(value)


class ControlResponse(BaseModel):
    job_id: str = Field(description="The id as addressed: 123 or 123_4.")
    action: str
    job_ids: list[int] = Field(description="The jobs the action applied to.")
    message: str


# ------------------------------------------------------------------ helpers
@dataclass(frozen=True, slots=True)
class Target:
    """What a path's job id names: one job, one array task, or every task of an array."""

    text: str
    ids: list[int]
    whole_array: bool


def _ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def parse_job_ref(job_id: str) -> tuple[int, int | None]:
    """`123` -> (123, None); `123_4` -> (123, 4); `123_*` -> (123, WHOLE_ARRAY); else a 400."""
    match = _JOB_REF.match(job_id.strip())
    if match is None:
        raise HTTPException(
            400, f"job_id: '{job_id[:40]}' is not a job id (123, 123_4 for task 4 of array 123, or 123_* for all its tasks)"
        )
    task = match.group(2)
    return int(match.group(1)), (WHOLE_ARRAY if task == "*" else int(task)) if task is not None else None


def resolve_one(store: Store, job_id: str) -> int:
    """The id of the one job a path names (`123_4` is the task's own id); 404 when unknown."""
    base, task = parse_job_ref(job_id)
    if task == WHOLE_ARRAY:
        raise HTTPException(400, f"job_id: '{job_id[:40]}' names every task of an array; give 123 or 123_4 here")
    if task is not None:
        found = store.resolve_task(base, task)
        if found is None:
            raise HTTPException(404, f"job_id: no task {task} in array {base}")
        return found
    if store.get_job(base) is None:
        raise HTTPException(404, f"job_id: no job {base}")
    return base


def resolve_target(store: Store, job_id: str, *, slurm_array_ids: bool = False) -> Target:
    """The jobs a path names for an action: one job, one task, or all tasks of `123_*`.

    `slurm_array_ids`: Slurm's meaning, where a plain array id names the whole array too.
    """
    base, task = parse_job_ref(job_id)
    if task is not None and task != WHOLE_ARRAY:
        return Target(job_id, [resolve_one(store, job_id)], whole_array=False)
    if task == WHOLE_ARRAY or slurm_array_ids:
        tasks = store.array_task_ids(base)
        if tasks:
            return Target(job_id, tasks, whole_array=True)
        if task == WHOLE_ARRAY:
            raise HTTPException(404, f"job_id: no array {base}")
    if store.get_job(base) is None:
        raise HTTPException(404, f"job_id: no job {base}")
    return Target(job_id, [base], whole_array=False)


def authorize(principal: Principal, store: Store, target: Target, action: str) -> None:
    """403 unless the caller owns the jobs (an array's tasks share one owner) or is an admin."""
    row = store.get_job(target.ids[0])
    if row is not None:
        require_owner(principal, row, action)


def _target(request: Request, job_id: str, action: str, principal: Principal) -> Target:
    store = _ctx(request).store
    target = resolve_target(store, job_id)
    authorize(principal, store, target, action)
    return target


def _wake(request: Request, outcome: ControlOutcome, *, scheduler: bool) -> None:
    bus = _ctx(request).bus
    for node in sorted(outcome.nodes):
        bus.publish(node_topic(node))
    if scheduler:
        bus.publish(SCHEDULER)


def _why(job_id: int, state: str, needs: str) -> str:
    if state == NOT_HELD:
        return f"job {job_id} is not held"
    if state == BEING_STOPPED:
        return f"job {job_id} is already being stopped"
    if state in (JobState.PENDING.value, JobState.RUNNING.value):
        return f"job {job_id} is {state}; {needs}"
    return f"job {job_id} has already finished ({state}); {needs}"


def _conflict_or(target: Target, outcome: ControlOutcome, action: str, needs: str, done: str) -> ControlResponse:
    """409 when the action applied to no job; otherwise the answer, naming what was skipped."""
    if not outcome.changed:
        first = min(outcome.skipped) if outcome.skipped else target.ids[0]
        reason = _why(first, outcome.skipped.get(first, "UNKNOWN"), needs)
        if target.whole_array:
            reason = f"array {target.text}: no task could be {done} ({reason})"
        raise HTTPException(409, reason)
    count = len(outcome.changed)
    what = f"{count} task{'s' if count != 1 else ''} of array {target.text}" if target.whole_array else f"job {target.text}"
    message = f"{what} {done}"
    if outcome.skipped:
        message += f"; {len(outcome.skipped)} skipped (not in a state that allows it)"
    return ControlResponse(job_id=target.text, action=action, job_ids=sorted(outcome.changed), message=message)


# ------------------------------------------------------------------- cancel
def cancel_job(request: Request, job_id: str, principal: Principal) -> models.CancelResponse:
    """POST /jobs/cancel/{job_id} (declared in app.py, the seed's route): one job, one task, or a
    whole array. A job that has already ended is not an error: the answer says so."""
    store = _ctx(request).store
    try:
        target = _target(request, job_id, "cancel it", principal)
    except HTTPException as exc:
        if exc.status_code == 404:  # the seed's (and Slurm's) words
            raise HTTPException(404, f"Invalid job id specified: {job_id[:40]}") from exc
        raise
    if not target.whole_array:
        outcome = store.cancel(target.ids[0])
        if not outcome.found:
            raise HTTPException(404, outcome.message)
        if outcome.node:
            _ctx(request).bus.publish(node_topic(outcome.node))
        _ctx(request).bus.publish(SCHEDULER)
        return models.CancelResponse(job_id=str(target.ids[0]), state=outcome.state, message=outcome.message)
    many = store.cancel_jobs(target.ids)
    _wake(request, many, scheduler=True)
    if not many.changed:
        return models.CancelResponse(
            job_id=target.text, state=None, message=f"array {target.text}: every task has already finished"
        )
    return models.CancelResponse(
        job_id=target.text,
        state=JobState.CANCELLED.value,
        message=f"array {target.text}: cancel requested for {len(many.changed)} task(s)"
        + (f"; {len(many.skipped)} had already finished" if many.skipped else ""),
    )


# ------------------------------------------------------------------- routes
@router.post("/jobs/{job_id}/signal", response_model=ControlResponse, responses=_ERRORS)
def signal_job(job_id: str, body: SignalRequest, request: Request, principal: CurrentPrincipal) -> Any:
    """scancel --signal=SIG: deliver SIG to the job's processes without ending it (SIGKILL, as
    in Slurm, cancels). The job's worker delivers it, wherever it runs."""
    number = parse_signal(body.signal, field="signal")
    target = _target(request, job_id, "signal it", principal)
    store = _ctx(request).store
    if number == posix_signal.SIGKILL:
        outcome = store.cancel_jobs(target.ids)
        _wake(request, outcome, scheduler=True)
        return _conflict_or(target, outcome, "signal", "only a pending or running job can be killed", "killed")
    entry = f"b:{number}" if body.batch_only else str(number)
    outcome = store.queue_signal(target.ids, entry)
    _wake(request, outcome, scheduler=False)
    return _conflict_or(
        target, outcome, "signal", "only a running job can be signalled", f"signalled with SIG{signal_name(number)}"
    )


@router.post("/jobs/{job_id}/hold", response_model=ControlResponse, responses=_ERRORS)
def hold_job(job_id: str, request: Request, principal: CurrentPrincipal) -> Any:
    """scontrol hold: a pending job stays pending (reason JobHeldUser) until released."""
    target = _target(request, job_id, "hold it", principal)
    outcome = _ctx(request).store.hold_jobs(target.ids, True)
    _wake(request, outcome, scheduler=True)
    return _conflict_or(target, outcome, "hold", "only a pending job can be held", "held")


@router.post("/jobs/{job_id}/release", response_model=ControlResponse, responses=_ERRORS)
def release_job(job_id: str, request: Request, principal: CurrentPrincipal) -> Any:
    """scontrol release: a held job becomes eligible again."""
    target = _target(request, job_id, "release it", principal)
    outcome = _ctx(request).store.hold_jobs(target.ids, False)
    _wake(request, outcome, scheduler=True)
    return _conflict_or(target, outcome, "release", "only a held pending job can be released", "released")


@router.post("/jobs/{job_id}/requeue", response_model=ControlResponse, responses=_ERRORS)
def requeue_job(
    job_id: str, request: Request, principal: CurrentPrincipal, body: RequeueRequest | None = None
) -> Any:
    """scontrol requeue[hold]: a running job is stopped and returns to PENDING; an ended job
    returns to PENDING at once. Either way restart_count grows by one (SLURM_RESTART_COUNT)."""
    hold = body.hold if body is not None else False
    target = _target(request, job_id, "requeue it", principal)
    outcome = _ctx(request).store.requeue_jobs(target.ids, hold=hold)
    _wake(request, outcome, scheduler=True)
    return _conflict_or(
        target, outcome, "requeue", "only a running or finished job can be requeued", "requeued" + (" held" if hold else "")
    )


@router.patch("/jobs/{job_id}", response_model=ControlResponse, responses=_ERRORS)
def update_job(job_id: str, body: JobUpdate, request: Request, principal: CurrentPrincipal) -> Any:
    """scontrol update: time_limit, priority, nice, name, comment of a pending or running job.

    A running job's new time limit is enforced by its worker from the moment it hears of it
    (at once: the node is woken). Without administrator rights, as in Slurm, a time limit or a
    priority may only be lowered, and nice may not go below 0.
    """
    given = body.model_fields_set
    changes: dict[str, Any] = {}
    if "time_limit" in given:
        if body.time_limit is None:
            raise SpecError("time_limit", "must be a time limit such as 1:00:00, or UNLIMITED")
        changes["time_limit"] = parse_time_limit(body.time_limit, field="time_limit")
    for name in ("priority", "nice", "name", "comment"):
        if name in given:
            if getattr(body, name) is None and name != "comment":
                raise SpecError(name, "must not be null")
            changes[name] = getattr(body, name)
    if not changes:
        raise SpecError("body", "nothing to update: give at least one of time_limit, priority, nice, name, comment")
    target = _target(request, job_id, "update it", principal)
    store = _ctx(request).store
    _check_rights(principal, store, target, changes)
    outcome = store.update_jobs(target.ids, changes)
    _wake(request, outcome, scheduler=True)
    return _conflict_or(target, outcome, "update", "only a pending or running job can be updated", "updated")


def _check_rights(principal: Principal, store: Store, target: Target, changes: dict[str, Any]) -> None:
    if principal.admin:
        return
    row = store.get_job(target.ids[0]) or {}
    if "time_limit" in changes:
        new, old = changes["time_limit"], row.get("time_limit")
        if old is not None and (new is None or new > old):
            raise HTTPException(403, "time_limit: only an administrator may raise a job's time limit")
    if "priority" in changes and changes["priority"] > (row.get("priority") or 0):
        raise HTTPException(403, "priority: only an administrator may raise a job's priority")
    if "nice" in changes and changes["nice"] < 0:
        raise HTTPException(403, "nice: only an administrator may set a negative nice value")
