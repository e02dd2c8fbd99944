"""Archive files of purged jobs: gzip-compressed JSON lines, one job a line with its events.

A file is written whole under a temporary name, flushed to disk and only then renamed into
place, before its jobs leave the database: a crash at any moment leaves every job either in
the database or in a complete archive (or, for one batch, in both: readers keep the first).
Names carry the batch's lowest and highest job id, so a search for ids opens only the files
that can hold them. Files and their directory are the server's user's alone: they hold the
jobs' scripts and environments.
"""

from __future__ import annotations

import dataclasses
import gzip
import heapq
import json
import os
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from conductor.domain.job import Job
from conductor.errors import ConductorError
from conductor.store.records import JobEvent

SUFFIX = ".jsonl.gz"
_NAME = re.compile(r"^jobs-(\d+)-(\d+)-[0-9TZ]+-\d+\.jsonl\.gz$")
_JOB_FIELDS = dataclasses.fields(Job)
_TIME_FIELDS = frozenset(f.name for f in _JOB_FIELDS if "datetime" in str(f.type))


class ArchiveError(ConductorError):
    """An archive file could not be written, or one found is not an archive."""


@dataclass(frozen=True, slots=True)
class ArchivedJob:
    job: Job
    events: tuple[JobEvent, ...]


@dataclass(frozen=True, slots=True)
class ArchiveQuery:
    """Which archived jobs a listing wants: the filters of `GET /jobs`, all optional."""

    states: Collection[str] | None = None
    users: Collection[str] | None = None
    names: Collection[str] | None = None
    partitions: Collection[str] | None = None
    job_ids: Collection[int] | None = None  # a job's id, or an array's (its tasks)
    since: datetime | None = None  # alive at or after
    until: datetime | None = None  # submitted at or before
    after: int | None = None  # ids above this one only

    def matches(self, job: Job) -> bool:
        # Every condition is the one the store's listing applies, in the same words.
        return (
            (self.after is None or job.id > self.after)
            and (not self.states or job.state in self.states)
            and (not self.users or job.user_name in self.users)
            and (not self.names or job.name in self.names)
            and (not self.partitions or job.partition in self.partitions)
            and (not self.job_ids or job.id in self.job_ids or job.array_job_id in self.job_ids)
            and (self.since is None or job.end_time is None or job.end_time >= self.since)
            and (self.until is None or job.submit_time <= self.until)
        )


def write_archive(directory: Path, jobs: Sequence[Job], events: Sequence[JobEvent], now: datetime) -> Path:
    """Write `jobs` and their `events` to a new file in `directory`, durable before this returns."""
    if not jobs:
        raise ArchiveError("nothing to archive")
    by_job: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        by_job.setdefault(event.job_id, []).append(
            {
                "id": event.id,
                "time": event.time.isoformat(),
                "from_state": event.from_state,
                "to_state": event.to_state,
                "reason": event.reason,
                "node": event.node,
                "message": event.message,
            }
        )
    ids = [job.id for job in jobs]
    name = f"jobs-{min(ids):012d}-{max(ids):012d}-{now.strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}{SUFFIX}"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        final = directory / name
        temporary = directory / f".{name}.part"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as raw:
            # Level 6: most of 9's size at a third of its time; a batch is written in milliseconds.
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as out:
                for job in jobs:
                    line = {"job": _job_fields(job), "events": by_job.get(job.id, [])}
                    out.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temporary, final)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise ArchiveError(f"cannot write an archive in {directory}: {exc.strerror or exc}") from None
    return final


def archive_files(directory: Path) -> list[tuple[int, int, Path]]:
    """The archive files in `directory` as (lowest id, highest id, path), lowest first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ArchiveError(f"cannot read the archive directory {directory}: {exc.strerror}") from None
    found = []
    for name in names:
        match = _NAME.match(name)
        if match:
            found.append((int(match.group(1)), int(match.group(2)), directory / name))
    return sorted(found)


def read_archives(directory: Path, query: ArchiveQuery | None = None) -> Iterator[ArchivedJob]:
    """Archived jobs matching `query`, file by file in order of their lowest id; a job found
    in two files (a purge interrupted between writing and deleting) is given once."""
    query = query or ArchiveQuery()
    wanted = set(query.job_ids) if query.job_ids else None
    seen: set[int] = set()
    for _low, high, path in archive_files(directory):
        if query.after is not None and high <= query.after:
            continue
        # An array's tasks have ids from the array's id up: a file whose ids all lie below
        # every wanted id holds none of them.
        if wanted is not None and min(wanted) > high:
            continue
        for archived in _read_file(path):
            if archived.job.id in seen or not query.matches(archived.job):
                continue
            seen.add(archived.job.id)
            yield archived


def _read_file(path: Path) -> Iterator[ArchivedJob]:
    try:
        with gzip.open(path, "rb") as lines:
            for number, line in enumerate(lines, 1):
                try:
                    yield _archived(json.loads(line))
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    raise ArchiveError(f"{path.name}, line {number}: not an archived job ({exc})") from None
    except (OSError, EOFError) as exc:
        raise ArchiveError(f"cannot read the archive {path.name}: {exc}") from None


def _job_fields(job: Job) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in _JOB_FIELDS:
        value = getattr(job, field.name)
        out[field.name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def _archived(line: dict[str, Any]) -> ArchivedJob:
    fields = line["job"]
    values: dict[str, Any] = {}
    for field in _JOB_FIELDS:
        # A field this release has and the writing one had not: unknown, as for a fresh job.
        value = fields.get(field.name)
        if field.name in _TIME_FIELDS and value is not None:
            value = datetime.fromisoformat(value)
        values[field.name] = value
    job = Job(**values)
    events = tuple(
        JobEvent(
            id=e["id"],
            job_id=job.id,
            time=datetime.fromisoformat(e["time"]),
            from_state=e.get("from_state"),
            to_state=e["to_state"],
            reason=e.get("reason"),
            node=e.get("node"),
            message=e.get("message"),
        )
        for e in line.get("events", [])
    )
    return ArchivedJob(job=job, events=events)


def archived_page(directory: Path, query: ArchiveQuery, *, skip: int, take: int) -> tuple[list[Job], int]:
    """The archived jobs matching `query` in id order, `skip` of them skipped, at most `take`;
    and how many match in all. Memory is that of one page, whatever the archive's size."""
    count = 0

    def counted() -> Iterator[Job]:
        nonlocal count
        for archived in read_archives(directory, query):
            count += 1
            yield archived.job

    first = heapq.nsmallest(skip + take, counted(), key=lambda job: job.id)
    return first[skip:], count


def merge_pages(live: Sequence[Job], archived: Sequence[Job], limit: int) -> list[Job]:
    """Two id-ordered pages as one, at most `limit`; a job in both (a purge interrupted between
    its archive and its delete) is given once, from the database."""
    seen = {job.id for job in live}
    merged = sorted([*live, *(job for job in archived if job.id not in seen)], key=lambda job: job.id)
    return merged[:limit]
