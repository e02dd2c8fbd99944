"""A subset of slurmrestd's API, version v0.0.40, so tools written for it work unchanged.

Routes under `/slurm/v0.0.40/`: `POST job/submit`, `GET job/{job_id}`, `GET jobs`,
`DELETE job/{job_id}`, `GET nodes`, `GET node/{node_name}`, `POST node/{node_name}` (drain,
resume), `GET ping`. Request and response shapes follow slurmrestd's
OpenAPI schemas of that version (`v0.0.40_job_submit_req`, `v0.0.40_job_desc_msg`,
`v0.0.40_openapi_job_submit_response`, `v0.0.40_openapi_job_info_resp` / `v0.0.40_job_info`,
`v0.0.40_openapi_resp`, `v0.0.40_openapi_nodes_resp` / `v0.0.40_node`, `v0.0.40_update_node_msg`,
`v0.0.40_openapi_ping_array_resp`) for the fields implemented: every answer carries `meta`,
`errors` and `warnings`; states are arrays (`job_state: ["RUNNING"]`); counts and times that
slurmrestd wraps are `{"set", "infinite", "number"}` objects; times are UNIX seconds and time
limits minutes. Job description fields we do not implement are ignored with a warning, as
slurmrestd does for fields it does not know. Errors answer 4xx with slurmrestd's error list.

Submission and cancellation go through the same services as the native routes
(conductor.services.jobs), so every check, limit and ownership rule is the same for both APIs;
a refusal's kind chooses the Slurm error number (`slurm_errno`). Authentication: the app's (api/auth.py), which takes
slurmrestd's `X-SLURM-USER-TOKEN` header as well as a bearer token.
"""

from __future__ import annotations

import json
import math
import os
import platform
import signal as posix_signal
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any, Protocol

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from conductor import __version__
from conductor.api import models
from conductor.api.auth import CurrentPrincipal
from conductor.api.idempotency import REPLAYED_HEADER_DOC, IdempotencyKey
from conductor.api.job_records import host_list, job_command
from conductor.api.problems import problems
from conductor.domain.errors import SpecError
from conductor.domain.job import Job, ending_state
from conductor.domain.jobfiles import CLUSTER_NAME, job_paths
from conductor.domain.signals import parse_signal, signal_name
from conductor.domain.states import JobState, Reason
from conductor.errors import (
    AlreadyDone,
    Conflict,
    DependencyProblem,
    Forbidden,
    Invalid,
    InvalidNodeName,
    InvalidPartition,
    NotFound,
    Refusal,
    UnknownUser,
    Unsatisfiable,
)
from conductor.services import idempotency
from conductor.services.jobs import JobService, Submitted
from conductor.services.nodes import NodeService, NodeStateChange
from conductor.services.principal import Principal
from conductor.store import NodeInfo, Store, utcnow

VERSION = "v0.0.40"
PREFIX = f"/slurm/{VERSION}"
SLURM_RELEASE = ("23", "11", "0")
# Slurm's NO_VAL and the error numbers (slurm_errno.h) the answers use.
ESLURM_INVALID_PARTITION_NAME = 2000
ESLURM_ACCESS_DENIED = 2002
ESLURM_USER_ID_MISSING = 2010
ESLURM_REQUESTED_NODE_CONFIG_UNAVAILABLE = 2014
ESLURM_INVALID_JOB_ID = 2017
ESLURM_INVALID_NODE_NAME = 2018
ESLURM_TRANSITION_STATE_NO_UPDATE = 2020
ESLURM_ALREADY_DONE = 2021
ESLURM_INVALID_NODE_STATE = 2028
ESLURM_DEPENDENCY = 2038
ESLURM_REST_INVALID_QUERY = 9000
ESLURM_REST_FAIL_PARSING = 9001
ESLURM_REST_INVALID_JOBS_DESC = 9002
# slurmctld forgets ended jobs after MinJobAge (300 s by default); `GET jobs` shows the same.
MIN_JOB_AGE = timedelta(seconds=300)

# Documented so that clients (and the schemathesis run in tests/fuzz) know every status these
# routes answer with; errors carry slurmrestd's list, not the native API's {"detail"}.
_SLURM_ERROR = {
    "description": "slurmrestd's error list",
    "content": {
        "application/json": {
            "schema": {"type": "object", "required": ["errors"], "properties": {"errors": {"type": "array"}}}
        }
    },
}
router = APIRouter(
    prefix=PREFIX,
    tags=["slurmrestd v0.0.40"],
    responses={status: _SLURM_ERROR for status in (400, 403, 404, 409, 422, 429)},
)


