"""Job selection shared by squeue, scancel, sacct and scontrol: Slurm job id specs and fetching.

A job id spec is `123` (a job, or a whole array when 123 is an array's job id), `123_4` (one
task), `123_[1-3,7]` (some tasks) or any of those with a step suffix (`123.batch`, `123_4.0`),
which selects the job (sacct shows that step of it alone).
"""

from __future__ import annotations

import os
import re

from conductor.cli.client import ApiError, Client
from conductor.cli.common import ACTIVE_STATES, UsageError, parse_iso, stop_at_end_request
from conductor.domain.numbers import whole_number

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

def min_job_age() -> int:
    """How long an ended job stays in the views of live jobs (squeue, scontrol show job), as
    slurmctld holds it until MinJobAge has passed: CONDUCTOR_MIN_JOB_AGE in seconds, 300 when
    unset. Never an error here (it is read at import): check_min_job_age refuses a bad value."""
    seconds = whole_number(os.environ.get("CONDUCTOR_MIN_JOB_AGE", ""), 10**9)
    return 300 if seconds is None else seconds


def check_min_job_age() -> None:
    text = os.environ.get("CONDUCTOR_MIN_JOB_AGE", "")
    if text and whole_number(text, 10**9) is None:
        raise UsageError(
            f"CONDUCTOR_MIN_JOB_AGE={text[:40]!r} is not a whole number of seconds (0 to 1000000000); "
            "fix it or unset it (300)"
        )


def still_held(job: dict[str, Any], now: float, min_job_age: int) -> bool:
    """Whether slurmctld would still hold the job: alive, or ended at most `min_job_age` ago."""
    if job.get("state") in ACTIVE_STATES:
        return True
    end = parse_iso(job.get("end_time"))
    return end is None or now - end.timestamp() <= min_job_age


_SPEC_RE = re.compile(
    # ASCII digits, a job id at most 18 of them (int() refuses over 4,300 with its own error).
    r"(?P<base>\d{1,18})(?:_(?P<tasks>\d{1,9}|\[[0-9,\-:%]+\]))?(?:\.(?P<step>[A-Za-z0-9+]+))?",
    re.ASCII,
)
_SERVER_STATES = frozenset(
    {
        "PENDING",
        "RUNNING",
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
    }
)


class JobSpec:
    """One requested id: the base id and, for array tasks, the selected task indices; the step
    it names, if any (`batch`, `0`)."""

    __slots__ = ("base", "tasks", "text", "step")

    def __init__(self, base: int, tasks: frozenset[int] | None, text: str, step: str | None = None) -> None:
        self.base = base
        self.tasks = tasks
        self.text = text
        self.step = step

    def matches(self, job: dict[str, Any]) -> bool:
        array_job = job.get("array_job_id")
        if self.tasks is None:
            return job.get("job_id") == self.base or (
                array_job is not None and array_job == self.base
            )
        return array_job == self.base and job.get("array_task_id") in self.tasks

    def __repr__(self) -> str:
        return f"JobSpec({self.text})"


def _task_range(text: str) -> frozenset[int]:
    body = text.strip("[]").split("%", 1)[0]
    tasks: set[int] = set()
    for item in body.split(","):
        if not item:
            continue
        span, _, step_text = item.partition(":")
        low_text, _, high_text = span.partition("-")
        low = int(low_text)
        high = int(high_text) if high_text else low
        step = int(step_text) if step_text else 1
        if high < low or step <= 0 or high - low > 1_000_000:
            raise ValueError(text)
        tasks.update(range(low, high + 1, step))
    return frozenset(tasks)


def parse_job_spec(text: str) -> JobSpec:
    """Parse one id; raises UsageError with Slurm's wording for a malformed one."""
    stripped = text.strip()
    match = _SPEC_RE.fullmatch(stripped)
    if not match:
        raise UsageError(f"Invalid job id {text}")
    tasks_text = match.group("tasks")
    try:
        tasks = _task_range(tasks_text) if tasks_text is not None else None
    except ValueError:
        raise UsageError(f"Invalid job id {text}") from None
    return JobSpec(int(match.group("base")), tasks, stripped, match.group("step"))


def parse_job_specs(values: list[str], *, allow_empty: bool = False) -> list[JobSpec]:
    """Specs from option values and operands; each may itself be a comma list (not in brackets).

    Values that hold no id at all (`''`, `' , '`) are refused: read as no selection, they made
    `scontrol hold ''` or `scontrol update JobId= ...` act on every job. A view may take them
    (`allow_empty`) as selecting no job, as `squeue -j ''` prints its header alone."""
    specs: list[JobSpec] = []
    for value in values:
        for item in _split_outside_brackets(value):
            if item:
                specs.append(parse_job_spec(item))
    if values and not specs and not allow_empty:
        raise UsageError(f"Invalid job id specified: '{','.join(values)}' names no job")
    return specs


