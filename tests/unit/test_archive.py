"""Archive files of purged jobs: what is written is read back whole, found by the listing's
filters, once, and a damaged file is a clear error."""

from __future__ import annotations

import dataclasses
import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conductor.domain.job import Job
from conductor.history.archive import (
    ArchiveError,
    ArchiveQuery,
    archive_files,
    archived_page,
    merge_pages,
    read_archives,
    write_archive,
)
from conductor.store.records import JobEvent

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job(job_id: int, **values: object) -> Job:
    base: dict[str, object] = {f.name: None for f in dataclasses.fields(Job)}
    base.update(
        id=job_id, name=f"j{job_id}", user_name="alice", partition="debug", state="COMPLETED", reason="None",
        priority=0, nice=0, cpus_per_task=1, ntasks=1, exclusive=False, allocated_cpus=0, allocated_memory_mb=0,
        submit_time=T0, start_time=T0 + timedelta(seconds=1), end_time=T0 + timedelta(seconds=2), exit_code="0:0",
        work_dir="/tmp", open_mode="truncate", held=False, requeue=False, restart_count=0, launched=True,
        script="#!/bin/bash\necho é\n", environment='{"A": "1"}',
    )
    base.update(values)
    return Job(**base)  # type: ignore[arg-type]


def event(job_id: int, to_state: str, seconds: int) -> JobEvent:
    return JobEvent(id=0, job_id=job_id, time=T0 + timedelta(seconds=seconds), from_state=None, to_state=to_state,
                    reason=None, node="n1", message=None)


def test_a_job_comes_back_whole_with_its_events(tmp_path: Path) -> None:
    original = job(7, comment="x", array_job_id=7, array_task_id=0)
    path = write_archive(tmp_path / "archive", [original], [event(7, "PENDING", 0), event(7, "COMPLETED", 2)], T0)
    assert path.name.startswith("jobs-000000000007-000000000007-")
    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    (back,) = read_archives(tmp_path / "archive")
    assert back.job == original
    assert [e.to_state for e in back.events] == ["PENDING", "COMPLETED"]
    assert back.events[1].time == T0 + timedelta(seconds=2)


def test_filters_are_the_listings(tmp_path: Path) -> None:
    jobs = [
        job(1),
        job(2, user_name="bob", state="FAILED"),
        job(3, array_job_id=3, array_task_id=0),
        job(4, array_job_id=3, array_task_id=1, partition="big"),
        job(5, submit_time=T0 + timedelta(days=2), end_time=T0 + timedelta(days=2)),
    ]
    write_archive(tmp_path, jobs[:3], [], T0)
    write_archive(tmp_path, jobs[3:], [], T0)

    def ids(**query: object) -> list[int]:
        return sorted(a.job.id for a in read_archives(tmp_path, ArchiveQuery(**query)))  # type: ignore[arg-type]

    assert ids() == [1, 2, 3, 4, 5]
    assert ids(users=["bob"]) == [2]
    assert ids(states=["FAILED"]) == [2]
    assert ids(job_ids=[3]) == [3, 4]  # an array's id: its tasks
    assert ids(job_ids=[4]) == [4]
    assert ids(partitions=["big"]) == [4]
    assert ids(after=3) == [4, 5]
    assert ids(since=T0 + timedelta(days=1)) == [5]
    assert ids(until=T0 + timedelta(days=1)) == [1, 2, 3, 4]


def test_a_job_in_two_files_is_given_once(tmp_path: Path) -> None:
    # A purge stopped between its archive and its delete archives the job again next time.
    write_archive(tmp_path, [job(1), job(2)], [], T0)
    write_archive(tmp_path, [job(2), job(3)], [], T0 + timedelta(minutes=1))
    assert len(archive_files(tmp_path)) == 2
    assert [a.job.id for a in read_archives(tmp_path)] == [1, 2, 3]


def test_pages_in_id_order_with_a_count(tmp_path: Path) -> None:
    write_archive(tmp_path, [job(i) for i in (9, 3, 7)], [], T0)
    write_archive(tmp_path, [job(i) for i in (1, 5)], [], T0)
    page, total = archived_page(tmp_path, ArchiveQuery(), skip=1, take=2)
    assert [j.id for j in page] == [3, 5] and total == 5
    live = [job(4, state="RUNNING"), job(5, state="RUNNING")]
    assert [(j.id, j.state) for j in merge_pages(live, page, 3)] == [(3, "COMPLETED"), (4, "RUNNING"), (5, "RUNNING")]


def test_no_directory_is_an_empty_archive(tmp_path: Path) -> None:
    assert list(read_archives(tmp_path / "never")) == []


def test_a_damaged_file_is_a_clear_error(tmp_path: Path) -> None:
    path = write_archive(tmp_path, [job(1)], [], T0)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ArchiveError, match="cannot read the archive jobs-"):
        list(read_archives(tmp_path))
    with gzip.open(path, "wb") as out:
        out.write(b'{"job": 1}\n')
    with pytest.raises(ArchiveError, match="line 1: not an archived job"):
        list(read_archives(tmp_path))


def test_nothing_to_write_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError):
        write_archive(tmp_path, [], [], T0)
