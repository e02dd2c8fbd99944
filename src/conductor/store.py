"""The one module that holds SQL: jobs, their events, nodes and tokens, on SQLite or PostgreSQL.

Every change of a job's state is one transaction: a compare-and-set on the state, the allocation
change carried by the same row, and an event row. CPU accounting is never kept in a counter: a
job holds its CPUs exactly while its row says RUNNING, so releasing them happens once, with the
state change that ends the job, and `/jobs/stats` is one query over the table.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url

from conductor.domain.cpuset import format_cpu_list, parse_cpu_list
from conductor.domain.states import JobState, Reason
from conductor.policy import DependencyStatus, NodeView, PendingJob, Placement
from conductor.schema import job_events, jobs, nodes, tokens

RUNNING = JobState.RUNNING.value
PENDING = JobState.PENDING.value


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back naive; they were written in UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def redact_url(url: str) -> str:
    """A database URL fit for logs: the password never appears."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL must still not leak
        return "<unparseable database url>"


class StoreError(Exception):
    """Base of the store's own errors."""


class NodeConflict(StoreError):
    """Another live worker already owns this node name."""


@dataclass(slots=True)
class Finish:
    """What a worker reports when a job's process has ended (or could not start)."""

    job_id: int
    state: JobState
    exit_code: str | None
    reason: str = Reason.NONE.value
    error_msg: str | None = None
    rusage: dict[str, float] | None = None
    end_time: datetime = field(default_factory=utcnow)


@dataclass(slots=True)
class CancelOutcome:
    job_id: int
    found: bool
    state: str | None = None
    message: str = ""
    node: str | None = None


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