# ------------------------------------------------------------------ shapes
def number(value: int | float | None, *, infinite: bool = False) -> dict[str, Any]:
    """slurmrestd's "integer number with flags" (`v0.0.40_uint32_no_val_struct` and kin)."""
    if infinite:
        return {"set": False, "infinite": True, "number": 0}
    if value is None:
        return {"set": False, "infinite": False, "number": 0}
    return {"set": True, "infinite": False, "number": int(value)}


def _epoch(value: datetime | None) -> dict[str, Any]:
    return number(int(value.timestamp()) if value is not None else None)


def meta(request: Request, principal: Principal | None) -> dict[str, Any]:
    client = request.client.host if request.client else ""
    return {
        "plugin": {
            "type": "openapi/slurmctld",
            "name": "Slurm OpenAPI slurmctld",
            "data_parser": f"data_parser/{VERSION}",
            "accounting_storage": "",
        },
        "client": {"source": client, "user": principal.user if principal else "", "group": ""},
        "command": [],
        "slurm": {
            "version": {"major": SLURM_RELEASE[0], "minor": SLURM_RELEASE[1], "micro": SLURM_RELEASE[2]},
            "release": ".".join(SLURM_RELEASE) + f" (conductor {__version__})",
            "cluster": CLUSTER_NAME,
        },
    }


def error_entry(description: str, error_number: int, error: str, source: str) -> dict[str, Any]:
    return {"description": description, "error_number": error_number, "error": error, "source": source}


