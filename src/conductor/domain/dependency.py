"""Slurm job dependencies (``sbatch --dependency``): parsing, formatting, pure evaluation.

Sources: ``sbatch(1)`` (``--dependency``) and ``update_job_dependency`` /
``_test_job_dependency_common`` / ``test_job_dependency`` in Slurm's
``src/slurmctld/job_mgr.c`` / ``depend.c``.

Model. Slurm stores one record per (type, job id) and joins *all* records with the one
separator used in the string, so ``afterok:1:2?afterok:3`` means "any of 1, 2, 3 ended
OK" and ``afterok:1:2,after:3`` means "all of them". :func:`evaluate_dependency` follows
that: every job reference of every term is one condition, and ``kind_all`` says whether
all or any of the conditions must hold.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from conductor.domain.arrays import parse_array_spec
from conductor.domain.errors import SpecError, check_length

__all__ = [
    "DEPENDENCY_TYPES",
    "Dependency",
    "DependencyResult",
    "DependencyTerm",
    "JobRef",
    "JobStatus",
    "aggregate_array_status",
    "corresponding_refs",
    "describe_dependency",
    "evaluate_dependency",
    "format_dependency",
    "parse_dependency",
]

DEPENDENCY_TYPES: tuple[str, ...] = ("after", "afterany", "afterok", "afternotok", "aftercorr", "singleton")
_UNSUPPORTED_TYPES = frozenset({"afterburstbuffer", "expand"})
_TYPE_NAMES = "after, afterany, afterok, afternotok, aftercorr or singleton"
_FORMS = (
    "type:jobid[+minutes][:jobid...] with type after, afterany, afterok, afternotok or "
    "aftercorr, or singleton; join several with ',' (all) or '?' (any)"
)
_JOB_RE = re.compile(
    r"(?P<job>\d+)(?:_(?:(?P<task>\d+)|(?P<all>\*)|\[(?P<tasks>[^\]]*)\]))?(?:\+(?P<delay>\d+))?",
    re.ASCII,
)

_ASCII_DIGITS = frozenset("0123456789")
_PENDING = "PENDING"
_COMPLETED = "COMPLETED"
# Slurm's IS_JOB_COMPLETED: every end state. Extra Slurm names (PREEMPTED, BOOT_FAIL,
# DEADLINE) are listed so a status copied from real Slurm still evaluates correctly.
_TERMINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
    }
)


@dataclass(frozen=True, slots=True, order=True)
class JobRef:
    """A job a dependency points at: ``123`` (job or whole array) or ``123_4`` (one task)."""

    job_id: int
    task_id: int | None = None

    def __str__(self) -> str:
        return str(self.job_id) if self.task_id is None else f"{self.job_id}_{self.task_id}"


@dataclass(frozen=True, slots=True)
class DependencyTerm:
    """One ``type:jobid[:jobid...]`` clause; ``singleton`` has no job ids.

    ``delay_minutes`` is the ``+time`` suffix, shared by every job id of the term (a string
    giving different delays per job is parsed into several terms, which means the same).
    """

    type: str
    job_ids: tuple[JobRef, ...] = ()
    delay_minutes: int = 0


@dataclass(frozen=True, slots=True)
class Dependency:
    """A whole ``--dependency`` value: terms joined by ``,`` (``kind_all``) or ``?``."""

    kind_all: bool
    terms: tuple[DependencyTerm, ...]

    def __str__(self) -> str:
        return format_dependency(self)


class DependencyResult(StrEnum):
    SATISFIED = "satisfied"
    WAITING = "waiting"
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class JobStatus:
    """What evaluation needs to know about a job the dependency points at."""

    state: str
    start_time: datetime | None = None
    end_time: datetime | None = None


def parse_dependency(value: str, *, field: str = "dependency") -> Dependency:
    """Parse a Slurm ``--dependency`` value.

    Grammar: ``after:jobid[+minutes][:jobid[+minutes]...]``, likewise ``afterany``,
    ``afterok``, ``afternotok``, ``aftercorr`` (type names in any case), and ``singleton``; terms joined
    by ``,`` (all must hold) or ``?`` (any may hold), not both. A job id is ``123``,
    ``123_4`` (array task), ``123_*`` (the whole array, same as ``123``) or ``123_[1-3]``
    (those tasks). The old form, bare job ids (``123,456``), means ``afterany``.
    ``afterburstbuffer`` and ``expand`` are refused as unsupported.

    Slurm documents ``+minutes`` for ``after`` only; we accept it on every job-id type and
    count it from the job's end for the end-based types.
    """
    if not isinstance(value, str):
        raise SpecError(field, f"invalid dependency {value!r}; expected {_FORMS}")
    text = value.strip()
    if not text:
        raise SpecError(field, f"empty dependency; expected {_FORMS}")
    check_length(text, field, "dependency", MAX_TEXT)  # as the API bounds it: no number in it passes int()'s limit
    # Array task lists ("123_[1,3]") may contain ',' and ':', so separators only count
    # outside brackets.
    by_comma = _split_outside_brackets(text, ",", text, field)
    by_question = _split_outside_brackets(text, "?", text, field)
    if len(by_comma) > 1 and len(by_question) > 1:
        raise SpecError(
            field,
            f"invalid dependency {text!r}: use either ',' (all must be satisfied) or '?' "
            "(any may be satisfied), not both",
        )
    kind_all = len(by_question) == 1
    terms: list[DependencyTerm] = []
    named: set[JobRef] = set()
    for token in by_comma if kind_all else by_question:
        terms.extend(_parse_term(token.strip(), text, field, named))
    return Dependency(kind_all=kind_all, terms=tuple(terms))


def _split_outside_brackets(value: str, sep: str, text: str, field: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    start = 0
    for index, char in enumerate(value):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise SpecError(field, f"invalid dependency {text!r}: ']' without '['")
        elif char == sep and depth == 0:
            parts.append(value[start:index])
            start = index + 1
    if depth:
        raise SpecError(field, f"invalid dependency {text!r}: '[' without ']'")
    parts.append(value[start:])
    return parts


def _parse_term(token: str, text: str, field: str, named: set[JobRef]) -> list[DependencyTerm]:
    if not token:
        raise SpecError(field, f"invalid dependency {text!r}: empty term between separators")
    if token.lower() == "singleton":
        return [DependencyTerm(type="singleton")]
    if token[0] in _ASCII_DIGITS and len(_split_outside_brackets(token, ":", text, field)) == 1:
        # Slurm's old format: a bare job id waits for that job to end in any state.
        return _parse_job_list("afterany", token, text, field, named)
    if ":" not in token:
        raise SpecError(
            field, f"invalid dependency {text!r}: bad term {token!r}; expected {_FORMS}"
        )
    type_name, _, jobs = token.partition(":")
    kind = type_name.strip().lower()
    if kind in _UNSUPPORTED_TYPES:
        raise SpecError(
            field,
            f"dependency type {kind!r} is not supported; use {_TYPE_NAMES}",
        )
    if kind == "singleton":
        raise SpecError(field, f"invalid dependency {text!r}: singleton takes no job ids")
    if kind not in DEPENDENCY_TYPES:
        raise SpecError(
            field,
            f"invalid dependency {text!r}: unknown type {type_name!r}; expected {_TYPE_NAMES}",
        )
    if not jobs:
        raise SpecError(field, f"invalid dependency {text!r}: {kind} needs at least one job id")
    return _parse_job_list(kind, jobs, text, field, named)


def _parse_job_list(kind: str, jobs: str, text: str, field: str, named: set[JobRef]) -> list[DependencyTerm]:
    # Consecutive job ids with the same delay share one term; a change of delay starts a new
    # one. Under Slurm's flat model this is the same dependency. A job named twice in a term
    # is one condition (kept once); `named` gathers every job of the whole dependency.
    terms: list[DependencyTerm] = []
    current: dict[JobRef, None] = {}
    current_delay = 0
    for part in _split_outside_brackets(jobs, ":", text, field):
        refs, delay = _parse_job(part, text, field)
        if current and delay != current_delay:
            terms.append(DependencyTerm(kind, tuple(current), current_delay))
            current = {}
        current.update(dict.fromkeys(refs))
        current_delay = delay
        named.update(refs)
        if len(named) > MAX_REFS:
            raise SpecError(
                field,
                f"invalid dependency {text!r}: it names more than {MAX_REFS} jobs and array tasks; "
                "an array's job id alone stands for all of its tasks",
            )
    terms.append(DependencyTerm(kind, tuple(current), current_delay))
    return terms


# Ids must fit the database's 64-bit integers, and a delay must stay a representable time.
MAX_JOB_ID = 2**63 - 1
MAX_TASK_ID = 2**31 - 1
MAX_DELAY_MINUTES = 366 * 24 * 60
# Jobs and array tasks one dependency may name, task lists expanded: each is looked up when the
# job is submitted and evaluated at every scheduling pass it waits through. Unbounded, a few
# task lists of 100,000 (the 4,096 characters of a dependency hold hundreds) cost a submission
# minutes and each of its jobs megabytes. An array's job id alone stands for all its tasks.
MAX_REFS = 1_000
# The longest dependency read, as the API's field allows.
MAX_TEXT = 4096


def _parse_job(part: str, text: str, field: str) -> tuple[list[JobRef], int]:
    match = _JOB_RE.fullmatch(part.strip())
    if match is None:
        raise SpecError(
            field,
            f"invalid dependency {text!r}: bad job id {part!r}; expected 123, 123_4, 123_* "
            "or 123_[1-3], optionally followed by +minutes",
        )
    job_id = int(match.group("job"))
    if job_id == 0:
        raise SpecError(field, f"invalid dependency {text!r}: job id 0 does not exist")
    if job_id > MAX_JOB_ID:
        raise SpecError(field, f"invalid dependency {text!r}: job id {job_id} is larger than {MAX_JOB_ID}")
    delay = 0
    if match.group("delay") is not None:
        delay = int(match.group("delay"))
        if delay == 0:
            raise SpecError(
                field, f"invalid dependency {text!r}: +time in {part!r} must be at least 1 minute"
            )
        if delay > MAX_DELAY_MINUTES:
            raise SpecError(
                field,
                f"invalid dependency {text!r}: +time in {part!r} is over {MAX_DELAY_MINUTES} minutes (one year)",
            )
    if match.group("task") is not None:
        task = int(match.group("task"))
        if task > MAX_TASK_ID:
            raise SpecError(field, f"invalid dependency {text!r}: task id {task} is larger than {MAX_TASK_ID}")
        refs = [JobRef(job_id, task)]
    elif match.group("tasks") is not None:
        try:
            spec = parse_array_spec(match.group("tasks"), field=field, max_tasks=MAX_REFS)
        except SpecError as exc:
            raise SpecError(field, f"invalid dependency {text!r}: in {part!r}, {exc.message}") from None
        if spec.max_running is not None:
            raise SpecError(field, f"invalid dependency {text!r}: %N is not allowed in {part!r}")
        refs = [JobRef(job_id, task) for task in spec.indices]
    else:
        refs = [JobRef(job_id)]
    return refs, delay


def format_dependency(dep: Dependency) -> str:
    """Write ``dep`` back in Slurm's canonical form (lower-case types, ``+N`` per job id)."""
    parts: list[str] = []
    for term in dep.terms:
        if term.type == "singleton":
            parts.append("singleton")
            continue
        suffix = f"+{term.delay_minutes}" if term.delay_minutes else ""
        parts.append(term.type + ":" + ":".join(f"{ref}{suffix}" for ref in term.job_ids))
    return ("," if dep.kind_all else "?").join(parts)


