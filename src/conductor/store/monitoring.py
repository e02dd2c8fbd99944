"""What observing the system reads and writes: live jobs counted by partition and reason (for
/metrics), the job history as a feed of transitions (for the log and the counters), and the
utilisation samples of the dashboard's chart.

Every read here runs on each scrape or each second: each is answered from an index (the
counts) or by primary key ranges (events after an id, samples after a time), never by
visiting the whole jobs table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, or_, select, text, update

from conductor.store.config import ensure_config_row
from conductor.store.engine import Database, aware, driver_time, utcnow
from conductor.store.records import QueueCount, Transition, UtilisationSample
from conductor.store.schema import cluster_config, job_events, jobs, utilisation_samples
from conductor.store.transitions import PENDING, RUNNING


class MonitoringQueries(Database):
    def queue_counts(self) -> list[QueueCount]:
        """PENDING and RUNNING jobs by (state, partition, reason).

        The pending ones, of which there may be a million, from the partial index
        ix_jobs_pending_partition_reason alone; SQLite's planner, without statistics, prefers
        ix_jobs_state_id and a sort (80 ms at 100,000 pending jobs, against 10), so it is named
        there. The running ones are few (bounded by the CPUs)."""
        by = (jobs.c.partition, jobs.c.reason)
        if self.dialect == "sqlite":
            pending: Any = text(
                "SELECT partition, reason, count(*) FROM jobs INDEXED BY ix_jobs_pending_partition_reason "
                "WHERE state = 'PENDING' GROUP BY partition, reason"
            )
        else:
            pending = select(*by, func.count()).where(jobs.c.state == PENDING).group_by(*by)
        running = select(*by, func.count()).where(jobs.c.state == RUNNING).group_by(*by)
        with self._read() as conn:
            found = [(PENDING, r) for r in conn.execute(pending)] + [(RUNNING, r) for r in conn.execute(running)]
        return [QueueCount(state=state, partition=r[0], reason=r[1], jobs=int(r[2])) for state, r in found]

    def latest_event_id(self) -> int:
        with self._read() as conn:
            return int(conn.execute(select(func.coalesce(func.max(job_events.c.id), 0))).scalar_one())

    def feed_position(self) -> int | None:
        """The last event the transition feed logged (None: it never saved one)."""
        with self._read() as conn:
            found = conn.execute(select(cluster_config.c.feed_event_id).where(cluster_config.c.id == 1)).scalar()
        return None if found is None else int(found)

    def save_feed_position(self, event_id: int) -> None:
        """Record that the feed has logged every event up to `event_id`. Never moves it back: a
        process that lost the feed to another may still be finishing its last poll."""
        with self._write() as conn:
            ensure_config_row(conn, self.dialect, utcnow())
            conn.execute(
                update(cluster_config)
                .where(cluster_config.c.id == 1)
                .where(or_(cluster_config.c.feed_event_id.is_(None), cluster_config.c.feed_event_id < event_id))
                .values(feed_event_id=event_id)
            )

    def transitions_after(self, after_event: int, limit: int) -> list[Transition]:
        """Events with an id above `after_event`, in id order, at most `limit`, each with its
        job's user and submit time (the feed decides how young an event it takes).

        Read every second, three rows a job: a pre-compiled statement, its rows as the driver
        returns them (through Core rows and the columns' result processors the monitor took
        an eighth of the server's time under a drain of short jobs)."""
        with self._raw_read() as cursor:
            rows = self._driver_query(cursor, _transitions, after=after_event, limit=limit)
            return [
                Transition(
                    event_id=r[0],
                    job_id=r[1],
                    time=driver_time(r[2]),
                    from_state=r[3],
                    to_state=r[4],
                    reason=r[5],
                    # An end's event names no node; the job's row still does.
                    node=r[6] or (r[10] if r[4] != PENDING else None),
                    message=r[7],
                    user=r[8],
                    submit_time=None if r[9] is None else driver_time(r[9]),
                )
                for r in rows
            ]

    def add_sample(self, sample: UtilisationSample, *, keep_after: datetime) -> None:
        """Store one sample and forget those older than `keep_after` (the table stays small)."""
        with self._write() as conn:
            conn.execute(delete(utilisation_samples).where(utilisation_samples.c.time < keep_after))
            conn.execute(
                insert(utilisation_samples).values(
                    time=sample.time,
                    total_cpus=sample.total_cpus,
                    used_cpus=sample.used_cpus,
                    running_jobs=sample.running_jobs,
                    pending_jobs=sample.pending_jobs,
                )
            )

    def samples(self, since: datetime) -> Sequence[UtilisationSample]:
        query = select(utilisation_samples).where(utilisation_samples.c.time >= since).order_by(utilisation_samples.c.time)
        with self._read() as conn:
            rows = list(conn.execute(query))
        return [
            UtilisationSample(
                time=aware(r.time) or r.time,
                total_cpus=r.total_cpus,
                used_cpus=r.used_cpus,
                running_jobs=r.running_jobs,
                pending_jobs=r.pending_jobs,
            )
            for r in rows
        ]


def _transitions(_dialect: str) -> Any:
    """The events after :after, in id order, at most :limit, with their jobs' user, submit
    time and node list (`transitions_after` reads the rows in this order)."""
    return (
        select(
            job_events.c.id,
            job_events.c.job_id,
            job_events.c.time,
            job_events.c.from_state,
            job_events.c.to_state,
            job_events.c.reason,
            job_events.c.node,
            job_events.c.message,
            jobs.c.user_name,
            jobs.c.submit_time,
            jobs.c.node_list,
        )
        .select_from(job_events.outerjoin(jobs, jobs.c.id == job_events.c.job_id))
        .where(job_events.c.id > bindparam("after"))
        .order_by(job_events.c.id)
        .limit(bindparam("limit"))
    )