class Store:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        if self.dialect == "postgresql" and make_url(url).drivername == "postgresql":
            url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None
        self.engine: Engine = self._make_engine(url, echo)

    # ----------------------------------------------------------------- set-up
    def _make_engine(self, url: str, echo: bool) -> Engine:
        if self.dialect == "sqlite":
            path = make_url(url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                url,
                echo=echo,
                connect_args={"timeout": 30, "check_same_thread": False},
                pool_size=8,
                max_overflow=32,
            )

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_connection: Any, _record: Any) -> None:
                # Let SQLAlchemy, not pysqlite, decide when transactions begin.
                dbapi_connection.isolation_level = None
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Connection) -> None:
                # IMMEDIATE takes the write lock up front: a deferred transaction that later
                # writes can fail with SQLITE_BUSY, which busy_timeout cannot wait out.
                if conn.get_execution_options().get("readonly"):
                    conn.exec_driver_sql("BEGIN")
                else:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")

            return engine
        return create_engine(url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True)

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest migration."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                # Two servers starting together must not both run the migrations.
                conn.exec_driver_sql("SELECT pg_advisory_lock(727001)")
            config.attributes["connection"] = conn
            try:
                command.upgrade(config, "head")
                conn.commit()
            finally:
                if self.dialect == "postgresql":
                    conn.exec_driver_sql("SELECT pg_advisory_unlock(727001)")
                    conn.commit()

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        # SQLite has one writer; serialising in-process writers here avoids busy-waiting on
        # the file lock, which costs far more than a mutex.
        if self._write_lock is not None:
            with self._write_lock, self.engine.begin() as conn:
                yield conn
        else:
            with self.engine.begin() as conn:
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn = conn.execution_options(readonly=True)
            yield conn
            conn.rollback()

    def ping(self) -> None:
        with self._read() as conn:
            conn.exec_driver_sql("SELECT 1")

    def _lock_rows(self, conn: Connection, ids: Sequence[int], state: str) -> list[int]:
        """Ids among `ids` whose state is `state`, locked for this transaction."""
        if not ids:
            return []
        query = select(jobs.c.id).where(jobs.c.id.in_(ids), jobs.c.state == state)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        return [row[0] for row in conn.execute(query)]

    # ------------------------------------------------------------- submission
    def submit(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert new PENDING jobs (one, or the tasks of an array) in one transaction.

        For an array, every task's `array_job_id` becomes the id of its first task, as in Slurm.
        """
        now = utcnow()
        ids: list[int] = []
        prepared = []
        for row in rows:
            values = dict(row)
            values.setdefault("submit_time", now)
            values.setdefault("eligible_time", values.get("begin_time") or now)
            values["state"] = PENDING
            values.setdefault("reason", Reason.NONE.value)
            prepared.append(values)
        if not prepared:
            return []
        with self._write() as conn:
            first = conn.execute(insert(jobs).values(**prepared[0]).returning(jobs.c.id)).scalar_one()
            ids.append(first)
            if prepared[0].get("array_task_id") is not None:
                conn.execute(update(jobs).where(jobs.c.id == first).values(array_job_id=first))
                if len(prepared) > 1:
                    # One executemany for the other tasks: 10,000 tasks in well under a second.
                    for values in prepared[1:]:
                        values["array_job_id"] = first
                    conn.execute(insert(jobs), prepared[1:])
                    ids = [
                        r[0]
                        for r in conn.execute(
                            select(jobs.c.id).where(jobs.c.array_job_id == first).order_by(jobs.c.id)
                        )
                    ]
            else:
                for values in prepared[1:]:
                    ids.append(conn.execute(insert(jobs).values(**values).returning(jobs.c.id)).scalar_one())
            conn.execute(
                insert(job_events),
                [{"job_id": i, "time": now, "from_state": None, "to_state": PENDING, "reason": "submit"} for i in ids],
            )
        return ids

    # -------------------------------------------------------------- scheduling
    def pending_for_scheduling(self) -> list[PendingJob]:
        """Pending jobs in scheduling order (priority, then submit time, then id)."""
        query = (
            select(
                jobs.c.id,
                jobs.c.cpus_per_task,
                jobs.c.ntasks,
                jobs.c.memory_per_node_mb,
                jobs.c.memory_per_cpu_mb,
                jobs.c.partition,
                jobs.c.priority,
                jobs.c.nice,
                jobs.c.submit_time,
                jobs.c.exclusive,
                jobs.c.held,
                jobs.c.begin_time,
                jobs.c.dependency,
                jobs.c.array_job_id,
                jobs.c.array_max_running,
                jobs.c.reason,
            )
            .where(jobs.c.state == PENDING)
            .order_by((jobs.c.priority - jobs.c.nice).desc(), jobs.c.submit_time, jobs.c.id)
        )
        out: list[PendingJob] = []
        with self._read() as conn:
            for r in conn.execute(query):
                cpus = r.cpus_per_task * r.ntasks
                memory = r.memory_per_node_mb or ((r.memory_per_cpu_mb or 0) * cpus)
                begin = aware(r.begin_time)
                out.append(
                    PendingJob(
                        id=r.id,
                        cpus=cpus,
                        memory_mb=memory,
                        partition=r.partition,
                        priority=r.priority - r.nice,
                        submit_time=aware(r.submit_time).timestamp(),  # type: ignore[union-attr]
                        exclusive=r.exclusive,
                        held=r.held,
                        begin_time=begin.timestamp() if begin else None,
                        dependency=DependencyStatus.WAITING if r.dependency else DependencyStatus.SATISFIED,
                        array_job_id=r.array_job_id,
                        array_max_running=r.array_max_running,
                        reason=r.reason,
                    )
                )
        return out

    def dependency_targets(self) -> dict[int, str]:
        """Dependency strings of pending jobs that have one."""
        query = select(jobs.c.id, jobs.c.dependency).where(jobs.c.state == PENDING, jobs.c.dependency.is_not(None))
        with self._read() as conn:
            return {r.id: r.dependency for r in conn.execute(query)}

    def job_summaries(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        id_list = list(set(ids))
        out: dict[int, dict[str, Any]] = {}
        with self._read() as conn:
            for chunk_start in range(0, len(id_list), 500):
                chunk = id_list[chunk_start : chunk_start + 500]
                query = select(
                    jobs.c.id,
                    jobs.c.state,
                    jobs.c.start_time,
                    jobs.c.end_time,
                    jobs.c.array_job_id,
                    jobs.c.array_task_id,
                    jobs.c.exit_code,
                    jobs.c.user_name,
                    jobs.c.name,
                ).where(or_(jobs.c.id.in_(chunk), jobs.c.array_job_id.in_(chunk)))
                for r in conn.execute(query):
                    out[r.id] = dict(r._mapping)
        return out

    def singleton_running(self) -> set[tuple[str, str]]:
        """(user, name) pairs with a running job: what blocks `--dependency=singleton`."""
        query = select(jobs.c.user_name, jobs.c.name).where(jobs.c.state == RUNNING).distinct()
        with self._read() as conn:
            return {(r.user_name, r.name) for r in conn.execute(query)}

    def node_views(self, *, live_after: datetime | None = None) -> list[NodeView]:
        """Every node with the CPUs and memory its RUNNING jobs leave free."""
        with self._read() as conn:
            node_rows = list(conn.execute(select(nodes)))
            used: dict[str, set[int]] = {}
            used_mem: dict[str, int] = {}
            counts: dict[str, int] = {}
            for r in conn.execute(
                select(jobs.c.node_list, jobs.c.cpu_ids, jobs.c.allocated_memory_mb).where(jobs.c.state == RUNNING)
            ):
                used.setdefault(r.node_list, set()).update(parse_cpu_list(r.cpu_ids))
                used_mem[r.node_list] = used_mem.get(r.node_list, 0) + (r.allocated_memory_mb or 0)
                counts[r.node_list] = counts.get(r.node_list, 0) + 1
        views = []
        for n in node_rows:
            ids = tuple(parse_cpu_list(n.cpu_ids))
            taken = used.get(n.name, set())
            heartbeat = aware(n.last_heartbeat)
            live = n.state == "UP" and (live_after is None or (heartbeat is not None and heartbeat >= live_after))
            views.append(
                NodeView(
                    name=n.name,
                    cpu_ids=ids,
                    free_cpu_ids=[i for i in ids if i not in taken],
                    memory_mb=n.memory_mb,
                    free_memory_mb=n.memory_mb - used_mem.get(n.name, 0),
                    partitions=frozenset(n.partitions.split(",")),
                    running_jobs=counts.get(n.name, 0),
                    up=live,
                )
            )
        return views

    def running_per_array(self) -> dict[int, int]:
        query = (
            select(jobs.c.array_job_id, func.count())
            .where(jobs.c.state == RUNNING, jobs.c.array_job_id.is_not(None))
            .group_by(jobs.c.array_job_id)
        )
        with self._read() as conn:
            return {r[0]: r[1] for r in conn.execute(query)}

    def apply_decision(
        self, placements: Sequence[Placement], reasons: Mapping[int, str], now: datetime | None = None
    ) -> list[Placement]:
        """Start the placed jobs and record new pending reasons, in one transaction.

        A placement whose job is no longer PENDING (cancelled meanwhile) is dropped: the
        compare-and-set is what guarantees a cancelled job never runs.
        """
        now = now or utcnow()
        applied: list[Placement] = []
        with self._write() as conn:
            if placements:
                still_pending = set(self._lock_rows(conn, [p.job_id for p in placements], PENDING))
                applied = [p for p in placements if p.job_id in still_pending]
                if applied:
                    conn.execute(
                        update(jobs)
                        .where(jobs.c.id == bindparam("b_id"), jobs.c.state == PENDING)
                        .values(
                            state=RUNNING,
                            reason=Reason.NONE.value,
                            node_list=bindparam("b_node"),
                            cpu_ids=bindparam("b_cpus"),
                            allocated_cpus=bindparam("b_ncpus"),
                            allocated_memory_mb=bindparam("b_mem"),
                            start_time=now,
                            launched=False,
                            pid=None,
                            kill_state=None,
                            kill_time=None,
                        ),
                        [
                            {
                                "b_id": p.job_id,
                                "b_node": p.node,
                                "b_cpus": format_cpu_list(p.cpu_ids),
                                "b_ncpus": len(p.cpu_ids),
                                "b_mem": p.memory_mb,
                            }
                            for p in applied
                        ],
                    )
                    conn.execute(
                        insert(job_events),
                        [
                            {
                                "job_id": p.job_id,
                                "time": now,
                                "from_state": PENDING,
                                "to_state": RUNNING,
                                "node": p.node,
                                "reason": "scheduled",
                                "message": f"cpus={format_cpu_list(p.cpu_ids)}",
                            }
                            for p in applied
                        ],
                    )
            if reasons:
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == bindparam("b_id"), jobs.c.state == PENDING)
                    .values(reason=bindparam("b_reason")),
                    [{"b_id": job_id, "b_reason": reason} for job_id, reason in reasons.items()],
                )
        return applied

    # ------------------------------------------------------------------ worker
    def claim_for_launch(self, node: str) -> list[dict[str, Any]]:
        """Jobs placed on `node` that no worker has launched yet, marked launched.

        Marking before the process exists means a crash in between loses the launch (the job
        ends NODE_FAIL) rather than running the job twice.
        """
        with self._write() as conn:
            query = select(jobs).where(
                jobs.c.node_list == node, jobs.c.state == RUNNING, jobs.c.launched.is_(False)
            )
            if self.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = [dict(r._mapping) for r in conn.execute(query)]
            if rows:
                conn.execute(
                    update(jobs).where(jobs.c.id.in_([r["id"] for r in rows])).values(launched=True)
                )
        for row in rows:
            _normalise_times(row)
        return rows

    def record_pids(self, pids: Mapping[int, int]) -> None:
        if not pids:
            return
        with self._write() as conn:
            conn.execute(
                update(jobs).where(jobs.c.id == bindparam("b_id")).values(pid=bindparam("b_pid")),
                [{"b_id": k, "b_pid": v} for k, v in pids.items()],
            )

    def running_on_node(self, node: str) -> list[dict[str, Any]]:
        query = select(
            jobs.c.id,
            jobs.c.pid,
            jobs.c.launched,
            jobs.c.start_time,
            jobs.c.time_limit,
            jobs.c.kill_state,
            jobs.c.kill_time,
        ).where(jobs.c.node_list == node, jobs.c.state == RUNNING)
        with self._read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            _normalise_times(row)
        return rows

    def set_kill(self, job_id: int, kill_state: JobState, now: datetime | None = None) -> bool:
        """Mark a running job for killing; the first request decides the final state."""
        now = now or utcnow()
        with self._write() as conn:
            result = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == RUNNING, jobs.c.kill_state.is_(None))
                .values(kill_state=kill_state.value, kill_time=now)
            )
            return result.rowcount == 1

    def finish(self, results: Sequence[Finish]) -> list[int]:
        """End running jobs (compare-and-set RUNNING -> final state); returns the ids ended.

        The CPUs are released by this very update: no other bookkeeping exists to drift.
        """
        if not results:
            return []
        by_id = {r.job_id: r for r in results}
        with self._write() as conn:
            running = self._lock_rows(conn, list(by_id), RUNNING)
            done = [by_id[i] for i in running]
            if done:
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == bindparam("b_id"), jobs.c.state == RUNNING)
                    .values(
                        state=bindparam("b_state"),
                        reason=bindparam("b_reason"),
                        exit_code=bindparam("b_exit"),
                        error_msg=bindparam("b_err"),
                        end_time=bindparam("b_end"),
                        rusage=bindparam("b_rusage"),
                    ),
                    [
                        {
                            "b_id": r.job_id,
                            "b_state": r.state.value,
                            "b_reason": r.reason,
                            "b_exit": r.exit_code,
                            "b_err": r.error_msg,
                            "b_end": r.end_time,
                            "b_rusage": json.dumps(r.rusage) if r.rusage else None,
                        }
                        for r in done
                    ],
                )
                conn.execute(
                    insert(job_events),
                    [
                        {
                            "job_id": r.job_id,
                            "time": r.end_time,
                            "from_state": RUNNING,
                            "to_state": r.state.value,
                            "reason": r.reason,
                            "message": r.error_msg or (f"exit_code={r.exit_code}" if r.exit_code else None),
                        }
                        for r in done
                    ],
                )
        return [r.job_id for r in done]

    # ----------------------------------------------------------- user actions
    def cancel(self, job_id: int, now: datetime | None = None) -> CancelOutcome:
        now = now or utcnow()
        with self._write() as conn:
            query = select(jobs.c.state, jobs.c.node_list, jobs.c.kill_state).where(jobs.c.id == job_id)
            if self.dialect == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                return CancelOutcome(job_id, found=False, message=f"Invalid job id specified: {job_id}")
            if row.state == PENDING:
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.state == PENDING)
                    .values(state=JobState.CANCELLED.value, end_time=now, exit_code="0:0")
                )
                self._event(conn, job_id, now, PENDING, JobState.CANCELLED.value, "cancel", None)
                return CancelOutcome(job_id, True, JobState.CANCELLED.value, "cancelled while pending")
            if row.state == RUNNING:
                if row.kill_state is None:
                    conn.execute(
                        update(jobs)
                        .where(jobs.c.id == job_id, jobs.c.state == RUNNING, jobs.c.kill_state.is_(None))
                        .values(kill_state=JobState.CANCELLED.value, kill_time=now)
                    )
                    self._event(conn, job_id, now, RUNNING, RUNNING, "cancel requested", row.node_list)
                return CancelOutcome(
                    job_id, True, RUNNING, "cancel requested; the job is being stopped", node=row.node_list
                )
            return CancelOutcome(job_id, True, row.state, f"Job has already finished ({row.state})")

    def _event(
        self,
        conn: Connection,
        job_id: int,
        now: datetime,
        from_state: str | None,
        to_state: str,
        reason: str | None,
        node: str | None,
        message: str | None = None,
    ) -> None:
        conn.execute(
            insert(job_events).values(
                job_id=job_id,
                time=now,
                from_state=from_state,
                to_state=to_state,
                reason=reason,
                node=node,
                message=message,
            )
        )

    def fail_stranded(self, node: str, job_ids: Sequence[int], message: str) -> list[int]:
        """End as NODE_FAIL running jobs of `node` whose processes are gone."""
        now = utcnow()
        return self.finish(
            [
                Finish(i, JobState.NODE_FAIL, None, reason=Reason.NODE_DOWN.value, error_msg=message, end_time=now)
                for i in job_ids
            ]
        )

    # ------------------------------------------------------------------- reads
    def stats(self, *, live_after: datetime | None = None) -> Stats:
        with self._read() as conn:
            node_query = select(func.coalesce(func.sum(nodes.c.cpus), 0)).where(nodes.c.state == "UP")
            if live_after is not None:
                node_query = node_query.where(nodes.c.last_heartbeat >= live_after)
            total = int(conn.execute(node_query).scalar_one())
            row = conn.execute(
                select(
                    func.coalesce(func.sum(case((jobs.c.state == RUNNING, jobs.c.allocated_cpus), else_=0)), 0),
                    func.coalesce(func.sum(case((jobs.c.state == RUNNING, 1), else_=0)), 0),
                    func.coalesce(func.sum(case((jobs.c.state == PENDING, 1), else_=0)), 0),
                ).where(jobs.c.state.in_([RUNNING, PENDING]))
            ).one()
        used, running, pending = int(row[0]), int(row[1]), int(row[2])
        return Stats(total, used, max(total - used, 0), running, pending)

    def get_job(self, job_id: int) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            return None
        out = dict(row._mapping)
        _normalise_times(out)
        return out

    def list_jobs(
        self,
        *,
        states: Sequence[str] | None = None,
        users: Sequence[str] | None = None,
        names: Sequence[str] | None = None,
        partitions: Sequence[str] | None = None,
        job_ids: Sequence[int] | None = None,
        array_job_ids: Sequence[int] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        offset: int = 0,
        limit: int = 1000,
        with_script: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        columns = [c for c in jobs.c if with_script or c.name not in ("script", "environment")]
        conditions = []
        if states:
            conditions.append(jobs.c.state.in_(states))
        if users:
            conditions.append(jobs.c.user_name.in_(users))
        if names:
            conditions.append(jobs.c.name.in_(names))
        if partitions:
            conditions.append(jobs.c.partition.in_(partitions))
        if job_ids:
            conditions.append(or_(jobs.c.id.in_(job_ids), jobs.c.array_job_id.in_(job_ids)))
        if array_job_ids:
            conditions.append(jobs.c.array_job_id.in_(array_job_ids))
        if since is not None:
            # A job counts when it was alive at any point after `since`, as in sacct.
            conditions.append(or_(jobs.c.end_time.is_(None), jobs.c.end_time >= since))
        if until is not None:
            conditions.append(jobs.c.submit_time <= until)
        where = and_(*conditions) if conditions else None
        query = select(*columns).order_by(jobs.c.id).offset(offset).limit(limit)
        count_query = select(func.count()).select_from(jobs)
        if where is not None:
            query = query.where(where)
            count_query = count_query.where(where)
        with self._read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
            total = int(conn.execute(count_query).scalar_one())
        for row in rows:
            _normalise_times(row)
        return rows, total

    def events(self, job_id: int) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = [
                dict(r._mapping)
                for r in conn.execute(
                    select(job_events).where(job_events.c.job_id == job_id).order_by(job_events.c.id)
                )
            ]
        for row in rows:
            row["time"] = aware(row["time"])
        return rows

    # ------------------------------------------------------------------- nodes
    def register_node(
        self,
        *,
        name: str,
        cpus: int,
        cpu_ids: Sequence[int],
        cpu_binding: bool,
        memory_mb: int,
        partitions: Sequence[str],
        instance: str,
        hostname: str,
        stale_before: datetime | None,
        instance_alive: Callable[[str], bool] = lambda _instance: True,
    ) -> None:
        """Claim the node name for this worker process.

        Refused when another instance holds it, heartbeated after `stale_before` and
        `instance_alive` cannot rule it out (a crashed worker restarting on the same host can);
        a node is never silently merged with another worker's.
        """
        now = utcnow()
        values = {
            "cpus": cpus,
            "cpu_ids": format_cpu_list(cpu_ids),
            "cpu_binding": cpu_binding,
            "memory_mb": memory_mb,
            "partitions": ",".join(partitions),
            "state": "UP",
            "reason": None,
            "instance": instance,
            "last_heartbeat": now,
            "hostname": hostname,
        }
        with self._write() as conn:
            query = select(nodes).where(nodes.c.name == name)
            if self.dialect == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                conn.execute(insert(nodes).values(name=name, registered_at=now, **values))
                return
            heartbeat = aware(row.last_heartbeat)
            if (
                row.instance not in (None, instance)
                and row.state == "UP"
                and stale_before is not None
                and heartbeat is not None
                and heartbeat >= stale_before
                and instance_alive(row.instance)
            ):
                raise NodeConflict(
                    f"node '{name}' is already served by a live worker on {row.hostname or 'another host'} "
                    f"(last heartbeat {heartbeat.isoformat()}); choose another --node-name"
                )
            conn.execute(update(nodes).where(nodes.c.name == name).values(**values))

    def heartbeat(self, name: str, instance: str) -> bool:
        """Refresh the node's heartbeat; False when another instance took the node over."""
        with self._write() as conn:
            result = conn.execute(
                update(nodes)
                .where(nodes.c.name == name, nodes.c.instance == instance)
                .values(last_heartbeat=utcnow(), state="UP")
            )
            return result.rowcount == 1

    def set_node_down(self, name: str, instance: str | None, reason: str) -> None:
        with self._write() as conn:
            query = update(nodes).where(nodes.c.name == name)
            if instance is not None:
                query = query.where(nodes.c.instance == instance)
            conn.execute(query.values(state="DOWN", reason=reason))

    def list_nodes(self, *, live_after: datetime | None = None) -> list[NodeInfo]:
        views = {v.name: v for v in self.node_views(live_after=live_after)}
        with self._read() as conn:
            rows = list(conn.execute(select(nodes).order_by(nodes.c.name)))
        out = []
        for n in rows:
            view = views[n.name]
            state = n.state
            if state == "UP" and not view.up:
                state = "DOWN"
            out.append(
                NodeInfo(
                    name=n.name,
                    cpus=n.cpus,
                    cpu_ids=n.cpu_ids,
                    cpu_binding=n.cpu_binding,
                    memory_mb=n.memory_mb,
                    partitions=n.partitions.split(","),
                    state=state,
                    reason=n.reason,
                    last_heartbeat=aware(n.last_heartbeat),
                    alloc_cpus=len(view.cpu_ids) - len(view.free_cpu_ids),
                    alloc_memory_mb=view.memory_mb - view.free_memory_mb,
                    running_jobs=view.running_jobs,
                    instance=n.instance,
                )
            )
        return out


_TIME_COLUMNS = ("submit_time", "eligible_time", "begin_time", "start_time", "end_time", "kill_time")


def _normalise_times(row: dict[str, Any]) -> None:
    for key in _TIME_COLUMNS:
        if key in row:
            row[key] = aware(row[key])
