"""The purge of old jobs: ended jobs older than a setting leave the database, in small batches,
archived first when an archive directory is set (Slurm's `PurgeJobAfter` and `ArchiveJobs`).

It runs in the server that schedules (one of many in PostgreSQL mode: two purgers would
archive the same jobs twice), every `interval` seconds, batch after batch until nothing is
old enough, pausing between batches so that submissions, which wait for the same writer,
pass in between. A job a pending job depends on is kept: its end decides the dependency.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from conductor.domain.dependency import parse_dependency
from conductor.domain.job import Job
from conductor.errors import ConductorError
from conductor.history.archive import write_archive
from conductor.store.records import DependencyTarget, JobEvent

log = logging.getLogger("conductor.history")


class HistoryStore(Protocol):
    def purgeable_jobs(self, before: datetime, limit: int, *, keep: Collection[int] = ()) -> list[Job]: ...

    def events_of(self, job_ids: Sequence[int]) -> list[JobEvent]: ...

    def delete_ended_jobs(self, job_ids: Sequence[int], before: datetime) -> int: ...

    def dependency_targets(self) -> dict[int, DependencyTarget]: ...


class Leadership(Protocol):
    def is_active(self) -> bool: ...


@dataclass
class PurgeResult:
    purged: int = 0
    archives: list[Path] = field(default_factory=list)


class Purger:
    def __init__(
        self,
        store: HistoryStore,
        *,
        keep_for: timedelta,
        archive_dir: Path | None = None,
        batch: int = 500,
        interval: float = 60.0,
        pause: float = 0.01,
        leader: Leadership | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.keep_for = keep_for
        self.archive_dir = archive_dir
        self.batch = batch
        self.interval = interval
        self.pause = pause
        self.leader = leader
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def purge(self) -> PurgeResult:
        """Every job old enough, batch by batch, now."""
        result = PurgeResult()
        before = datetime.fromtimestamp(self.clock(), tz=UTC) - self.keep_for
        keep = self._depended_on()
        while not self._stop.is_set():
            found = self.store.purgeable_jobs(before, self.batch, keep=keep)
            if not found:
                break
            ids = [job.id for job in found]
            if self.archive_dir is not None:
                # Written and on disk before a single row goes.
                events = self.store.events_of(ids)
                result.archives.append(
                    write_archive(self.archive_dir, found, events, datetime.fromtimestamp(self.clock(), tz=UTC))
                )
            result.purged += self.store.delete_ended_jobs(ids, before)
            if len(found) < self.batch:
                break
            self._stop.wait(self.pause)
        return result

    def _depended_on(self) -> set[int]:
        ids: set[int] = set()
        for target in self.store.dependency_targets().values():
            try:
                dependency = parse_dependency(target.text)
            except ConductorError:
                continue  # stored by an earlier release under other rules: nothing to keep for it
            ids.update(ref.job_id for term in dependency.terms for ref in term.job_ids)
        return ids

    def run(self) -> None:
        while not self._stop.is_set():
            if self.leader is None or self.leader.is_active():
                try:
                    result = self.purge()
                except ConductorError as exc:
                    # The database or the archive is away: the next round tries again.
                    log.warning("purge of old jobs failed: %s", exc)
                else:
                    if result.purged:
                        where = f", archived in {len(result.archives)} file(s) in {self.archive_dir}" if result.archives else ""
                        log.info("purged %d job(s) ended over %s ago%s", result.purged, self.keep_for, where)
            self._stop.wait(self.interval)

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="purger", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