def error_response(
    request: Request,
    status: int,
    description: str,
    *,
    error_number: int,
    error: str,
    source: str,
    principal: Principal | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body = {
        **(extra or {}),
        "meta": meta(request, principal),
        "errors": [error_entry(description, error_number, error, source)],
        "warnings": [],
    }
    return JSONResponse(body, status_code=status)


def exit_code(value: str | None, state: str) -> dict[str, Any]:
    """`v0.0.40_process_exit_code_verbose` from our "code:signal"."""
    if value is None or state in (JobState.PENDING.value, JobState.RUNNING.value):
        return {"status": ["PENDING"], "return_code": number(None), "signal": {"id": number(None), "name": ""}}
    code_text, _, sig_text = value.partition(":")
    code = int(code_text) if code_text.isdigit() else 0
    sig = int(sig_text) if sig_text.isdigit() else 0
    if sig:
        return {
            "status": ["SIGNALED"],
            "return_code": number(code),
            "signal": {"id": number(sig), "name": signal_name(sig)},
        }
    return {
        "status": ["SUCCESS" if code == 0 else "ERROR"],
        "return_code": number(code),
        "signal": {"id": number(None), "name": ""},
    }


def _minutes(seconds: int | None) -> dict[str, Any]:
    if seconds is None:
        return number(None, infinite=True)
    return number(math.ceil(seconds / 60))


def job_info(job: Job, dependency: str | None = None) -> dict[str, Any]:
    """One `v0.0.40_job_info`; `dependency` the job's as slurmctld shows it (job_infos)."""
    state = job.state
    running = state == JobState.RUNNING.value
    # A running job whose end was asked for is the state it ends in, COMPLETING, ended at the
    # request, as slurmctld shows it until its processes are gone (squeue and scontrol agree).
    ending = ending_state(job)
    job_state = [ending, "COMPLETING"] if ending else [state]
    end_time = job.kill_time if ending else job.end_time
    reason = Reason.TIME_LIMIT.value if ending == JobState.TIMEOUT.value else job.reason
    cpus = job.allocated_cpus or job.cpus_per_task * job.ntasks
    memory = job.memory_per_node_mb or (job.memory_per_cpu_mb or 0) * cpus
    paths = job_paths(job)
    is_task = job.array_task_id is not None
    info: dict[str, Any] = {
        "account": job.account or "",
        "accrue_time": _epoch(job.eligible_time),
        "admin_comment": "",
        "allocating_node": "",
        "array_job_id": number(job.array_job_id if is_task else 0),
        "array_task_id": number(job.array_task_id),
        "array_max_tasks": number(job.array_max_running or 0),
        "array_task_string": "",
        "association_id": 0,
        "batch_flag": True,
        "batch_host": job.node_list or "",
        "cluster": CLUSTER_NAME,
        "command": job_command(job) or "",
        "comment": job.comment or "",
        "contiguous": False,
        "cpus": number(cpus),
        "cpus_per_task": number(job.cpus_per_task),
        "current_working_directory": job.work_dir,
        "dependency": dependency or "",
        "derived_exit_code": exit_code(job.exit_code, state),
        "eligible_time": _epoch(job.eligible_time),
        "end_time": _epoch(end_time),
        "excluded_nodes": host_list(job.exc_nodes) or "",
        "exclusive": ["true"] if job.exclusive else [],
        "exit_code": exit_code(job.exit_code, state),
        "flags": [],
        "group_id": job.gid if job.gid is not None else 0,
        "group_name": "",
        "hold": bool(job.held),
        "job_id": job.id,
        "job_state": job_state,
        "last_sched_evaluation": number(None),
        "max_cpus": number(0),
        "max_nodes": number(0),
        "memory_per_cpu": number(job.memory_per_cpu_mb),
        "memory_per_node": number(job.memory_per_node_mb if job.memory_per_node_mb else (memory or None)),
        "minimum_cpus_per_node": number(cpus),
        "name": job.name,
        "nice": job.nice,
        "node_count": number(1),
        "nodes": job.node_list or "",
        "partition": job.partition,
        "priority": number(job.priority),
        "qos": job.qos or "",
        "requeue": bool(job.requeue),
        "required_nodes": host_list(job.req_nodes) or "",
        "restart_cnt": job.restart_count,
        "shared": [],
        "standard_error": paths.stderr,
        "standard_input": paths.stdin,
        "standard_output": paths.stdout,
        # A pending job's start time is the backfill plan's estimate, as in Slurm.
        "start_time": _epoch(job.expected_start_time if job.state == "PENDING" else job.start_time),
        "scheduled_nodes": (job.sched_nodes or "") if job.state == "PENDING" else "",
        "state_description": job.error_msg or "",
        "state_reason": reason,
        "submit_time": _epoch(job.submit_time),
        "suspend_time": number(0),
        "tasks": number(job.ntasks),
        "tasks_per_node": number(job.ntasks_per_node),
        "time_limit": _minutes(job.time_limit),
        "time_minimum": number(0),
        "user_id": job.uid if job.uid is not None else 0,
        "user_name": job.user_name,
    }
    if running:
        info["job_resources"] = {
            "nodes": job.node_list or "",
            "allocated_cores": cpus,
            "allocated_cpus": cpus,
            "allocated_hosts": 1,
            "allocated_nodes": [],
        }
    return info


# ------------------------------------------------------------- submission
def _from_number(value: Any, field: str) -> tuple[int | None, bool]:
    """(number, infinite) from an int or a `{"set", "infinite", "number"}` object."""
    if value is None:
        return None, False
    if isinstance(value, bool):
        raise SpecError(field, "expected a number or {\"set\", \"infinite\", \"number\"}")
    if isinstance(value, int):
        return value, False
    if isinstance(value, dict):
        if value.get("infinite"):
            return None, True
        if value.get("set") is False:
            return None, False
        number_value = value.get("number")
        if isinstance(number_value, int) and not isinstance(number_value, bool):
            return number_value, False
    raise SpecError(field, "expected a number or {\"set\", \"infinite\", \"number\"}")


# Slurm's node counts are 32-bit; jobs run on one node here, so a maximum only bounds a request.
MAX_NODE_COUNT = 2**31 - 1


def _maximum_nodes(value: Any) -> int | None:
    """`maximum_nodes`, a count or a `{"set", "infinite", "number"}` object; None: no maximum
    (0 too: clients fill every field, and Slurm takes a maximum of 0 as none)."""
    count, infinite = _from_number(value, "maximum_nodes")
    if infinite or count is None or count == 0:
        return None
    if not 1 <= count <= MAX_NODE_COUNT:
        raise SpecError("maximum_nodes", f"must be between 0 (none) and {MAX_NODE_COUNT}")
    return count


def _nodes_with_maximum(nodes: Any, maximum: int) -> Any:
    """Our `nodes` (N or MIN-MAX) from slurmrestd's minimum (`nodes`, `minimum_nodes`) and maximum."""
    if nodes is None:
        return f"1-{maximum}" if maximum > 1 else None
    if isinstance(nodes, int) and not isinstance(nodes, bool):
        if nodes > maximum:
            raise SpecError("maximum_nodes", f"{maximum} is below the minimum node count {nodes}")
        return f"{nodes}-{maximum}"
    return nodes  # text ("2-4") says its own maximum; the services check it


# slurmrestd's JOB_EXCLUSIVE_FLAGS: each but FALSE gives the job its node alone here.
_EXCLUSIVE_FLAGS = ("true", "false", "user", "mcs", "topo")


def _exclusive(flags: list[str]) -> bool:
    named = {flag.lower() for flag in flags}
    unknown = sorted(named - set(_EXCLUSIVE_FLAGS))
    if unknown:
        raise SpecError(
            "exclusive", f"unknown flag '{unknown[0][:40]}'; the flags are {', '.join(f.upper() for f in _EXCLUSIVE_FLAGS)}"
        )
    if "false" in named and len(named) > 1:
        raise SpecError("exclusive", "FALSE contradicts the other flags given")
    return bool(named) and named != {"false"}


def _flag_list(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise SpecError(field, "expected a list of flag names")


# job_desc_msg fields that map one to one onto our job description.
_SAME = (
    "account",
    "name",
    "partition",
    "qos",
    "comment",
    "current_working_directory",
    "standard_output",
    "standard_error",
    "standard_input",
    "cpus_per_task",
    "dependency",
    "array",
    "hold",
    "nice",
    "requeue",
    "mail_user",
    "argv",
    "environment",
    "required_nodes",
    "excluded_nodes",
)
# Fields slurmrestd fills in or that change nothing here: accepted silently.
_QUIET = frozenset({"script", "user_id", "group_id", "cluster_constraint", "clusters", "shared", "oversubscribe"})


# slurmrestd's names of mail flags (v0.0.40 JOB_MAIL_FLAGS) that sbatch --mail-type spells otherwise.
_MAIL_FLAGS = {
    "TIME=100%": "TIME_LIMIT",
    "TIME=90%": "TIME_LIMIT_90",
    "TIME=80%": "TIME_LIMIT_80",
    "TIME=50%": "TIME_LIMIT_50",
    "INVALID_DEPENDENCY": "INVALID_DEPEND",
}


def to_job_description(job: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:  # noqa: C901 - one branch per slurmrestd job field
    """Our `/jobs/submit` job object from a `v0.0.40_job_desc_msg`, and the fields ignored."""
    out: dict[str, Any] = {}
    ignored: list[str] = []
    maximum_nodes: int | None = None
    for key, value in job.items():
        if key in _SAME:
            if value is not None:
                out[key] = value
        elif key == "tasks":
            out["ntasks"] = value
        elif key == "tasks_per_node":
            out["ntasks_per_node"] = value
        elif key in ("memory_per_node", "memory_per_cpu"):
            megabytes, infinite = _from_number(value, key)
            if infinite:
                raise SpecError(key, "an infinite amount of memory cannot be requested")
            if megabytes is not None:
                out[key] = megabytes
        elif key == "time_limit":
            minutes, infinite = _from_number(value, key)
            if infinite:
                out["time_limit"] = "UNLIMITED"
            elif minutes is not None:
                out["time_limit"] = minutes
        elif key == "priority":
            prio, _ = _from_number(value, key)
            if prio is not None:
                out["priority"] = prio
        elif key == "begin_time":
            epoch, _ = _from_number(value, key)
            if epoch:
                out["begin_time"] = f"uts{epoch}"
        elif key == "exclusive":
            out["exclusive"] = _exclusive(_flag_list(value, key))
        elif key == "open_mode":
            modes = {f.lower() for f in _flag_list(value, key)}
            if len(modes) > 1:
                raise SpecError(key, f"modes {', '.join(sorted(f.upper() for f in modes))} contradict each other")
            if modes:
                out["open_mode"] = modes.pop()
        elif key == "mail_type":
            flags = _flag_list(value, key)
            if flags:
                out["mail_type"] = ",".join(_MAIL_FLAGS.get(f.upper(), f) for f in flags)
        elif key in ("nodes", "minimum_nodes"):
            if value is not None:
                out["nodes"] = value
        elif key == "maximum_nodes":
            maximum_nodes = _maximum_nodes(value)
        elif key in ("kill_warning_signal", "kill_warning_delay", "kill_warning_flags"):
            continue  # combined below into our --signal
        elif key not in _QUIET:
            ignored.append(key)
    if maximum_nodes is not None:
        nodes = _nodes_with_maximum(out.get("nodes"), maximum_nodes)
        if nodes is not None:
            out["nodes"] = nodes
    if job.get("kill_warning_signal"):
        delay, _ = _from_number(job.get("kill_warning_delay"), "kill_warning_delay")
        batch = "BATCH_JOB" in _flag_list(job.get("kill_warning_flags"), "kill_warning_flags")
        spec = ("B:" if batch else "") + str(job["kill_warning_signal"])
        out["signal"] = spec + (f"@{delay}" if delay is not None else "")
    return out, sorted(ignored)


# A refusal's kind -> Slurm's error number (slurm_errno.h); the first match along the class's
# ancestry decides, so a more precise kind may have its own number.
_SLURM_ERRNO: dict[type[Refusal], int] = {
    DependencyProblem: ESLURM_DEPENDENCY,
    InvalidPartition: ESLURM_INVALID_PARTITION_NAME,
    InvalidNodeName: ESLURM_INVALID_NODE_NAME,
    UnknownUser: ESLURM_USER_ID_MISSING,
    Unsatisfiable: ESLURM_REQUESTED_NODE_CONFIG_UNAVAILABLE,
    Forbidden: ESLURM_ACCESS_DENIED,
    NotFound: ESLURM_INVALID_JOB_ID,
    AlreadyDone: ESLURM_ALREADY_DONE,
    Conflict: ESLURM_TRANSITION_STATE_NO_UPDATE,
}


def slurm_errno(refusal: Refusal, default: int = ESLURM_REST_INVALID_JOBS_DESC) -> int:
    """The Slurm error number of a refusal, chosen by its kind."""
    for kind in type(refusal).__mro__:
        if kind in _SLURM_ERRNO:
            return _SLURM_ERRNO[kind]
    return default


class _Context(Protocol):
    """What these routes use of the application's context (api/app.py's AppContext)."""

    store: Store
    jobs: JobService
    nodes: NodeService
    hostname: str

    def live_after(self) -> datetime: ...


def _ctx(request: Request) -> _Context:
    ctx: _Context = request.app.state.ctx
    return ctx


def _jobs(request: Request) -> JobService:
    return _ctx(request).jobs


def _store(request: Request) -> Store:
    return _ctx(request).store


@router.post("/job/submit", responses={200: {"headers": REPLAYED_HEADER_DOC}})
async def submit(
    request: Request, response: Response, principal: CurrentPrincipal, idempotency_key: IdempotencyKey = None
) -> Any:
    """`v0.0.40_job_submit_req` -> `v0.0.40_openapi_job_submit_response`.

    An `Idempotency-Key` header works as on `POST /jobs/submit` (services/idempotency.py),
    through the same service: a retry with the same key and job is answered with the first
    job id and `Idempotent-Replayed: true`. slurmrestd has no such header; ours is an addition."""

    def fail(status: int, description: str, error_number: int, error: str, source: str) -> JSONResponse:
        return error_response(
            request, status, description, error_number=error_number, error=error, source=source, principal=principal
        )

    try:  # an empty value is a bad key, not none
        key = None
        if idempotency_key is not None:
            key = idempotency.submission_key(request.headers.getlist(idempotency.HEADER))
    except Invalid as exc:
        return fail(exc.status, str(exc), ESLURM_REST_FAIL_PARSING, "Invalid request header", idempotency.HEADER)
    try:
        body = await request.json()
    except (ValueError, RecursionError):
        return fail(400, "request body is not valid JSON", ESLURM_REST_FAIL_PARSING, "Failed to parse request", "job/submit")
    parsed = _parse_submit(body)
    if isinstance(parsed, tuple) and len(parsed) == 4:
        return fail(400, *parsed)
    request_model, ignored = parsed
    host = request.client.host if request.client else None
    jobs = _jobs(request)
    try:
        if _store(request).dialect == "sqlite":
            result = jobs.submit(principal, request_model, client_host=host, key=key)
        else:
            result = await run_in_threadpool(jobs.submit, principal, request_model, client_host=host, key=key)
    except Invalid as exc:
        if exc.field == idempotency.HEADER:  # the key of another request: no field of the job
            return fail(exc.status, str(exc), slurm_errno(exc), "Job submission failed", idempotency.HEADER)
        source = f"job.{exc.field}" if exc.field else "job"
        return fail(exc.status, str(exc), slurm_errno(exc), "Invalid job description", source)
    except Refusal as exc:
        return fail(exc.status, str(exc), slurm_errno(exc), "Job submission failed", "job/submit")
    assert isinstance(result, Submitted)  # slurmrestd has no test_only (refused above)
    if result.replayed:
        response.headers[idempotency.REPLAYED_HEADER] = "true"
    job_id = result.job_ids[0]
    warnings = [
        {"description": f"field '{name}' of job_desc_msg is not supported and was ignored", "source": f"job.{name}"}
        for name in ignored
    ]
    return {
        "job_id": job_id,
        "step_id": "batch",
        "job_submit_user_msg": "",
        "result": {
            "job_id": job_id,
            "step_id": "batch",
            "error_code": 0,
            "error": "No error",
            "job_submit_user_msg": "",
        },
        "meta": meta(request, principal),
        "errors": [],
        "warnings": warnings,
    }


def _parse_submit(body: Any) -> tuple[models.SubmitRequest, list[str]] | tuple[str, int, str, str]:
    """The request for the main route and the ignored fields, or (description, error number,
    error, source) of what is wrong with the body."""
    invalid = "Invalid job description"
    if not isinstance(body, dict):
        return "the body must be an object {\"script\": ..., \"job\": {...}}", ESLURM_REST_INVALID_JOBS_DESC, invalid, "job/submit"
    if body.get("jobs"):
        return "jobs: heterogeneous jobs are not supported; submit one job with \"job\"", ESLURM_REST_INVALID_JOBS_DESC, invalid, "jobs"
    job = body.get("job")
    if not isinstance(job, dict):
        return "job: a job description object is required", ESLURM_REST_INVALID_JOBS_DESC, invalid, "job"
    script = body.get("script") or job.get("script")
    if not isinstance(script, str) or not script:
        return (
            "script: a batch script is required (in \"script\" or \"job.script\")",
            ESLURM_REST_INVALID_JOBS_DESC, "Batch script is empty or only whitespace", "script",
        )
    if job.get("test_only"):
        return "test_only: not supported by this API", ESLURM_REST_INVALID_JOBS_DESC, invalid, "job.test_only"
    try:
        described, ignored = to_job_description(job)
        return models.SubmitRequest(job=models.JobDescription(**described), script=script), ignored
    except SpecError as exc:
        return str(exc), ESLURM_REST_INVALID_JOBS_DESC, invalid, f"job.{exc.field}"
    except ValidationError as exc:
        first = problems(exc.errors(), drop=("job",))[0]
        return f"{first.field}: {first.message}", ESLURM_REST_INVALID_JOBS_DESC, invalid, f"job.{first.field}"


# ------------------------------------------------------------------- jobs
def job_infos(jobs: JobService, rows: list[Job]) -> list[dict[str, Any]]:
    """`job_info` of each job, its dependency as slurmctld keeps it: the conditions not
    fulfilled yet, with their state (cli/dependency_states.py says more)."""
    waiting = [r.id for r in rows if r.dependency and r.start_time is None]
    shown = jobs.dependency_states(waiting) if waiting else {}
    return [job_info(r, shown.get(r.id)) for r in rows]


def _jobs_response(request: Request, principal: Principal, rows: list[Job]) -> dict[str, Any]:
    now = int(time.time())
    return {
        "jobs": job_infos(_jobs(request), rows),
        "last_backfill": number(None),
        "last_update": number(now),
        "meta": meta(request, principal),
        "errors": [],
        "warnings": [],
    }


# Jobs per page of a streamed listing: each page is one short read and one chunk of JSON.
LISTING_PAGE = 500


def _dumps(value: Any) -> bytes:
    """JSON as JSONResponse writes it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _jobs_stream(request: Request, principal: Principal, **filters: Any) -> StreamingResponse:
    """`_jobs_response` for every job matching `filters`, written as it is read.

    slurmrestd's listing has no paging: its contract is every job. Built whole, 100,000 jobs
    cost seconds and hundreds of megabytes per request, and the serialization held the GIL
    that the scheduler and worker threads of `conductor up` need. Streamed, one page of jobs
    at a time is read and encoded (in a worker thread), written, and let go; the event loop
    and the other threads run between pages, and a client that reads slowly holds the
    listing back (the transport's flow control) rather than filling memory.
    """
    store = _store(request)
    jobs = _jobs(request)
    rest = _jobs_response(request, principal, [])
    del rest["jobs"]
    tail = b"]," + _dumps(rest)[1:]  # the object's other members, after the list

    def encode(pages: Iterator[list[Job]]) -> bytes | None:
        rows = next(pages, None)
        return None if rows is None else _dumps(job_infos(jobs, rows))[1:-1]

    async def body() -> AsyncIterator[bytes]:
        pages = store.job_pages(page_size=LISTING_PAGE, **filters)
        opening, first = b'{"jobs":[', True
        while (chunk := await run_in_threadpool(encode, pages)) is not None:
            yield (opening if first else b",") + chunk
            first = False
        yield (opening if first else b"") + tail

    return StreamingResponse(body(), media_type="application/json")


@router.get("/job/{job_id}")
def get_job(job_id: str, request: Request, principal: CurrentPrincipal) -> Any:
    """`v0.0.40_openapi_job_info_resp` for one job, one task (`123_4`), or every task of an array."""
    store = _store(request)
    try:
        target = _jobs(request).resolve(job_id, slurm_array_ids=True)
    except Refusal as exc:
        return error_response(
            request, exc.status, str(exc), error_number=ESLURM_INVALID_JOB_ID,
            error="Invalid job id specified", source=f"job/{job_id[:40]}", principal=principal,
        )
    if target.whole_array:  # up to CONDUCTOR_MAX_ARRAY_TASKS tasks
        return _jobs_stream(request, principal, array_job_ids=[target.ids[0]])
    row = store.get_job(target.ids[0])
    return _jobs_response(request, principal, [row] if row is not None else [])


@router.get("/jobs")
def get_jobs(request: Request, principal: CurrentPrincipal, update_time: str | None = None) -> Any:
    """Every job slurmctld would still know: not ended, or ended within MinJobAge (300 s)."""
    since = utcnow() - MIN_JOB_AGE
    if update_time:
        if not (update_time.isascii() and update_time.isdigit()):
            return error_response(
                request, 400, "update_time: expected UNIX seconds", error_number=ESLURM_REST_INVALID_QUERY,
                error="Invalid query", source="update_time", principal=principal,
            )
    return _jobs_stream(request, principal, since=since)


@router.delete("/job/{job_id}")
def delete_job(
    job_id: str, request: Request, principal: CurrentPrincipal, signal: str | None = None, flags: str | None = None
) -> Any:
    """Cancel a job (every task of an array given by its id), or send it `signal`."""
    number_ = int(posix_signal.SIGKILL)
    if signal:
        try:
            number_ = parse_signal(signal, field="signal")
        except SpecError as exc:
            return error_response(
                request, 400, str(exc), error_number=ESLURM_REST_INVALID_QUERY, error="Invalid signal",
                source="signal", principal=principal,
            )
    # As slurmctld: BATCH_JOB the batch shell, FULL_JOB every process, else the steps alone.
    named = [flag.strip() for flag in (flags or "").upper().split(",")]
    batch_only = "BATCH_JOB" in named
    steps_only = not batch_only and "FULL_JOB" not in named
    try:
        _jobs(request).signal(
            principal, job_id, number_, batch_only=batch_only, steps_only=steps_only, slurm_array_ids=True,
            action="cancel it",
        )
    except Refusal as exc:
        errors = {
            ESLURM_INVALID_JOB_ID: "Invalid job id specified",
            ESLURM_ACCESS_DENIED: "Access/permission denied",
            ESLURM_ALREADY_DONE: "Job/step already completing or completed",
        }
        errno = slurm_errno(exc, ESLURM_INVALID_JOB_ID)
        return error_response(
            request, exc.status, str(exc), error_number=errno, error=errors.get(errno, "Job can not be altered now"),
            source=f"job/{job_id[:40]}", principal=principal,
        )
    return {"meta": meta(request, principal), "errors": [], "warnings": []}


# ------------------------------------------------------------------ nodes
def _node_state(state: str, alloc: int, cpus: int, drained: bool = False) -> list[str]:
    """The base state, then the flags (DRAIN), as slurmrestd lists them."""
    flags = ["DRAIN"] if drained else []
    if state != "UP":
        return [state, *flags]
    if alloc == 0:
        return ["IDLE", *flags]
    return ["ALLOCATED" if alloc >= cpus else "MIXED", *flags]


def _node_entry(n: NodeInfo, machine: str, system: str) -> dict[str, Any]:
    """`v0.0.40_node`."""
    drain = n.drain  # Slurm has one reason for both: the administrator's drain wins
    return {
        "name": n.name,
        "hostname": n.name,
        "address": n.name,
        "architecture": machine,
        "operating_system": system,
        "state": _node_state(n.state, n.alloc_cpus, n.cpus, drain is not None),
        "reason": drain.reason if drain is not None else (n.reason or ""),
        "cpus": n.cpus,
        "effective_cpus": n.cpus,
        "alloc_cpus": n.alloc_cpus,
        "alloc_idle_cpus": n.cpus - n.alloc_cpus,
        "sockets": n.cpus,  # a node declared by its CPUs alone: one core a socket (as scontrol shows it)
        "cores": 1,
        "threads": 1,
        "boards": 1,
        "real_memory": n.memory_mb,
        "alloc_memory": n.alloc_memory_mb,
        "free_mem": number(n.memory_mb - n.alloc_memory_mb),
        "partitions": n.partitions,
        "features": [],
        "active_features": [],
        "gres": "",
        "gres_used": "",
        "tres": f"cpu={n.cpus},mem={n.memory_mb}M,billing={n.cpus}",
        "tres_used": f"cpu={n.alloc_cpus},mem={n.alloc_memory_mb}M",
        "weight": 1,
        "version": ".".join(SLURM_RELEASE),
        "comment": "",
        "last_busy": _epoch(n.last_heartbeat),
        "boot_time": number(None),
        "slurmd_start_time": number(None),
        "reason_changed_at": _epoch(drain.time if drain is not None else None),
        "reason_set_by_user": drain.user if drain is not None else "",
    }


def _nodes_response(request: Request, principal: Principal, name: str | None = None) -> dict[str, Any] | None:
    """`v0.0.40_openapi_nodes_resp`: every node, or node `name` alone (None: no such node)."""
    ctx = _ctx(request)
    machine, system = platform.machine(), f"{platform.system()} {platform.release()}"
    listed = ctx.store.list_nodes(live_after=ctx.live_after())
    out = [_node_entry(n, machine, system) for n in listed if name is None or n.name == name]
    if name is not None and not out:
        return None
    return {"nodes": out, "last_update": number(int(time.time())), "meta": meta(request, principal),
            "errors": [], "warnings": []}


@router.get("/nodes")
def get_nodes(request: Request, principal: CurrentPrincipal) -> Any:
    """`v0.0.40_openapi_nodes_resp`."""
    return _nodes_response(request, principal)


def _no_node(request: Request, principal: Principal, name: str) -> JSONResponse:
    return error_response(
        request, 404, f"Invalid node name specified: '{name[:64]}'", error_number=ESLURM_INVALID_NODE_NAME,
        error="Invalid node name specified", source=f"node/{name[:40]}", principal=principal,
    )


@router.get("/node/{node_name}")
def get_node(node_name: str, request: Request, principal: CurrentPrincipal) -> Any:
    """`v0.0.40_openapi_nodes_resp` holding one node."""
    found = _nodes_response(request, principal, node_name)
    return found if found is not None else _no_node(request, principal, node_name)


# The fields of `v0.0.40_update_node_msg` this API applies; the others (features, weight,
# comment, ...) change what this scheduler does not model, and are refused rather than ignored:
# an update that silently did nothing would mislead.
_NODE_UPDATE_FIELDS = ("state", "reason")


@router.post("/node/{node_name}")
async def update_node(node_name: str, request: Request, principal: CurrentPrincipal) -> Any:
    """`v0.0.40_update_node_msg` -> `v0.0.40_openapi_resp`: an administrator's drain
    (`{"state": ["DRAIN"], "reason": "..."}`), `RESUME` or `UNDRAIN`, as `scontrol update
    NodeName=... State=...` and `POST /nodes/{name}/state` (the same service, the same rules)."""
    source = f"node/{node_name[:40]}"

    def fail(status: int, description: str, error_number: int, error: str, where: str = source) -> JSONResponse:
        return error_response(
            request, status, description, error_number=error_number, error=error, source=where, principal=principal
        )

    try:
        body = await request.json()
    except (ValueError, RecursionError):
        return fail(400, "request body is not valid JSON", ESLURM_REST_FAIL_PARSING, "Failed to parse request")
    if not isinstance(body, dict):
        return fail(400, "the body must be an object such as {\"state\": [\"DRAIN\"], \"reason\": \"...\"}",
                    ESLURM_REST_FAIL_PARSING, "Failed to parse request")
    unknown = sorted(str(field) for field in body if field not in _NODE_UPDATE_FIELDS)
    if unknown:
        return fail(400, f"{unknown[0]}: not supported by this API (it updates {' and '.join(_NODE_UPDATE_FIELDS)})",
                    ESLURM_REST_FAIL_PARSING, "Failed to parse request", unknown[0])
    states = body.get("state")
    if isinstance(states, str):
        states = [states]
    if not (isinstance(states, list) and len(states) == 1 and isinstance(states[0], str)):
        return fail(400, "state: one of DRAIN, RESUME or UNDRAIN, as a list of one (\"state\": [\"DRAIN\"])",
                    ESLURM_INVALID_NODE_STATE, "Invalid node state specified", "state")
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        return fail(400, "reason: must be a string", ESLURM_REST_FAIL_PARSING, "Failed to parse request", "reason")
    try:
        change = NodeStateChange(state=states[0], reason=reason)
    except ValidationError as exc:
        found = problems(exc.errors())[0]
        where = found.field or "state"
        errno = ESLURM_INVALID_NODE_STATE if where == "state" else ESLURM_REST_FAIL_PARSING
        return fail(400, f"{where}: {found.message}", errno, "Invalid node update", where)
    try:
        await run_in_threadpool(_ctx(request).nodes.set_state, principal, node_name, change)
    except NotFound:
        return _no_node(request, principal, node_name)
    except Forbidden as exc:
        return fail(exc.status, str(exc), ESLURM_ACCESS_DENIED, "Access/permission denied")
    except Refusal as exc:  # a drain without a reason; nothing to resume
        where = exc.field or "state"
        return fail(exc.status, str(exc), ESLURM_INVALID_NODE_STATE, "Invalid node state specified", where)
    return {"meta": meta(request, principal), "errors": [], "warnings": []}


@router.get("/ping")
def ping(request: Request, principal: CurrentPrincipal) -> Any:
    """`v0.0.40_openapi_ping_array_resp`: the controller (this API and its database)."""
    ctx = _ctx(request)
    started = time.perf_counter()
    try:
        ctx.store.ping()
        pinged = "UP"
    except Exception:  # noqa: BLE001 - an unreachable database is "DOWN", said in the answer
        pinged = "DOWN"
    latency = int((time.perf_counter() - started) * 1_000_000)
    return {
        "pings": [{"hostname": ctx.hostname or os.uname().nodename, "pinged": pinged, "latency": latency, "mode": "primary"}],
        "meta": meta(request, principal),
        "errors": [],
        "warnings": [],
    }