def evaluate_dependency(
    dep: Dependency,
    states: Mapping[JobRef, JobStatus],
    *,
    now: datetime,
    user_singleton_blocked: bool,
    array_task_id: int | None = None,
) -> DependencyResult:
    """Decide whether ``dep`` is satisfied, may still be, or never will be.

    ``states`` maps each referenced job to its status. A ``JobRef`` without a task id that
    names a job array stands for the whole array: the caller passes the aggregate (see
    :func:`aggregate_array_status`), as Slurm tests the array as a whole. A job missing
    from ``states`` makes its condition ``never`` (Slurm refuses submissions naming unknown
    jobs; after that, a job we cannot find can no longer satisfy anything).

    Per condition, as in Slurm's ``_test_job_dependency_common``:

    * ``after``: the job is no longer pending (it started, or was cancelled first);
    * ``afterany``: the job ended, in any state;
    * ``afterok``: it ended ``COMPLETED``; any other end is ``never``;
    * ``afternotok``: it ended in any state but ``COMPLETED`` (``FAILED``, ``TIMEOUT``,
      ``CANCELLED``, ``NODE_FAIL``, ``OUT_OF_MEMORY``...); ``COMPLETED`` is ``never``;
    * ``aftercorr``: as ``afterok``, of the task of the named array whose task id is
      ``array_task_id``, the dependent job's own (the caller passes that task's status under
      ``JobRef(job, task)``, see :func:`corresponding_refs`), even where the ref names another
      task; where the dependent job is no array task or the named job has no such task, of
      what the ref names (the array as a whole, or its task), as Slurm's
      ``_test_job_dependency_common`` falls back;
    * ``singleton``: no other job of the same name and user is running or suspended, which
      the caller computes as ``user_singleton_blocked``.

    A ``+minutes`` delay holds a condition back until that long after its event (start for
    ``after``, end otherwise); if the event time is unknown the delay is not applied,
    rather than blocking forever.

    ``,`` (``kind_all``): ``never`` if any condition is, ``satisfied`` if all are.
    ``?``: ``satisfied`` if any condition is, ``never`` if all are. Otherwise ``waiting``.
    """
    results = [result for _, _, result in _conditions(dep, states, now, user_singleton_blocked, array_task_id)]
    return _combine(dep, results)


