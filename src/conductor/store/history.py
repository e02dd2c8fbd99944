"""What purging the job history (`conductor.history`) reads and deletes: ended jobs past a
cutoff, their events, and nothing else.

Deletion is by small batches of ids, each its own short transaction, so that a purge of a
million jobs never holds the database (SQLite has one writer) long enough to delay a
submission noticeably.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select

from conductor.domain.job import Job
from conductor.store.engine import Database
from conductor.store.records import JobEvent, event_from_row, jobs_from_rows
from conductor.store.schema import job_events, jobs
from conductor.store.transitions import ENDED

_ENDED = sorted(ENDED)


class HistoryQueries(Database):
    def purgeable_jobs(self, before: datetime, limit: int, *, keep: Collection[int] = ()) -> list[Job]:
        """Up to `limit` jobs that ended before `before`, oldest end first, whole (script and
        environment included: what is archived is the entire record), except those in `keep`
        and the tasks of arrays in `keep`.

        An array's first task that holds its submission's Idempotency-Key stays while a task of
        its array is not yet purgeable: gone, it would free the key, and a retry of the
        submission would make a second array beside the tasks still waiting."""
        condition = and_(
            jobs.c.end_time < before, jobs.c.state.in_(_ENDED), ~_holds_key_of_live_array(before), _not_newest()
        )
        # Asked for a little more than `limit`, so that kept jobs do not end the purge early.
        query = select(*jobs.c).where(condition).order_by(jobs.c.end_time, jobs.c.id).limit(limit + len(keep))
        with self._read() as conn:
            result = conn.execute(query)
            found = jobs_from_rows(result.keys(), result)
        kept = set(keep)
        return [j for j in found if j.id not in kept and (j.array_job_id is None or j.array_job_id not in kept)][:limit]

    def events_of(self, job_ids: Sequence[int]) -> list[JobEvent]:
        query = (
            select(*job_events.c).where(job_events.c.job_id.in_(list(job_ids))).order_by(job_events.c.job_id, job_events.c.id)
        )
        with self._read() as conn:
            return [event_from_row(r._mapping) for r in conn.execute(query)]

    def delete_ended_jobs(self, job_ids: Sequence[int], before: datetime) -> int:
        """Delete these jobs and their events, in one transaction; a job that is no longer
        ended before `before` (requeued since it was read) is left alone. How many went."""
        if not job_ids:
            return 0
        ids = list(job_ids)
        with self._write() as conn:
            still = [
                r.id
                for r in conn.execute(
                    select(jobs.c.id).where(
                        jobs.c.id.in_(ids), jobs.c.end_time < before, jobs.c.state.in_(_ENDED), _not_newest()
                    )
                )
            ]
            if not still:
                return 0
            conn.execute(delete(job_events).where(job_events.c.job_id.in_(still)))
            return int(conn.execute(delete(jobs).where(jobs.c.id.in_(still))).rowcount or 0)


def _not_newest() -> ColumnElement[bool]:
    """The row is not the job with the greatest id. SQLite gives a new row the greatest id
    plus one (the table has no AUTOINCREMENT): with the newest job purged, the next job would
    take an id that was already a job's, whose archived record, output file and dependents
    would then seem to be the new one's. Kept, it holds the ids' high mark."""
    newest = jobs.alias("newest")
    return jobs.c.id < select(func.max(newest.c.id)).scalar_subquery()


def _holds_key_of_live_array(before: datetime) -> ColumnElement[bool]:
    """The row holds an array's Idempotency-Key (on its first task) and a task of that array
    did not end before `before`."""
    task = jobs.alias("task")
    live = or_(task.c.end_time.is_(None), task.c.end_time >= before, task.c.state.not_in(_ENDED))
    return and_(
        jobs.c.submit_key.isnot(None),
        jobs.c.array_task_id.isnot(None),
        exists().where(task.c.array_job_id == jobs.c.id, task.c.id != jobs.c.id, live),
    )
