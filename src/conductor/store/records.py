"""What the store hands in and out: typed records of jobs, reports and outcomes."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from conductor.domain.job import Job, JobRun, JobSummary
from conductor.domain.states import JobState, Reason
from conductor.store.engine import TIME_COLUMNS, aware, utcnow

# What `ControlOutcome.skipped` says when the state alone does not explain why an action did
# not apply.
NOT_HELD = "NOT_HELD"
BEING_STOPPED = "BEING_STOPPED"


@dataclass(slots=True)
class Finish:
    """What a worker reports when a job's process has ended (or could not start)."""

    job_id: int
    state: JobState
    exit_code: str | None
    reason: str = Reason.NONE.value
    error_msg: str | None = None
    # The job's usage (conductor.domain.usage.Usage.as_dict), kept as JSON.
    rusage: dict[str, object] | None = None
    end_time: datetime = field(default_factory=utcnow)
    # Which run of the job this reports (node and restart_count at launch). When set, a report
    # about an earlier run of a job that was requeued meanwhile ends nothing.
    node: str | None = None
    restart_count: int | None = None

    def about_run(self, node_list: str | None, restart_count: int) -> bool:
        """Whether this reports the run of a job now on `node_list` at `restart_count`.

        A worker that was declared dead may report, once it is back, the end of a run the
        scheduler already ended or requeued; that report must not end the job's new run.
        """
        return (self.node is None or node_list == self.node) and (
            self.restart_count is None or restart_count == self.restart_count
        )


@dataclass(slots=True)
class CancelOutcome:
    job_id: int
    found: bool
    state: str | None = None
    message: str = ""
    node: str | None = None


@dataclass(slots=True)
class ControlOutcome:
    """What an action on jobs did: ids it changed, ids it skipped with their state (or
    NOT_HELD / BEING_STOPPED), the ids that exist, and the nodes whose workers must wake."""

    changed: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    found: set[int] = field(default_factory=set)
    nodes: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Stats:
    total_cpus: int
    used_cpus: int
    available_cpus: int
    running_jobs: int
    pending_jobs: int


@dataclass(slots=True)
class NodeInfo:
    name: str
    cpus: int
    cpu_ids: str
    cpu_binding: bool
    memory_mb: int
    partitions: list[str]
    state: str
    reason: str | None
    last_heartbeat: datetime | None
    alloc_cpus: int
    alloc_memory_mb: int
    running_jobs: int
    instance: str | None = None
    containment: str | None = None  # cgroup-v2, cgroup-v1 or polling, as its worker found
    # Drained by an administrator (None: not drained): no new job is placed on it.
    drain: NodeDrain | None = None


@dataclass(frozen=True, slots=True)
class NodeDrain:
    """An administrator's drain of a node: why, who, since when."""

    reason: str
    user: str
    time: datetime


@dataclass(frozen=True, slots=True)
class DrainOutcome:
    """What draining or resuming a node did. `drain`: the drain in force after DRAIN (a new one,
    or the same one when it already had that reason), or the one RESUME cleared (None: the node
    was not drained). `live`: whether its worker is heartbeating (as `live_after` says)."""

    found: bool
    changed: bool = False
    drain: NodeDrain | None = None
    live: bool = False


@dataclass(frozen=True, slots=True)
class SubmissionKey:
    """A submission's Idempotency-Key and the digest of its request (services/idempotency.py),
    stored on the job it makes (an array's first task)."""

    key: str
    digest: str


@dataclass(frozen=True, slots=True)
class KeyedSubmission:
    """What a user's submission with a key stored: its request's digest and the job ids it was
    answered with (an array's tasks in order)."""

    digest: str
    job_ids: list[int]
    array: bool


@dataclass(frozen=True, slots=True)
class DependencyTarget:
    """A job's dependency as submitted, and its own array task id (what aftercorr pairs)."""

    text: str
    array_task_id: int | None = None


@dataclass(frozen=True, slots=True)
class SingletonState:
    """Jobs of one (user, name): whether one runs, and the lowest id among the pending ones."""

    running: bool
    first_pending_id: int | None


@dataclass(slots=True)
class Reaped:
    """What one reaping pass did: nodes declared DOWN, jobs ended, jobs back to PENDING."""

    nodes: list[str] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)


# ------------------------------------------------------------------ job records
_BOOLEAN_COLUMNS = frozenset({"exclusive", "held", "requeue", "launched"})
_JOB_FIELDS = tuple(Job.__dataclass_fields__)
_OPTIONAL_JOB_FIELDS = frozenset(
    {"script", "environment", "expected_start_time", "sched_nodes", "cancelled_by", "req_nodes", "exc_nodes"}
)
_RUN_FIELDS = tuple(JobRun.__dataclass_fields__)


def _value(name: str, value: Any) -> Any:
    if name in TIME_COLUMNS:
        return aware(value)
    if name in _BOOLEAN_COLUMNS:
        return bool(value)
    return value


def job_from_row(row: Mapping[Any, Any]) -> Job:
    """The one place a row of `jobs` becomes a `Job` (SQLite's naive times made UTC, its
    integers made booleans); columns not read (`script`, `environment`) stay None."""
    keys = tuple(row.keys())
    return _job_builder(keys)([row[k] for k in keys])


def jobs_from_rows(keys: Iterable[str], rows: Iterable[Sequence[Any]]) -> list[Job]:
    """`job_from_row` for every row of a result whose columns are `keys`: the columns are
    matched to fields once, not once a row (a page of 1,000 jobs was 70 ms of look-ups)."""
    build = _job_builder(tuple(keys))
    return [build(row) for row in rows]