def _conditions(
    dep: Dependency,
    states: Mapping[JobRef, JobStatus],
    now: datetime,
    user_singleton_blocked: bool,
    array_task_id: int | None,
) -> list[tuple[DependencyTerm, JobRef | None, DependencyResult]]:
    """Each condition of `dep` (a job of a term, or singleton) with its result."""
    out: list[tuple[DependencyTerm, JobRef | None, DependencyResult]] = []
    for term in dep.terms:
        if term.type == "singleton":
            blocked = DependencyResult.WAITING if user_singleton_blocked else DependencyResult.SATISFIED
            out.append((term, None, blocked))
            continue
        for ref in term.job_ids:
            status = states.get(ref)
            if term.type == "aftercorr" and array_task_id is not None:
                # The named job's own task of the same id, whatever task the ref names: Slurm
                # looks it up by the ref's job id first (find_job_array_rec).
                status = states.get(JobRef(ref.job_id, array_task_id), status)
            out.append((term, ref, _evaluate_one(term, status, now)))
    return out


def _combine(dep: Dependency, results: list[DependencyResult]) -> DependencyResult:
    if not results:
        return DependencyResult.SATISFIED
    if dep.kind_all:
        if DependencyResult.NEVER in results:
            return DependencyResult.NEVER
        if all(r is DependencyResult.SATISFIED for r in results):
            return DependencyResult.SATISFIED
        return DependencyResult.WAITING
    if DependencyResult.SATISFIED in results:
        return DependencyResult.SATISFIED
    if all(r is DependencyResult.NEVER for r in results):
        return DependencyResult.NEVER
    return DependencyResult.WAITING


