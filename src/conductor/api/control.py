"""Routes that act on existing jobs, as scontrol and scancel do: signal, hold, release, requeue,
update. Each parses its body and hands the caller and the request to the job services
(conductor.services.jobs), which hold every rule: which jobs an id names, who may act, what
state allows what. A refusal comes back as its kind's status (api/app.py's handler).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from conductor.api import models
from conductor.api.auth import CurrentPrincipal
from conductor.api.models import no_control_characters, not_bool
from conductor.domain.errors import SpecError
from conductor.domain.signals import parse_signal
from conductor.domain.timespec import parse_time_limit
from conductor.services.jobs import ControlResult, JobChanges, JobService

router = APIRouter(tags=["control"])

_ERRORS = models.error_responses(400, 403, 404, 409, 422)


# ------------------------------------------------------------------- bodies
class SignalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signal: str | int = Field(description="A name (USR1, SIGUSR1) or a number (10).")
    batch_only: bool = Field(default=False, description="Only the batch shell (scancel --batch), not every process.")
    steps_only: bool = Field(
        default=False,
        description="Only the job's steps, the tasks of its sruns, not its batch shell (scancel --signal without "
        "--batch or --full, and sbatch --signal without B:).",
    )

    @field_validator("signal", mode="before")
    @classmethod
    def _number(cls, value: object) -> object:
        return not_bool(value)  # true would be signal 1, SIGHUP


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

    @field_validator("time_limit", "priority", "nice", mode="before")
    @classmethod
    def _numbers(cls, value: object) -> object:
        return not_bool(value)  # false would be a time limit of 0: UNLIMITED

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
def _jobs(request: Request) -> JobService:
    jobs: JobService = request.app.state.ctx.jobs
    return jobs


def _answer(result: ControlResult) -> ControlResponse:
    return ControlResponse(job_id=result.job_id, action=result.action, job_ids=result.job_ids, message=result.message)


# ------------------------------------------------------------------- routes
@router.post("/jobs/{job_id}/signal", response_model=ControlResponse, responses=_ERRORS)
def signal_job(job_id: str, body: SignalRequest, request: Request, principal: CurrentPrincipal) -> Any:
    """scancel --signal=SIG: deliver SIG to the job's processes without ending it (SIGKILL, as
    in Slurm, cancels). The job's worker delivers it, wherever it runs."""
    number = parse_signal(body.signal, field="signal")
    return _answer(
        _jobs(request).signal(principal, job_id, number, batch_only=body.batch_only, steps_only=body.steps_only)
    )


@router.post("/jobs/{job_id}/hold", response_model=ControlResponse, responses=_ERRORS)
def hold_job(job_id: str, request: Request, principal: CurrentPrincipal) -> Any:
    """scontrol hold: a pending job stays pending (reason JobHeldUser) until released."""
    return _answer(_jobs(request).hold(principal, job_id))


@router.post("/jobs/{job_id}/release", response_model=ControlResponse, responses=_ERRORS)
def release_job(job_id: str, request: Request, principal: CurrentPrincipal) -> Any:
    """scontrol release: a held job becomes eligible again."""
    return _answer(_jobs(request).release(principal, job_id))


@router.post("/jobs/{job_id}/requeue", response_model=ControlResponse, responses=_ERRORS)
def requeue_job(
    job_id: str, request: Request, principal: CurrentPrincipal, body: RequeueRequest | None = None
) -> Any:
    """scontrol requeue[hold]: a running job is stopped and returns to PENDING; an ended job
    returns to PENDING at once. Either way restart_count grows by one (SLURM_RESTART_COUNT)."""
    hold = body.hold if body is not None else False
    return _answer(_jobs(request).requeue(principal, job_id, hold=hold))


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
    return _answer(_jobs(request).update(principal, job_id, JobChanges(changes)))