def _converter(name: str) -> Callable[[Any], Any] | None:
    return aware if name in TIME_COLUMNS else bool if name in _BOOLEAN_COLUMNS else None


@functools.lru_cache(maxsize=64)
def _job_builder(keys: tuple[str, ...]) -> Callable[[Sequence[Any]], Job]:
    where = {key: index for index, key in enumerate(keys)}
    plan: list[tuple[int | None, Callable[[Any], Any] | None]] = []
    for name in _JOB_FIELDS:
        index = where.get(name)
        if index is None and name not in _OPTIONAL_JOB_FIELDS:
            raise KeyError(f"a job read without its column {name!r}")
        plan.append((index, _converter(name)))

    # One C-level gather puts every column where its field goes (a field without a column
    # takes the None appended to the row); only the columns that need it are converted after.
    width = len(keys)
    gather = operator.itemgetter(*[width if index is None else index for index, _ in plan])
    conversions = [
        (target, convert) for target, (index, convert) in enumerate(plan) if index is not None and convert is not None
    ]

    def build(row: Sequence[Any]) -> Job:
        values: list[Any] = list(gather((*row, None)))
        for target, convert in conversions:
            values[target] = convert(values[target])
        return Job(*values)

    return build


Processor = Callable[[Any], Any] | None


def partial_jobs(keys: tuple[str, ...], processors: tuple[Processor, ...], rows: Iterable[tuple[Any, ...]]) -> list[Job]:
    """Jobs read with chosen columns `keys`, from the driver's own rows (before SQLAlchemy's
    result `processors`, one a column, ran on them).

    Each job is its row itself, as a tuple whose class names the columns: a field read is a
    property that takes its item and converts it then (the processor, then what job_from_row
    does), so a row costs one C-level tuple copy however many fields it has, and a value no
    view reads (a pending job's times) is never parsed. Setting 20 fields of a Job one by one
    was most of the cost of a view's page.

    They stand for Jobs to what reads them (the fields a view projects). A field whose column
    was not read has no property: reading it raises AttributeError, so a view that reads a
    column it did not ask for fails loudly rather than showing a blank."""
    make = functools.partial(tuple.__new__, _partial_class(keys, processors))
    return [make(row) for row in rows]  # type: ignore[misc]


@functools.lru_cache(maxsize=64)
def _partial_class(keys: tuple[str, ...], processors: tuple[Processor, ...]) -> type[tuple[Any, ...]]:
    raw: dict[str, int] = {}  # the columns read as the driver gives them: where they are
    attributes: dict[str, Any] = {"__slots__": (), "_raw_columns": raw}
    for index, (name, process) in enumerate(zip(keys, processors, strict=True)):
        if name not in Job.__dataclass_fields__:
            continue
        item = operator.itemgetter(index)
        steps = [step for step in (process, _converter(name)) if step is not None]
        attributes[name] = property(item if not steps else _read(item, steps))
        if not steps:
            raw[name] = index
    return type("PartialJob", (tuple,), attributes)


def field_reader(kind: object, names: Sequence[str]) -> Callable[[Any], tuple[Any, ...]]:
    """The named fields of a job of class `kind` (a Job, or what `partial_jobs` makes), as
    one tuple. For jobs of a read of chosen columns whose values need no conversion it is one
    C-level itemgetter of the row: reading them one property at a time was a fifth of the
    cost of a view's page."""
    raw: dict[str, int] | None = getattr(kind, "_raw_columns", None)
    getter: Callable[[Any], Any]
    if raw is not None and all(name in raw for name in names):
        getter = operator.itemgetter(*[raw[name] for name in names])
    else:
        getter = operator.attrgetter(*names)
    if len(names) == 1:
        single = getter
        return lambda job: (single(job),)
    return getter


def _read(item: Callable[[Any], Any], steps: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    if len(steps) == 1:
        step = steps[0]
        return lambda row: step(item(row))
    first, second = steps
    return lambda row: second(first(item(row)))


def run_from_row(row: Mapping[Any, Any]) -> JobRun:
    return JobRun(**{name: _value(name, row[name]) for name in _RUN_FIELDS})


def summary_from_row(row: Mapping[Any, Any]) -> JobSummary:
    return JobSummary(**{name: _value(name, row[name]) for name in JobSummary.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One transition of a job (the `job_events` audit log)."""

    id: int
    job_id: int
    time: datetime
    from_state: str | None
    to_state: str
    reason: str | None
    node: str | None
    message: str | None


def event_from_row(row: Mapping[Any, Any]) -> JobEvent:
    return JobEvent(**{**row, "time": aware(row["time"])})


@dataclass(frozen=True, slots=True)
class Token:
    """An API token as the store keeps it: only its hash, never the token itself."""

    id: int
    user_name: str
    admin: bool
    token_hash: str | None = None  # read only to look a token up
    created_at: datetime | None = None
    revoked_at: datetime | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class QueueCount:
    """Live jobs (PENDING or RUNNING) of one partition with one reason, counted."""

    state: str
    partition: str
    reason: str
    jobs: int


@dataclass(frozen=True, slots=True)
class Transition:
    """One event of the job history with what a log line and the counters need of its job."""

    event_id: int
    job_id: int
    time: datetime
    from_state: str | None
    to_state: str
    reason: str | None
    node: str | None
    message: str | None
    user: str | None
    submit_time: datetime | None


@dataclass(frozen=True, slots=True)
class UtilisationSample:
    """The cluster's load at one moment (the dashboard's chart)."""

    time: datetime
    total_cpus: int
    used_cpus: int
    running_jobs: int
    pending_jobs: int