def describe_dependency(
    dep: Dependency,
    states: Mapping[JobRef, JobStatus],
    *,
    now: datetime,
    user_singleton_blocked: bool,
    array_task_id: int | None = None,
    arrays: frozenset[int] = frozenset(),
) -> str | None:
    """The dependency of a job that has not started, as slurmctld shows it (squeue's ``%E``,
    ``scontrol show job``'s ``Dependency=``); None when it is satisfied.

    As ``_depend_list2str`` writes it: the conditions not fulfilled yet, each followed by
    ``(unfulfilled)``, or ``(failed)`` for one that never can be; a fulfilled one is left out
    (slurmctld drops it), so a satisfied dependency shows ``(null)``. A job id that is an
    array's (in `arrays`) names the whole array, ``123_*``; ``+N`` is the delay in minutes.
    """
    conditions = _conditions(dep, states, now, user_singleton_blocked, array_task_id)
    if _combine(dep, [result for _, _, result in conditions]) is DependencyResult.SATISFIED:
        return None
    parts: list[str] = []
    for term, ref, result in conditions:
        if result is DependencyResult.SATISFIED:
            continue
        state = "failed" if result is DependencyResult.NEVER else "unfulfilled"
        if ref is None:
            parts.append(f"singleton({state})")
            continue
        name = f"{ref.job_id}_*" if ref.task_id is None and ref.job_id in arrays else str(ref)
        delay = f"+{term.delay_minutes}" if term.delay_minutes else ""
        parts.append(f"{term.type}:{name}{delay}({state})")
    return ("," if dep.kind_all else "?").join(parts)


