"""A job as the native API shows it (`JobRecord`), whole or as a selection of its fields.

`GET /jobs?fields=...` returns only the named fields of each job, and reads only the columns
they are computed from: squeue's default view of 11,000 live jobs needs 20 of the record's 46
fields (22 of 56 columns), and building the rest (paths, usage, times...) was most of a page's
cost. `FIELDS` says, for every field, which columns it comes from and how; a test checks that
each selected field equals the same field of the whole record.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi.responses import Response

from conductor.api import models
from conductor.domain.hostlist import compress_hostlist
from conductor.domain.job import Job, ending_state
from conductor.domain.jobfiles import job_paths
from conductor.domain.priority import scheduling_priority
from conductor.domain.states import JobState
from conductor.domain.usage import parse_usage
from conductor.errors import Invalid
from conductor.store.records import field_reader


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def elapsed_seconds(job: Job, now: datetime) -> int:
    start = job.start_time
    if start is None:
        return 0
    end = job.end_time or now
    return max(int((end - start).total_seconds()), 0)


def job_usage(job: Job) -> models.JobUsage | None:
    usage = parse_usage(job.rusage)
    if usage is None:
        return None
    return models.JobUsage(
        user_cpu=usage.user_cpu,
        system_cpu=usage.system_cpu,
        total_cpu=usage.total_cpu,
        max_rss=usage.max_rss,
        ave_rss=usage.ave_rss,
        max_vmsize=usage.max_vmsize,
        oom_kills=usage.oom_kills,
        source=usage.source,
        steps=[
            models.JobStepUsage(
                step_id=step.step_id,
                name=step.name,
                state=step.state,
                exit_code=step.exit_code,
                ntasks=step.ntasks,
                start_time=datetime.fromtimestamp(step.start, UTC).isoformat(),
                end_time=datetime.fromtimestamp(step.end, UTC).isoformat(),
                elapsed=int(step.end - step.start),
                user_cpu=step.user_cpu,
                system_cpu=step.system_cpu,
                total_cpu=step.total_cpu,
                max_rss=step.max_rss,
            )
            for step in usage.steps
        ],
    )


def host_list(names: str | None) -> str | None:
    """Stored node names (comma-separated) as Slurm shows a list of them: node[1-3],gpu2."""
    if not names or "," not in names:
        return names or None
    return _compressed(names)


@functools.lru_cache(maxsize=256)
def _compressed(names: str) -> str:
    # An array's tasks, and a site's jobs, exclude the same few lists: compressed once each.
    return compress_hostlist(names.split(","))


def job_command(job: Job) -> str | None:
    """The `command` the submission gave (kept with the job's other submission details)."""
    if not job.extra or '"command"' not in job.extra:  # most jobs: no parse
        return None
    value = json.loads(job.extra).get("command")
    return value if isinstance(value, str) else None


def _scheduling_priority(job: Job, priority: int | None) -> int:
    return priority if priority is not None else scheduling_priority(job.priority, job.nice, bool(job.held))


def job_record(job: Job, now: datetime, priority: int | None = None) -> models.JobRecord:
    """`priority`: the multifactor priority of a pending job (None: as stored)."""
    paths = job_paths(job)
    pending = job.state == JobState.PENDING.value
    ending = ending_state(job)
    return models.JobRecord(
        job_id=job.id,
        array_job_id=job.array_job_id,
        array_task_id=job.array_task_id,
        array_max_running=job.array_max_running,
        array_spec=job.array_spec,
        name=job.name,
        user=job.user_name,
        account=job.account,
        partition=job.partition,
        state=job.state,
        reason=job.reason,
        priority=job.priority,
        nice=job.nice,
        cpus_per_task=job.cpus_per_task,
        ntasks=job.ntasks,
        ntasks_per_node=job.ntasks_per_node,
        memory_per_node_mb=job.memory_per_node_mb,
        memory_per_cpu_mb=job.memory_per_cpu_mb,
        allocated_cpus=job.allocated_cpus,
        cpu_ids=job.cpu_ids,
        node_list=job.node_list,
        submit_time=iso(job.submit_time),
        eligible_time=iso(job.eligible_time),
        start_time=iso(job.start_time),
        end_time=iso(job.end_time),
        elapsed=elapsed_seconds(job, now),
        time_limit=job.time_limit,
        exit_code=job.exit_code,
        error_msg=job.error_msg,
        work_dir=job.work_dir,
        standard_output=paths.stdout,
        standard_error=paths.stderr,
        standard_input=paths.stdin,
        dependency=job.dependency,
        hold=bool(job.held),
        begin_time=iso(job.begin_time),
        requeue=bool(job.requeue),
        restart_count=job.restart_count,
        comment=job.comment,
        qos=job.qos,
        exclusive=bool(job.exclusive),
        cancel_requested=job.kill_state == JobState.CANCELLED.value,
        scheduling_priority=_scheduling_priority(job, priority),
        expected_start_time=iso(job.expected_start_time) if pending else None,
        sched_nodes=job.sched_nodes if pending else None,
        command=job_command(job),
        cancelled_by=job.cancelled_by,
        required_nodes=host_list(job.req_nodes),
        excluded_nodes=host_list(job.exc_nodes),
        ending_state=ending,
        ending_time=iso(job.kill_time) if ending else None,
        usage=job_usage(job),
    )


# The value of one field: (job, now, its multifactor priority or None) -> what JSON holds.
Value = Callable[[Job, datetime, "int | None"], Any]


@dataclass(frozen=True, slots=True)
class Field:
    columns: tuple[str, ...]  # the jobs columns the value is computed from
    value: Value
    # The field is this column's value as it is: a projection takes all such fields of a job
    # with one C-level getter (store.records.field_reader) instead of a Python call each.
    column: str | None = None


def _column(name: str) -> Field:
    return Field((name,), lambda job, now, priority: getattr(job, name), column=name)


def _instant(name: str) -> Field:
    return Field((name,), lambda job, now, priority: iso(getattr(job, name)))


def _flag(name: str) -> Field:
    return Field((name,), lambda job, now, priority: bool(getattr(job, name)))


def _usage(job: Job, now: datetime, priority: int | None) -> Any:
    usage = job_usage(job)
    return None if usage is None else usage.model_dump(mode="json")


# What the output-file names are expanded from (domain/jobfiles.py).
_PATH_COLUMNS = (
    "id", "array_job_id", "array_task_id", "name", "user_name", "node_list", "work_dir",
    "standard_output", "standard_error", "standard_input",
)
# What a job's scheduling priority is computed from without multifactor weights (its own
# priority, nice and hold: domain/priority.py), and with them (api/cluster.py, PriorityView).
_PRIORITY_COLUMNS = ("state", "held", "priority", "nice")
_MULTIFACTOR_COLUMNS = (
    *_PRIORITY_COLUMNS, "cpus_per_task", "ntasks", "partition", "user_name", "qos", "account", "eligible_time",
    "submit_time",
)

FIELDS: dict[str, Field] = {
    "job_id": _column("id"),
    **{name: _column(name) for name in (
        "array_job_id", "array_task_id", "array_max_running", "array_spec", "name", "account", "partition",
        "state", "reason", "priority", "nice", "cpus_per_task", "ntasks", "ntasks_per_node", "memory_per_node_mb",
        "memory_per_cpu_mb", "allocated_cpus", "cpu_ids", "node_list", "time_limit", "exit_code", "error_msg",
        "work_dir", "dependency", "restart_count", "comment", "qos", "cancelled_by",
    )},
    "user": _column("user_name"),
    **{name: _instant(name) for name in ("submit_time", "eligible_time", "start_time", "end_time", "begin_time")},
    "elapsed": Field(("start_time", "end_time"), lambda job, now, priority: elapsed_seconds(job, now)),
    "standard_output": Field(_PATH_COLUMNS, lambda job, now, priority: job_paths(job).stdout),
    "standard_error": Field(_PATH_COLUMNS, lambda job, now, priority: job_paths(job).stderr),
    "standard_input": Field(_PATH_COLUMNS, lambda job, now, priority: job_paths(job).stdin),
    "hold": _flag("held"),
    "requeue": _flag("requeue"),
    "exclusive": _flag("exclusive"),
    "cancel_requested": Field(
        ("kill_state",), lambda job, now, priority: job.kill_state == JobState.CANCELLED.value
    ),
    "ending_state": Field(("state", "kill_state"), lambda job, now, priority: ending_state(job)),
    "ending_time": Field(
        ("state", "kill_state", "kill_time"),
        lambda job, now, priority: iso(job.kill_time) if ending_state(job) else None,
    ),
    "scheduling_priority": Field(
        _MULTIFACTOR_COLUMNS, lambda job, now, priority: _scheduling_priority(job, priority)
    ),
    "expected_start_time": Field(
        ("state", "expected_start_time"),
        lambda job, now, priority: iso(job.expected_start_time) if job.state == JobState.PENDING.value else None,
    ),
    "sched_nodes": Field(
        ("state", "sched_nodes"),
        lambda job, now, priority: job.sched_nodes if job.state == JobState.PENDING.value else None,
    ),
    "command": Field(("extra",), lambda job, now, priority: job_command(job)),
    "required_nodes": Field(("req_nodes",), lambda job, now, priority: host_list(job.req_nodes)),
    "excluded_nodes": Field(("exc_nodes",), lambda job, now, priority: host_list(job.exc_nodes)),
    "usage": Field(("rusage",), _usage),
}


def selected_fields(text: str | None) -> tuple[str, ...] | None:
    """The `fields` parameter: comma-separated record fields (None: the whole record)."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise Invalid("name at least one field of a job record, or leave the parameter out", field="fields")
    unknown = [name for name in names if name not in FIELDS]
    if unknown:
        raise Invalid(
            f"{unknown[0][:40]!r} is not a field of a job record (one of: {', '.join(FIELDS)})", field="fields"
        )
    # job_id always: it is what a page's `next_after` and a client's matching go by.
    return tuple(dict.fromkeys(["job_id", *names]))


def columns_of(names: tuple[str, ...] | None, *, multifactor: bool = True) -> set[str] | None:
    """The jobs columns the named fields are computed from (None: all, for the whole record).

    `multifactor`: whether the scheduling priority is a multifactor one; without weights it
    reads 8 columns fewer (of the 21 squeue's default view reads)."""
    if names is None:
        return None
    return {
        column
        for name in names
        for column in (
            _PRIORITY_COLUMNS if name == "scheduling_priority" and not multifactor else FIELDS[name].columns
        )
    }


def project(job: Job, now: datetime, priority: int | None, names: tuple[str, ...]) -> dict[str, Any]:
    """The named fields of the job's record, as its JSON holds them."""
    kind: object = type(job)
    return _projection(names, kind)(job, now, priority)


Projection = Callable[[Job, datetime, "int | None"], dict[str, Any]]


@functools.lru_cache(maxsize=64)
def _projection(names: tuple[str, ...], kind: object) -> Projection:
    """`project` for one selection and one class of job records (jobs of one read share it),
    made once: the fields that are a column's value as it is come from one getter
    (`field_reader`); only the others cost a Python call each. (Not a row of
    `_row_projection` named: making that tuple first cost a fifth more.)"""
    plain = tuple(name for name in names if FIELDS[name].column is not None)
    computed = [(name, FIELDS[name].value) for name in names if FIELDS[name].column is None]
    gather = field_reader(kind, [str(FIELDS[name].column) for name in plain]) if plain else lambda job: ()

    def projection(job: Job, now: datetime, priority: int | None) -> dict[str, Any]:
        record = dict(zip(plain, gather(job)))  # noqa: B905 (gather gives one value per name)
        for name, value in computed:
            record[name] = value(job, now, priority)
        return record

    return projection


RowProjection = Callable[[Job, datetime, "int | None"], tuple[Any, ...]]


@functools.lru_cache(maxsize=64)
def _row_projection(names: tuple[str, ...], kind: object) -> RowProjection:
    """The named fields of a job as one row, in the order of `_row_order`: the plain fields
    first (one getter, as in _projection), then the computed ones."""
    order = _row_order(names)
    plain = tuple(name for name in order if FIELDS[name].column is not None)
    computed = [FIELDS[name].value for name in order[len(plain) :]]
    gather = field_reader(kind, [str(FIELDS[name].column) for name in plain]) if plain else lambda job: ()
    if not computed:
        return lambda job, now, priority: gather(job)

    def row(job: Job, now: datetime, priority: int | None) -> tuple[Any, ...]:
        return (*gather(job), *[value(job, now, priority) for value in computed])

    return row


def _row_order(names: tuple[str, ...]) -> tuple[str, ...]:
    return (
        *(name for name in names if FIELDS[name].column is not None),
        *(name for name in names if FIELDS[name].column is None),
    )


def _each_job(
    page: list[Job],
    made_for: Callable[[object], Callable[[Job, datetime, int | None], Any]],
    now: datetime,
    priorities: dict[int, int],
) -> list[Any]:
    """What the projection `made_for` each job's class makes of each job of `page` (a page
    holds jobs of one read, hence mostly of one class: one lookup a class, not a job)."""
    made: dict[object, Callable[[Job, datetime, int | None], Any]] = {}
    out = []
    for job in page:
        kind: object = type(job)
        make = made.get(kind)
        if make is None:
            make = made[kind] = made_for(kind)
        out.append(make(job, now, priorities.get(job.id)))
    return out


def job_page(
    page: list[Job],
    now: datetime,
    names: tuple[str, ...] | None,
    priorities_of: Callable[[list[Job]], dict[int, int]],
    *,
    total: int | None,
    next_after: int | None,
    rows: bool = False,
) -> models.JobList | Response:
    """A page of `GET /jobs`: whole records, or the named fields of each job (as JSON
    written here: the response model would add the fields left out, as nulls).

    `rows` (with `names`): each job as a list of its fields' values, in the order the page's
    `fields` gives, instead of an object. Naming every field of every job was most of a page
    of a few fields: making the objects and writing their keys took 1.5 ms of a page of
    1,000 jobs, the rows 0.15 ms, in a third of the bytes."""
    if names is None:
        priorities = priorities_of(page)
        return models.JobList(
            jobs=[job_record(job, now, priorities.get(job.id)) for job in page], total=total, next_after=next_after
        )
    # The multifactor priorities only when asked for: they cost a fair-share computation.
    priorities = priorities_of(page) if "scheduling_priority" in names else {}
    document: dict[str, Any]
    # `next_after` first: a client can ask for the next page as soon as it has this one's
    # body, and decode it while the server makes the next (cli/client.py, list_jobs).
    if rows:
        values = _each_job(page, functools.partial(_row_projection, names), now, priorities)
        document = {"next_after": next_after, "total": total, "fields": _row_order(names), "rows": values}
    else:
        jobs = _each_job(page, functools.partial(_projection, names), now, priorities)
        document = {"next_after": next_after, "total": total, "jobs": jobs}
    try:
        body = orjson.dumps(document)
    except orjson.JSONEncodeError:
        # Text orjson refuses (a lone surrogate): the standard library writes it escaped.
        body = json.dumps(document, separators=(",", ":")).encode()
    return Response(body, media_type="application/json")