def _split_outside_brackets(value: str) -> list[str]:
    items: list[str] = []
    depth = 0
    current: list[str] = []
    for char in value:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char in ", " and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return items


def _selection(fields: list[str] | None) -> dict[str, Any]:
    """The query asking for `fields` and what fetch_jobs itself reads (nothing: every field)."""
    if fields is None:
        return {}
    names = ",".join(dict.fromkeys(["job_id", "array_job_id", "state", "user", "name", "partition", *fields]))
    # Rows, not objects: the server writes and sends a third as much (Client.list_jobs makes
    # them records again; a server without layouts sends objects).
    return {"fields": names, "layout": "rows"}


def _server_states(states: list[str], completing: bool) -> list[str]:
    """Only the states a job here can be in go to the server (squeue's default list names
    SUSPENDED, COMPLETING, CONFIGURING too): leaving the filter out instead fetched every
    recently ended job for a view that shows none of them. A completing job is running."""
    asked = [*states, "RUNNING"] if completing and "COMPLETING" in states else states
    return list(dict.fromkeys(s for s in asked if s in _SERVER_STATES))


def _as_completing(
    each_page: Callable[[list[dict[str, Any]]], object] | None,
) -> Callable[[list[dict[str, Any]]], object]:
    """`each_page`, after showing the page's jobs whose end was asked for as COMPLETING."""

    def shown(page: list[dict[str, Any]]) -> None:
        for job in page:
            stop_at_end_request(job, "COMPLETING")
        if each_page is not None:
            each_page(page)

    return shown


def fetch_jobs(
    client: Client,
    specs: list[JobSpec] | None = None,
    *,
    states: list[str] | None = None,
    users: list[str] | None = None,
    names: list[str] | None = None,
    partitions: list[str] | None = None,
    since: str | None = None,
    until: str | None = None,
    archived: bool = False,
    fields: list[str] | None = None,
    each_page: Callable[[list[dict[str, Any]]], object] | None = None,
    completing: bool = False,
) -> list[dict[str, Any]]:
    """Jobs matching every given filter. The server filters what it can; we always re-check.

    `fields`: only these keys of each record are needed (the server sends only those, and
    those the filters read). `each_page`: see Client.list_jobs. `completing`: a running job
    whose end was asked for is COMPLETING, as squeue and scontrol show it (the state filter
    judges it so: `-t R` leaves it out, `-t CG` finds it)."""
    if completing:
        fields = None if fields is None else [*fields, "start_time", "ending_state", "ending_time"]
        each_page = _as_completing(each_page)
    query = _selection(fields)
    if states:
        known = _server_states(states, completing)
        if not known:
            return []
        query["state"] = ",".join(known)
    # The server takes comma-separated lists; names containing commas are filtered here only.
    for key, values in (("user", users), ("name", names), ("partition", partitions)):
        if values and not any("," in v for v in values):
            query[key] = ",".join(values)
    query.update((k, v) for k, v in (("since", since), ("until", until), ("archived", archived and "true")) if v)

    if specs is not None:  # a selection of no job selects none, never every job
        found: dict[int, dict[str, Any]] = {}
        bases = sorted({spec.base for spec in specs})
        # The server expands an array's id to its tasks.
        for start in range(0, len(bases), 500):
            chunk = bases[start : start + 500]
            for job in client.list_jobs(
                job_id=",".join(str(b) for b in chunk), each_page=each_page, **query
            ):
                found[int(job["job_id"])] = job
        jobs = [
            job for job in found.values() if any(spec.matches(job) for spec in specs)
        ]
    else:
        jobs = client.list_jobs(each_page=each_page, **query)

    def keep(job: dict[str, Any]) -> bool:
        if states and job.get("state") not in states:
            return False
        if users and job.get("user") not in users:
            return False
        if names and job.get("name") not in names:
            return False
        return not (partitions and job.get("partition") not in partitions)

    return sorted((j for j in jobs if keep(j)), key=lambda j: int(j["job_id"]))


def get_job(client: Client, job_id: int) -> dict[str, Any] | None:
    try:
        job = client.get(f"/jobs/{job_id}")
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    return job if isinstance(job, dict) else None