def _evaluate_one(
    term: DependencyTerm, status: JobStatus | None, now: datetime
) -> DependencyResult:
    if status is None:
        return DependencyResult.NEVER
    state = str(status.state).upper()
    ended = state in _TERMINAL_STATES
    if term.type == "after":
        if state == _PENDING:
            return DependencyResult.WAITING
        return _after_delay(status.start_time or status.end_time, term.delay_minutes, now)
    if not ended:
        return DependencyResult.WAITING
    if term.type in ("afterok", "aftercorr") and state != _COMPLETED:
        return DependencyResult.NEVER
    if term.type == "afternotok" and state == _COMPLETED:
        return DependencyResult.NEVER
    return _after_delay(status.end_time or status.start_time, term.delay_minutes, now)


def _after_delay(event: datetime | None, delay_minutes: int, now: datetime) -> DependencyResult:
    if not delay_minutes or event is None:
        return DependencyResult.SATISFIED
    if now - event >= timedelta(minutes=delay_minutes):
        return DependencyResult.SATISFIED
    return DependencyResult.WAITING


def corresponding_refs(dep: Dependency, array_task_id: int | None) -> set[JobRef]:
    """The tasks an ``aftercorr`` of the array task ``array_task_id`` looks at first.

    Each is ``JobRef(named job, array_task_id)``, whatever task the ref names; the caller adds
    the status of those that exist to what it passes :func:`evaluate_dependency`. Nothing for
    a job that is no array task.
    """
    if array_task_id is None:
        return set()
    return {JobRef(ref.job_id, array_task_id) for term in dep.terms if term.type == "aftercorr" for ref in term.job_ids}


def aggregate_array_status(tasks: Iterable[JobStatus]) -> JobStatus:
    """Fold an array's task statuses into one, as Slurm tests ``afterX:<array id>``.

    ``PENDING`` while any task is pending (Slurm's ``test_job_array_pending``); else
    ``RUNNING`` while any task has not ended; else ``COMPLETED`` if every task completed
    (``test_job_array_complete``), otherwise the end state of the first task that did not.
    Start is the earliest start, end the latest end.
    """
    task_list = list(tasks)
    if not task_list:
        raise ValueError("an array has at least one task")
    starts = [t.start_time for t in task_list if t.start_time is not None]
    ends = [t.end_time for t in task_list if t.end_time is not None]
    start = min(starts) if starts else None
    states = [str(t.state).upper() for t in task_list]
    if _PENDING in states:
        return JobStatus(_PENDING, start, None)
    if any(s not in _TERMINAL_STATES for s in states):
        return JobStatus("RUNNING", start, None)
    end = max(ends) if ends else None
    failed = next((s for s in states if s != _COMPLETED), None)
    return JobStatus(failed or _COMPLETED, start, end)
