"""The one module that holds SQL: jobs, their events, nodes and tokens, on SQLite or PostgreSQL.

Every change of a job's state is one transaction: a compare-and-set on the state, the allocation
change carried by the same row, and an event row. CPU accounting is never kept in a counter: a
job holds its CPUs exactly while its row says RUNNING, so releasing them happens once, with the
state change that ends the job, and `/jobs/stats` is one query over the table.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Connection,
    Engine,
    Integer,
    Table,
    and_,
    bindparam,
    case,
    create_engine,
    event,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.elements import ColumnElement

from conductor.domain.cpuset import format_cpu_list, parse_cpu_list
from conductor.errors import ConductorError, StoreUnavailable
from conductor.domain.states import JobState, Reason
from conductor.policy import DependencyStatus, NodeView, PendingJob, Placement
from conductor.schema import job_events, jobs, nodes, tokens

RUNNING = JobState.RUNNING.value
PENDING = JobState.PENDING.value

# libpq options of every PostgreSQL connection: fail fast when the server is unreachable and
# notice a silently dead peer through TCP keepalives instead of waiting forever.
PG_CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
}
# pg_advisory_lock keys: 727001 serialises migrations, 727002 is the active scheduler's.
SCHEDULER_LOCK_KEY = 727002
NOTIFY_CHANNEL = "conductor"


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


_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@\s]+)(?P<at>@)")
_CONNINFO_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<password>'(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact_secrets(text: str, url: str | None = None) -> str:
    """`text` (an error message, a log line) without the password of `url` or of any URL or
    libpq conninfo it quotes: drivers and URL parsers echo their input in their errors."""
    if url:
        try:
            password = make_url(url).password
        except Exception:  # noqa: BLE001 - an unparseable URL is handled by the patterns below
            password = None
        if password:
            text = text.replace(str(password), "***")
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + "***" + m.group("at"), text)
    return _CONNINFO_PASSWORD.sub(lambda m: m.group("head") + "***", text)


class StoreError(ConductorError):
    """Base of the store's own errors."""


class NodeConflict(StoreError):
    """Another live worker already owns this node name."""


@contextlib.contextmanager
def unavailable() -> Iterator[None]:
    """Turn the driver's "cannot reach the database" into StoreUnavailable (its kind in `kind`)."""
    try:
        yield
    except OperationalError as exc:
        cause = exc.orig or exc
        raise StoreUnavailable(redact_secrets(str(cause)), type(cause).__name__) from exc


def protect_sqlite_files(url: str) -> None:
    """Create an SQLite database (and its WAL files, which SQLite creates with the database's
    mode) readable by its owner only: it holds every job's script and environment."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return
    path = Path(parsed.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):  # not ours to create: opening it will say more
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600))
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            os.chmod(candidate, 0o600)


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
    # Which run of the job this reports (node and restart_count at launch). When set, a report
    # about an earlier run of a job that was requeued meanwhile ends nothing.
    node: str | None = None
    restart_count: int | None = None


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
        self._inserts: dict[tuple[str, tuple[str, ...]], Callable[[Any, Mapping[str, Any]], int]] = {}
        self._selects: dict[str, tuple[str, list[str] | None, dict[str, Any], dict[str, Any], list[Any]]] = {}
        self._local = threading.local()
        self._held_lock = threading.Lock()
        self._held: list[Any] = []
        self._dml: dict[str, tuple[str, list[str] | None, dict[str, Any], dict[str, Any]]] = {}
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
        return create_engine(
            url,
            echo=echo,
            pool_size=10,
            max_overflow=20,
            pool_pre_ping=True,
            # A database host that vanishes must fail calls in seconds, not hang the loops.
            connect_args=PG_CONNECT_ARGS,
        )

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
        with self._held_lock:
            held, self._held = self._held, []
        for connection in held:
            with contextlib.suppress(Exception):
                connection.invalidate()  # closed for good, not handed back to a pool being disposed
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
    def _dbapi(self) -> Iterator[Any]:
        """A DBAPI connection for the pre-compiled statements below.

        On SQLite, each thread keeps one for good: checking a connection out of the pool and
        back costs about as much as the statements themselves. Few threads use the store (the
        API's, the scheduler's, the worker's, a small pool), so they hold few connections. On
        PostgreSQL, the pool (whose pre-ping notices a server that went away) as everywhere.
        """
        if self.dialect != "sqlite":
            raw = self.engine.raw_connection()
            try:
                yield raw
            finally:
                raw.close()  # back to the pool
            return
        held = getattr(self._local, "connection", None)
        if held is None:
            held = self.engine.raw_connection()
            self._local.connection = held
            with self._held_lock:
                self._held.append(held)
        yield held.driver_connection

    @contextmanager
    def _raw_write(self) -> Iterator[Any]:
        """A DBAPI cursor inside a write transaction, for the hottest statements only.

        SQLAlchemy Core spends about 100 µs of CPU per statement on building, caching and
        processing; the driver itself needs a few. On a path taken once per submission that
        is most of the submission's cost, so it runs pre-compiled SQL (`_compiled_insert`)
        on the DBAPI connection directly.
        """
        with self._write_lock if self._write_lock is not None else contextlib.nullcontext(), self._dbapi() as raw:
            cursor = raw.cursor()
            try:
                if self.dialect == "sqlite":
                    cursor.execute("BEGIN IMMEDIATE")  # as _on_begin: take the write lock now
                yield cursor
                raw.commit()
            except BaseException:
                raw.rollback()
                raise
            finally:
                cursor.close()

    def _compiled_insert(self, table: Table, keys: tuple[str, ...]) -> Callable[[Any, Mapping[str, Any]], int]:
        """An INSERT ... RETURNING id of `keys` into `table`, compiled once by SQLAlchemy for
        this database, as a function (cursor, values) -> new id. Values pass through the
        columns' own bind processors, so rows look exactly as Core would have written them."""
        cached = self._inserts.get((table.name, keys))
        if cached is not None:
            return cached
        dialect = self.engine.dialect
        statement = insert(table).values({k: bindparam(k) for k in keys}).returning(table.c.id)
        compiled = statement.compile(dialect=dialect)
        sql = compiled.string
        processors = {
            k: p for k in keys if (p := table.c[k].type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        order = [compiled.binds[name].key for name in compiled.positiontup] if compiled.positional else None

        def run(cursor: Any, values: Mapping[str, Any]) -> int:
            bound = {k: (processors[k](v) if k in processors else v) for k, v in values.items()}
            cursor.execute(sql, [bound[k] for k in order] if order is not None else bound)
            return int(cursor.fetchone()[0])

        self._inserts[(table.name, keys)] = run
        return run

    @contextmanager
    def _raw_read(self) -> Iterator[Any]:
        """A DBAPI cursor for `_query`: one connection, one read transaction."""
        with self._dbapi() as raw:
            cursor = raw.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
                if self.dialect != "sqlite":
                    raw.rollback()  # end the read transaction PostgreSQL opened (SQLite autocommits)

    def _query(self, cursor: Any, key: str, build: Callable[[], Any], **params: Any) -> list[tuple[Any, ...]]:
        """Rows of a SELECT that runs several times a second, on a `_raw_read` cursor.

        Built and compiled by SQLAlchemy once (`build` makes it, with named `bindparam`s), then
        run by the driver alone with the columns' own result processors, so values look as
        Core returns them, at a tenth of Core's cost per statement.
        """
        compiled_query = self._selects.get(key)
        if compiled_query is None:
            dialect = self.engine.dialect
            statement = build()
            compiled = statement.compile(dialect=dialect)
            # Literal values of the statement (`state == 'RUNNING'`) are anonymous binds.
            defaults = {name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required}
            binds = {name: bind.type.dialect_impl(dialect).bind_processor(dialect) for name, bind in compiled.binds.items()}
            order = list(compiled.positiontup) if compiled.positional else None
            processors = [
                c.type.dialect_impl(dialect).result_processor(dialect, None) for c in statement.selected_columns
            ]
            compiled_query = (compiled.string, order, defaults, binds, processors)
            self._selects[key] = compiled_query
        sql, order, defaults, binds, processors = compiled_query
        values = {**defaults, **params}
        values = {k: (v if (p := binds.get(k)) is None else p(v)) for k, v in values.items()}
        cursor.execute(sql, [values[name] for name in order] if order is not None else values)
        rows = cursor.fetchall()
        if any(p is not None for p in processors):
            rows = [tuple(v if p is None else p(v) for p, v in zip(processors, row, strict=True)) for row in rows]
        return rows

    def _execute_many(self, cursor: Any, key: str, build: Callable[[], Any], rows: Sequence[Mapping[str, Any]]) -> None:
        """A pre-compiled INSERT/UPDATE (as `_query`) for each of `rows`, in one executemany."""
        compiled_dml = self._dml.get(key)
        if compiled_dml is None:
            dialect = self.engine.dialect
            compiled = build().compile(dialect=dialect)
            defaults = {name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required}
            binds = {name: bind.type.dialect_impl(dialect).bind_processor(dialect) for name, bind in compiled.binds.items()}
            order = list(compiled.positiontup) if compiled.positional else None
            compiled_dml = (compiled.string, order, defaults, binds)
            self._dml[key] = compiled_dml
        sql, order, defaults, binds = compiled_dml
        batch = []
        for row in rows:
            values = {**defaults, **row}
            values = {k: (v if (p := binds.get(k)) is None else p(v)) for k, v in values.items()}
            batch.append([values[name] for name in order] if order is not None else values)
        if batch:
            cursor.executemany(sql, batch)

    def _id_in(self, column: Any) -> Any:
        """`column IN (:ids)` for a pre-compiled statement, whatever the number of ids: a JSON
        array unfolded by json_each on SQLite, an array with = ANY on PostgreSQL. `_ids` makes
        the value."""
        if self.dialect == "sqlite":
            return column.in_(select(literal_column("value")).select_from(func.json_each(bindparam("ids"))))
        return column == func.any(bindparam("ids", type_=ARRAY(BigInteger)))

    def _ids(self, ids: Iterable[int]) -> Any:
        return json.dumps([int(i) for i in ids]) if self.dialect == "sqlite" else [int(i) for i in ids]

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

    def _lock_rows(self, conn: Connection, ids: Sequence[int], state: str, *, unheld: bool = False) -> list[int]:
        """Ids among `ids` whose state is `state` (and not held, if asked), locked for this
        transaction."""
        if not ids:
            return []
        query = select(jobs.c.id).where(jobs.c.id.in_(ids), jobs.c.state == state)
        if unheld:
            query = query.where(jobs.c.held.is_(False))
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
        if len(prepared) == 1 and prepared[0].get("array_task_id") is None:
            # One plain job (nearly every REST or sbatch submission): the fast path.
            values = prepared[0]
            with self._raw_write() as cursor:
                job_id = self._compiled_insert(jobs, tuple(values))(cursor, values)
                event_row = {"job_id": job_id, "time": now, "from_state": None, "to_state": PENDING, "reason": "submit"}
                self._compiled_insert(job_events, tuple(event_row))(cursor, event_row)
            return [job_id]
        with self._write() as conn:
            first = conn.execute(insert(jobs).values(**prepared[0]).returning(jobs.c.id)).scalar_one()
            ids.append(first)
            if prepared[0].get("array_task_id") is not None:
                conn.execute(update(jobs).where(jobs.c.id == first).values(array_job_id=first))
                if len(prepared) > 1:
                    if _differ_only_in_task(prepared):
                        self._copy_array_tasks(conn, first, [v["array_task_id"] for v in prepared[1:]])
                    else:
                        for values in prepared[1:]:
                            values["array_job_id"] = first
                        conn.execute(insert(jobs), prepared[1:])
                    ids = [
                        r[0]
                        for r in conn.execute(
                            select(jobs.c.id).where(jobs.c.array_job_id == first).order_by(jobs.c.id)
                        )
                    ]
                # The events of all tasks in one statement, without a Python row per task.
                conn.execute(
                    insert(job_events).from_select(
                        ["job_id", "time", "from_state", "to_state", "reason"],
                        select(
                            jobs.c.id,
                            literal(now, job_events.c.time.type),
                            null(),
                            literal(PENDING, job_events.c.to_state.type),
                            literal("submit", job_events.c.reason.type),
                        ).where(jobs.c.array_job_id == first),
                    )
                )
                return ids
            else:
                for values in prepared[1:]:
                    ids.append(conn.execute(insert(jobs).values(**values).returning(jobs.c.id)).scalar_one())
            conn.execute(
                insert(job_events),
                [{"job_id": i, "time": now, "from_state": None, "to_state": PENDING, "reason": "submit"} for i in ids],
            )
        return ids

    # Arithmetic runs per INSERT ... SELECT (three bound parameters each).
    _ARRAY_RUNS_CHUNK = 2_000

    def _copy_array_tasks(self, conn: Connection, first: int, task_ids: Sequence[int]) -> None:
        """Insert the other tasks of an array as copies of its first row, in the database.

        The task ids are handed over as arithmetic runs (`0-9999` is one) that a recursive CTE
        unfolds, joined with the first row in one INSERT ... SELECT: binding 50 parameters per
        task in Python is what made a 10,000-task array slow.
        """
        copied = [c for c in jobs.c if c.name not in ("id", "array_task_id", "array_job_id")]
        runs = _arithmetic_runs(task_ids)
        for start in range(0, len(runs), self._ARRAY_RUNS_CHUNK):
            seeds = [
                select(
                    literal(lo, Integer).label("task"), literal(hi, Integer).label("hi"), literal(step, Integer).label("step")
                )
                for lo, hi, step in runs[start : start + self._ARRAY_RUNS_CHUNK]
            ]
            if len(seeds) == 1:
                seed = seeds[0]
            else:
                # A recursive CTE's base must be a plain SELECT: wrap the UNION of the seeds.
                union = union_all(*seeds).subquery()
                seed = select(union.c.task, union.c.hi, union.c.step)
            tasks = seed.cte("array_tasks", recursive=True)
            tasks = tasks.union_all(
                select(tasks.c.task + tasks.c.step, tasks.c.hi, tasks.c.step).where(
                    tasks.c.task + tasks.c.step <= tasks.c.hi
                )
            )
            query = (
                select(*copied, literal(first, jobs.c.array_job_id.type), tasks.c.task)
                .select_from(jobs)
                .join(tasks, true())
                .where(jobs.c.id == first)
                .order_by(tasks.c.task)
            )
            conn.execute(
                insert(jobs).from_select([c.name for c in copied] + ["array_job_id", "array_task_id"], query)
            )

    # -------------------------------------------------------------- scheduling
    def pending_for_scheduling(self) -> list[PendingJob]:
        """Pending jobs in scheduling order (priority, then submit time, then id)."""
        return self.pending_snapshot()[1]

    def pending_snapshot(self) -> tuple[int, list[PendingJob]]:
        """(newest event id, every pending job in scheduling order).

        The event id is read first: every change up to it is reflected in the jobs read after
        it, so `pending_changes(that id)` later misses nothing that committed in order.
        """
        with self._read() as conn:
            last_event = self._latest_event(conn)
            jobs_ = self._load_pending(conn, None)
        return last_event, jobs_

    def pending_changes(self, after_event: int) -> tuple[int, set[int], list[PendingJob]]:
        """What changed since `after_event`: (newest event id, ids touched, those still pending).

        Every transition and every edit of a job writes an event row, so the event table is the
        scheduler's change feed: a pass costs what changed, not the size of the backlog. On
        PostgreSQL an event id can become visible after a higher one; the scheduler's periodic
        full snapshot repairs that.
        """
        with self._raw_read() as cursor:
            last_event = int(self._query(cursor, "latest_event", lambda: select(func.max(job_events.c.id)))[0][0] or 0)
            if last_event <= after_event:
                return last_event, set(), []
            window = {"after": after_event, "last": last_event}
            touched = {r[0] for r in self._query(cursor, "touched", _touched_query, **window)}
            rows = self._query(
                cursor,
                "pending_touched",
                lambda: _pending_query().where(jobs.c.id.in_(_touched_query())),
                **window,
            )
        return last_event, touched, [_pending_job(r) for r in rows]

    def _latest_event(self, conn: Connection) -> int:
        # A bare max(): SQLite answers it from the primary key's b-tree in O(log n), while
        # max() inside coalesce() makes it scan every event.
        return int(conn.execute(select(func.max(job_events.c.id))).scalar_one() or 0)

    def _load_pending(self, conn: Connection, ids: set[int] | None) -> list[PendingJob]:
        query = _pending_query()
        out: list[PendingJob] = []
        id_list = sorted(ids) if ids is not None else None
        chunks = [id_list[i : i + 500] for i in range(0, len(id_list), 500)] if id_list is not None else [None]
        for chunk in chunks:
            chunk_query = query if chunk is None else query.where(jobs.c.id.in_(chunk))
            out.extend(_pending_job(tuple(r)) for r in conn.execute(chunk_query))
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
        with self._raw_read() as cursor:
            node_rows = self._query(
                cursor,
                "node_views",
                lambda: select(
                    nodes.c.name, nodes.c.cpu_ids, nodes.c.memory_mb, nodes.c.partitions, nodes.c.state,
                    nodes.c.last_heartbeat,
                ),
            )
            running = self._query(
                cursor,
                "running_allocations",
                lambda: select(jobs.c.node_list, jobs.c.cpu_ids, jobs.c.allocated_memory_mb).where(
                    jobs.c.state == RUNNING
                ),
            )
        used: dict[str, set[int]] = {}
        used_mem: dict[str, int] = {}
        counts: dict[str, int] = {}
        for node_list, cpu_ids, memory in running:
            used.setdefault(node_list, set()).update(parse_cpu_list(cpu_ids))
            used_mem[node_list] = used_mem.get(node_list, 0) + (memory or 0)
            counts[node_list] = counts.get(node_list, 0) + 1
        views = []
        for name, node_cpu_ids, memory_mb, partitions, state, last_heartbeat in node_rows:
            ids = tuple(parse_cpu_list(node_cpu_ids))
            taken = used.get(name, set())
            heartbeat = aware(last_heartbeat)
            live = state == "UP" and (live_after is None or (heartbeat is not None and heartbeat >= live_after))
            views.append(
                NodeView(
                    name=name,
                    cpu_ids=ids,
                    free_cpu_ids=[i for i in ids if i not in taken],
                    memory_mb=memory_mb,
                    free_memory_mb=memory_mb - used_mem.get(name, 0),
                    partitions=frozenset(partitions.split(",")),
                    running_jobs=counts.get(name, 0),
                    up=live,
                )
            )
        return views

    def node_shapes(self) -> list[NodeView]:
        """Every node's size and partitions, without its load: what submission checks need.

        Cheaper than `node_views` (no scan of running jobs) because it runs on every submit.
        """
        with self._read() as conn:
            rows = list(conn.execute(select(nodes.c.name, nodes.c.cpu_ids, nodes.c.memory_mb, nodes.c.partitions)))
        return [
            NodeView(
                name=n.name,
                cpu_ids=tuple(parse_cpu_list(n.cpu_ids)),
                free_cpu_ids=[],
                memory_mb=n.memory_mb,
                free_memory_mb=0,
                partitions=frozenset(n.partitions.split(",")),
            )
            for n in rows
        ]

    def running_per_array(self) -> dict[int, int]:
        with self._raw_read() as cursor:
            rows = self._query(
                cursor,
                "running_per_array",
                lambda: select(jobs.c.array_job_id, func.count())
                .where(jobs.c.state == RUNNING, jobs.c.array_job_id.is_not(None))
                .group_by(jobs.c.array_job_id),
            )
        return {r[0]: r[1] for r in rows}

    def apply_decision(
        self, placements: Sequence[Placement], reasons: Mapping[int, str], now: datetime | None = None
    ) -> list[Placement]:
        """Start the placed jobs and record new pending reasons, in one transaction.

        A placement whose job is no longer PENDING (cancelled meanwhile) is dropped: the
        compare-and-set is what guarantees a cancelled job never runs.
        """
        now = now or utcnow()
        applied: list[Placement] = []
        with self._raw_write() as cursor:
            if placements:
                # A hold that committed after the scheduler read the backlog wins over the placement.
                def pending() -> Any:
                    query = select(jobs.c.id).where(
                        self._id_in(jobs.c.id), jobs.c.state == PENDING, jobs.c.held.is_(False)
                    )
                    return query.with_for_update() if self.dialect == "postgresql" else query

                ids = self._ids(p.job_id for p in placements)
                still_pending = {r[0] for r in self._query(cursor, "placeable", pending, ids=ids)}
                applied = self._within_capacity(cursor, [p for p in placements if p.job_id in still_pending])
                self._execute_many(
                    cursor,
                    "start_jobs",
                    lambda: update(jobs)
                    .where(jobs.c.id == bindparam("b_id"), jobs.c.state == PENDING, jobs.c.held.is_(False))
                    .values(
                        state=RUNNING,
                        reason=Reason.NONE.value,
                        node_list=bindparam("b_node"),
                        cpu_ids=bindparam("b_cpus"),
                        allocated_cpus=bindparam("b_ncpus"),
                        allocated_memory_mb=bindparam("b_mem"),
                        start_time=bindparam("b_now"),
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
                            "b_now": now,
                        }
                        for p in applied
                    ],
                )
                self._execute_many(
                    cursor,
                    "start_events",
                    lambda: insert(job_events).values(
                        {k: bindparam(k) for k in ("job_id", "time", "from_state", "to_state", "node", "reason", "message")}
                    ),
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
            self._execute_many(
                cursor,
                "pending_reasons",
                lambda: update(jobs)
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

        def claimable() -> Any:
            query = select(*jobs.c).where(
                jobs.c.node_list == bindparam("node"), jobs.c.state == RUNNING, jobs.c.launched.is_(False)
            )
            return query.with_for_update(skip_locked=True) if self.dialect == "postgresql" else query

        names = [c.name for c in jobs.c]
        with self._raw_write() as cursor:
            rows = [dict(zip(names, r, strict=True)) for r in self._query(cursor, "claimable", claimable, node=node)]
            self._execute_many(
                cursor,
                "mark_launched",
                lambda: update(jobs).where(jobs.c.id == bindparam("b_id")).values(launched=True),
                [{"b_id": r["id"]} for r in rows],
            )
        for row in rows:
            _normalise_times(row)
        return rows

    def record_pids(self, pids: Mapping[int, int]) -> None:
        if not pids:
            return
        with self._raw_write() as cursor:
            self._execute_many(
                cursor,
                "record_pid",
                lambda: update(jobs).where(jobs.c.id == bindparam("b_id")).values(pid=bindparam("b_pid")),
                [{"b_id": k, "b_pid": v} for k, v in pids.items()],
            )

    _NODE_JOB_COLUMNS = (
        "id", "pid", "launched", "start_time", "time_limit", "kill_state", "kill_time", "restart_count",
        # Signals to deliver (scancel --signal) and the --signal warning of the job.
        "pending_signal", "signal_spec",
    )

    def running_on_node(self, node: str) -> list[dict[str, Any]]:
        names = self._NODE_JOB_COLUMNS
        with self._raw_read() as cursor:
            found = self._query(
                cursor,
                "running_on_node",
                lambda: select(*(jobs.c[n] for n in names)).where(
                    jobs.c.node_list == bindparam("node"), jobs.c.state == RUNNING
                ),
                node=node,
            )
        rows = [dict(zip(names, r, strict=True)) for r in found]
        for row in rows:
            _normalise_times(row)
        return rows

    def kill_states(self, ids: Sequence[int]) -> dict[int, str | None]:
        """The kill requested for each running job (cancel, time limit, requeue), if any."""
        with self._raw_read() as cursor:
            rows = self._query(
                cursor,
                "kill_states",
                lambda: select(jobs.c.id, jobs.c.kill_state).where(self._id_in(jobs.c.id)),
                ids=self._ids(ids),
            )
        return dict(rows)

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
        if all(r.state is not JobState.PENDING for r in results):
            return self._finish_runs(by_id)
        with self._write() as conn:
            running = self._lock_rows(conn, list(by_id), RUNNING)
            done = [by_id[i] for i in self._same_run(conn, running, by_id)]
            # A run stopped by `scontrol requeue` ends the run, not the job (see requeue_jobs).
            requeued = [r for r in done if r.state is JobState.PENDING]
            if requeued:
                self._requeue_finished(conn, requeued)
                done = [r for r in done if r.state is not JobState.PENDING]
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
                    _end_rows(done),
                )
                conn.execute(
                    insert(job_events),
                    _end_events(done),
                )
        return [r.job_id for r in done] + [r.job_id for r in requeued]

    def _finish_runs(self, by_id: Mapping[int, Finish]) -> list[int]:
        """`finish` when no report is a requeue (nearly always): the same compare-and-set,
        as pre-compiled statements, since every ended job passes here."""

        def running() -> Any:
            query = select(jobs.c.id, jobs.c.node_list, jobs.c.restart_count).where(
                self._id_in(jobs.c.id), jobs.c.state == RUNNING
            )
            return query.with_for_update() if self.dialect == "postgresql" else query

        with self._raw_write() as cursor:
            done = []
            for job_id, node_list, restart_count in self._query(cursor, "finish_running", running, ids=self._ids(by_id)):
                report = by_id[job_id]
                # A report about an earlier run (its node was declared dead, the job runs again).
                if (report.node is not None and node_list != report.node) or (
                    report.restart_count is not None and restart_count != report.restart_count
                ):
                    continue
                done.append(report)
            done.sort(key=lambda r: r.job_id)
            self._execute_many(
                cursor,
                "finish_update",
                lambda: update(jobs)
                .where(jobs.c.id == bindparam("b_id"), jobs.c.state == RUNNING)
                .values(
                    state=bindparam("b_state"),
                    reason=bindparam("b_reason"),
                    exit_code=bindparam("b_exit"),
                    error_msg=bindparam("b_err"),
                    end_time=bindparam("b_end"),
                    rusage=bindparam("b_rusage"),
                ),
                _end_rows(done),
            )
            self._execute_many(
                cursor,
                "finish_events",
                lambda: insert(job_events).values(
                    {k: bindparam(k) for k in ("job_id", "time", "from_state", "to_state", "reason", "message")}
                ),
                _end_events(done),
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
                # A requeue in progress (kill_state PENDING) gives way: the job ends cancelled
                # rather than going back to the queue.
                if row.kill_state in (None, PENDING):
                    conn.execute(
                        update(jobs)
                        .where(
                            jobs.c.id == job_id,
                            jobs.c.state == RUNNING,
                            or_(jobs.c.kill_state.is_(None), jobs.c.kill_state == PENDING),
                        )
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
                Finish(
                    i, JobState.NODE_FAIL, None, reason=Reason.NODE_DOWN.value, error_msg=message, end_time=now, node=node
                )
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
        after: int | None = None,
        offset: int = 0,
        limit: int = 1000,
        with_script: bool = False,
        count: bool = True,
    ) -> tuple[list[dict[str, Any]], int]:
        """Matching jobs in id order, from the first id above `after` (keyset paging: a page
        costs the same wherever it starts), skipping `offset` of them, at most `limit`; and
        how many match in all, `after` aside (-1 unless `count`)."""
        columns = [c for c in jobs.c if with_script or c.name not in ("script", "environment")]
        conditions: list[ColumnElement[bool]] = []
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
        query = select(*columns).order_by(jobs.c.id).offset(offset).limit(limit)
        count_query = select(func.count()).select_from(jobs)
        if conditions:
            count_query = count_query.where(and_(*conditions))
        if after is not None:
            conditions.append(jobs.c.id > after)
        if conditions:
            query = query.where(and_(*conditions))
        with self._read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
            total = int(conn.execute(count_query).scalar_one()) if count else -1
        for row in rows:
            _normalise_times(row)
        return rows, total

    def job_pages(self, *, page_size: int = 500, **filters: Any) -> Iterator[list[dict[str, Any]]]:
        """Every job matching `filters` (those of list_jobs), a page at a time in id order.

        Each page is its own short read, so a listing of any size holds neither a page's worth
        more memory nor a long transaction (which would keep SQLite's WAL from being
        checkpointed); a job is in exactly one page."""
        after: int | None = None
        while True:
            rows, _ = self.list_jobs(after=after, limit=page_size, count=False, **filters)
            if rows:
                yield rows
            if len(rows) < page_size:
                return
            after = rows[-1]["id"]

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

    # ============================================================ Slurm control (issue 3)
    # Arrays addressed as a whole or by task, dependencies' reads, hold/release, requeue,
    # update and signals. Each action is one transaction: the rows are read (and locked on
    # PostgreSQL), the action applies to those in a state that allows it, and every change
    # writes an event row. What did not apply is returned with its state, for the API's 409.

    _IN_CHUNK = 5_000

    def resolve_task(self, array_job_id: int, task_id: int) -> int | None:
        """The job id of task `task_id` of array `array_job_id` (Slurm's `123_4`)."""
        query = select(jobs.c.id).where(jobs.c.array_job_id == array_job_id, jobs.c.array_task_id == task_id)
        with self._read() as conn:
            return conn.execute(query).scalar_one_or_none()

    def array_task_ids(self, job_id: int) -> list[int]:
        """All task ids when `job_id` is an array's id (its first task), else []."""
        query = select(jobs.c.id).where(jobs.c.array_job_id == job_id).order_by(jobs.c.id)
        with self._read() as conn:
            return [r[0] for r in conn.execute(query)]

    def singleton_blockers(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], SingletonState]:
        """For each (user, name): whether such a job runs, and the lowest pending job id."""
        wanted = set(pairs)
        if not wanted:
            return {}
        query = (
            select(jobs.c.user_name, jobs.c.name, jobs.c.state, func.min(jobs.c.id))
            .where(jobs.c.state.in_([RUNNING, PENDING]), jobs.c.name.in_(sorted({n for _, n in wanted})))
            .group_by(jobs.c.user_name, jobs.c.name, jobs.c.state)
        )
        running: set[tuple[str, str]] = set()
        first_pending: dict[tuple[str, str], int] = {}
        with self._read() as conn:
            for user, name, state, lowest in conn.execute(query):
                if (user, name) not in wanted:
                    continue
                if state == RUNNING:
                    running.add((user, name))
                else:
                    first_pending[(user, name)] = int(lowest)
        return {pair: SingletonState(pair in running, first_pending.get(pair)) for pair in wanted}

    def _control_rows(self, conn: Connection, ids: Sequence[int]) -> dict[int, Any]:
        found: dict[int, Any] = {}
        for start in range(0, len(ids), self._IN_CHUNK):
            query = select(
                jobs.c.id, jobs.c.state, jobs.c.node_list, jobs.c.kill_state, jobs.c.held, jobs.c.restart_count
            ).where(jobs.c.id.in_(ids[start : start + self._IN_CHUNK]))
            if self.dialect == "postgresql":
                query = query.with_for_update()
            found.update({r.id: r for r in conn.execute(query)})
        return found

    def _update_ids(self, conn: Connection, ids: Sequence[int], current: str, /, **values: Any) -> None:
        """Set `values` on the jobs `ids` still in state `current` (the compare-and-set)."""
        for start in range(0, len(ids), self._IN_CHUNK):
            conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(ids[start : start + self._IN_CHUNK]), jobs.c.state == current)
                .values(**values)
            )

    def _events_for(
        self,
        conn: Connection,
        ids: Sequence[int],
        now: datetime,
        from_state: str,
        to_state: str,
        reason: str,
        message: str | None = None,
    ) -> None:
        """One event row per job, written by the database from the jobs' own rows."""
        for start in range(0, len(ids), self._IN_CHUNK):
            conn.execute(
                insert(job_events).from_select(
                    ["job_id", "time", "from_state", "to_state", "reason", "node", "message"],
                    select(
                        jobs.c.id,
                        literal(now, job_events.c.time.type),
                        literal(from_state, job_events.c.from_state.type),
                        literal(to_state, job_events.c.to_state.type),
                        literal(reason, job_events.c.reason.type),
                        jobs.c.node_list,
                        literal(message, job_events.c.message.type) if message is not None else null(),
                    ).where(jobs.c.id.in_(ids[start : start + self._IN_CHUNK])),
                )
            )

    def cancel_jobs(self, ids: Sequence[int], now: datetime | None = None) -> ControlOutcome:
        """Cancel many jobs (an array's tasks) at once: pending ones end CANCELLED here, running
        ones are marked for their worker to stop, exactly as `cancel` does for one."""
        now = now or utcnow()
        out = ControlOutcome()
        with self._write() as conn:
            rows = self._control_rows(conn, ids)
            pending = [i for i, r in rows.items() if r.state == PENDING]
            running = [i for i, r in rows.items() if r.state == RUNNING and r.kill_state in (None, PENDING)]
            self._update_ids(conn, pending, PENDING, state=JobState.CANCELLED.value, end_time=now, exit_code="0:0")
            self._events_for(conn, pending, now, PENDING, JobState.CANCELLED.value, "cancel")
            self._update_ids(
                conn, running, RUNNING, kill_state=JobState.CANCELLED.value, kill_time=now
            )
            self._events_for(conn, running, now, RUNNING, RUNNING, "cancel requested")
            out.changed = pending + running
            out.nodes = {rows[i].node_list for i in running if rows[i].node_list}
            changed = set(out.changed)
            out.skipped = {i: r.state for i, r in rows.items() if i not in changed}
            out.found = set(rows)
        return out

    def hold_jobs(self, ids: Sequence[int], held: bool, now: datetime | None = None) -> ControlOutcome:
        """Hold (`held`) or release pending jobs. Holding a held job is a no-op that succeeds;
        releasing one that is not held is skipped (`NOT_HELD`), as is any job not pending."""
        now = now or utcnow()
        out = ControlOutcome()
        with self._write() as conn:
            rows = self._control_rows(conn, ids)
            out.found = set(rows)
            for job_id, row in rows.items():
                if row.state != PENDING:
                    out.skipped[job_id] = row.state
                elif not held and not row.held:
                    out.skipped[job_id] = NOT_HELD
                else:
                    out.changed.append(job_id)
            if held:
                self._update_ids(conn, out.changed, PENDING, held=True, reason=Reason.JOB_HELD_USER.value)
                self._events_for(conn, out.changed, now, PENDING, PENDING, "hold")
            else:
                # The scheduler gives the real reason at its next pass, which the caller wakes.
                self._update_ids(conn, out.changed, PENDING, held=False, reason=Reason.NONE.value)
                self._events_for(conn, out.changed, now, PENDING, PENDING, "release")
        return out

    def requeue_jobs(self, ids: Sequence[int], *, hold: bool = False, now: datetime | None = None) -> ControlOutcome:
        """`scontrol requeue[hold]`: an ended job returns to PENDING now (restart_count + 1); a
        running one is marked for its worker to stop, and returns to PENDING when its process
        has ended (`finish` with state PENDING). A pending job, or one already being stopped,
        is skipped."""
        now = now or utcnow()
        out = ControlOutcome()
        with self._write() as conn:
            rows = self._control_rows(conn, ids)
            out.found = set(rows)
            running = [i for i, r in rows.items() if r.state == RUNNING and r.kill_state is None]
            ended = [i for i, r in rows.items() if r.state in _ENDED]
            out.changed = running + ended
            changed = set(out.changed)
            out.skipped = {
                i: (BEING_STOPPED if r.state == RUNNING else r.state) for i, r in rows.items() if i not in changed
            }
            out.nodes = {rows[i].node_list for i in running if rows[i].node_list}
            self._update_ids(conn, running, RUNNING, kill_state=PENDING, kill_time=now, **({"held": True} if hold else {}))
            self._events_for(conn, running, now, RUNNING, RUNNING, "requeue requested")
            for state in {rows[i].state for i in ended}:
                some = [i for i in ended if rows[i].state == state]
                self._update_ids(conn, some, state, **_requeued_values(now, hold), restart_count=jobs.c.restart_count + 1)
                self._events_for(conn, some, now, state, PENDING, "requeue")
        return out

    def _requeue_finished(self, conn: Connection, results: Sequence[Finish]) -> None:
        """Return to PENDING the running jobs whose process ended after a requeue request
        (called by `finish` inside its transaction, on rows it locked as RUNNING)."""
        for r in results:
            conn.execute(
                update(jobs)
                .where(jobs.c.id == r.job_id, jobs.c.state == RUNNING)
                .values(
                    **_requeued_values(r.end_time, None),
                    rusage=json.dumps(r.rusage) if r.rusage else None,
                    restart_count=jobs.c.restart_count + 1,
                )
            )
            self._event(
                conn, r.job_id, r.end_time, RUNNING, PENDING, "requeued", r.node,
                f"previous run ended, exit_code={r.exit_code}" if r.exit_code else "previous run ended",
            )

    def update_jobs(self, ids: Sequence[int], changes: Mapping[str, Any], now: datetime | None = None) -> ControlOutcome:
        """`scontrol update`: change `changes` (time_limit, priority, nice, name, comment) of
        pending and running jobs; ended jobs are skipped. Running jobs' nodes are returned so
        their workers re-read the time limit."""
        allowed = {"time_limit", "priority", "nice", "name", "comment"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        now = now or utcnow()
        out = ControlOutcome()
        message = ", ".join(f"{k}={v}" for k, v in sorted(changes.items()))
        with self._write() as conn:
            rows = self._control_rows(conn, ids)
            out.found = set(rows)
            for state in (PENDING, RUNNING):
                some = [i for i, r in rows.items() if r.state == state]
                if some and changes:
                    self._update_ids(conn, some, state, **changes)
                    self._events_for(conn, some, now, state, state, "update", message)
                out.changed += some
            out.skipped = {i: r.state for i, r in rows.items() if r.state not in (PENDING, RUNNING)}
            out.nodes = {r.node_list for r in rows.values() if r.state == RUNNING and r.node_list}
        return out

    def queue_signal(self, ids: Sequence[int], entry: str, now: datetime | None = None) -> ControlOutcome:
        """Ask the workers of running jobs to deliver a signal (`entry` is "[b:]NUMBER").

        Appended, not overwritten: two signals sent in quick succession both arrive.
        """
        now = now or utcnow()
        out = ControlOutcome()
        with self._write() as conn:
            rows = self._control_rows(conn, ids)
            out.found = set(rows)
            out.changed = [i for i, r in rows.items() if r.state == RUNNING]
            out.skipped = {i: r.state for i, r in rows.items() if r.state != RUNNING}
            out.nodes = {rows[i].node_list for i in out.changed if rows[i].node_list}
            self._update_ids(
                conn,
                out.changed,
                RUNNING,
                pending_signal=case(
                    (jobs.c.pending_signal.is_(None), literal(entry, jobs.c.pending_signal.type)),
                    else_=jobs.c.pending_signal + literal("," + entry, jobs.c.pending_signal.type),
                ),
            )
            self._events_for(conn, out.changed, now, RUNNING, RUNNING, "signal", f"signal {entry}")
        return out

    def take_signals(self, node: str) -> dict[int, list[str]]:
        """The signals waiting for the running jobs of `node`, cleared in the same transaction."""
        with self._write() as conn:
            query = select(jobs.c.id, jobs.c.pending_signal).where(
                jobs.c.node_list == node, jobs.c.state == RUNNING, jobs.c.pending_signal.is_not(None)
            )
            if self.dialect == "postgresql":
                query = query.with_for_update()
            taken = {r.id: [e for e in r.pending_signal.split(",") if e] for r in conn.execute(query)}
            if taken:
                conn.execute(update(jobs).where(jobs.c.id.in_(list(taken))).values(pending_signal=None))
        return taken

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
                .values(
                    last_heartbeat=utcnow(),
                    state="UP",
                    # A node back from DOWN ("Not responding", "worker stopped") is that no more.
                    reason=case((nodes.c.state == "DOWN", null()), else_=nodes.c.reason),
                )
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

    # ============================================================ security (tokens)
    # API tokens and per-user counts for the authentication and limits of the API. Only a hash
    # of each token is stored; the token itself is shown once, when it is created.

    def create_token(self, user_name: str, token_hash: str, *, admin: bool, comment: str | None = None) -> int:
        with self._write() as conn:
            return int(
                conn.execute(
                    insert(tokens)
                    .values(
                        user_name=user_name,
                        token_hash=token_hash,
                        admin=admin,
                        created_at=utcnow(),
                        comment=comment,
                    )
                    .returning(tokens.c.id)
                ).scalar_one()
            )

    def token_by_hash(self, token_hash: str) -> dict[str, Any] | None:
        """The live (not revoked) token with this hash, or None."""
        query = select(tokens.c.id, tokens.c.user_name, tokens.c.admin, tokens.c.token_hash).where(
            tokens.c.token_hash == token_hash, tokens.c.revoked_at.is_(None)
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        return dict(row._mapping) if row is not None else None

    def list_tokens(self, *, include_revoked: bool = True) -> list[dict[str, Any]]:
        """Every token without its hash, oldest first."""
        query = select(
            tokens.c.id,
            tokens.c.user_name,
            tokens.c.admin,
            tokens.c.created_at,
            tokens.c.revoked_at,
            tokens.c.comment,
        ).order_by(tokens.c.id)
        if not include_revoked:
            query = query.where(tokens.c.revoked_at.is_(None))
        with self._read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            row["created_at"] = aware(row["created_at"])
            row["revoked_at"] = aware(row["revoked_at"])
        return rows

    def revoke_token(self, token_id: int) -> bool:
        """Revoke a live token; False when no live token has this id."""
        with self._write() as conn:
            result = conn.execute(
                update(tokens)
                .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            return result.rowcount == 1

    def count_pending(self, user_name: str) -> int:
        """PENDING jobs of one user (the per-user submission limit)."""
        query = select(func.count()).select_from(jobs).where(jobs.c.user_name == user_name, jobs.c.state == PENDING)
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    # ================================================================= many nodes
    # Several workers and servers sharing one PostgreSQL: the capacity guard of placements,
    # reaping silent nodes, NOTIFY, and the scheduler's advisory lock. Kept together here so
    # all SQL stays in this module.

    def _same_run(self, conn: Connection, ids: Sequence[int], by_id: Mapping[int, Finish]) -> list[int]:
        """Of the locked RUNNING `ids`, those whose report is about the job's current run.

        A worker that was declared dead may report, once it is back, the end of a run the
        scheduler already ended or requeued; that report must not end the job's new run.
        """
        checked = [i for i in ids if by_id[i].node is not None or by_id[i].restart_count is not None]
        if not checked:
            return list(ids)
        current = {
            r.id: r
            for r in conn.execute(
                select(jobs.c.id, jobs.c.node_list, jobs.c.restart_count).where(jobs.c.id.in_(checked))
            )
        }
        out = []
        for job_id in ids:
            report, row = by_id[job_id], current.get(job_id)
            if row is not None and (
                (report.node is not None and row.node_list != report.node)
                or (report.restart_count is not None and row.restart_count != report.restart_count)
            ):
                continue
            out.append(job_id)
        return out

    def _within_capacity(self, cursor: Any, placements: Sequence[Placement]) -> list[Placement]:
        """The placements that still fit their node, judged under a lock on the node rows.

        The policy decides from a snapshot. Should two schedulers ever act at once (a leader
        that has not yet noticed its lock is gone), the later commit would hand out CPUs the
        earlier one gave away; locking the node rows serialises the two, and this check then
        sees what the other committed. A node declared DOWN meanwhile gets nothing.
        """
        if not placements:
            return []
        names = sorted({p.node for p in placements})

        def node_query() -> Any:
            query = select(nodes.c.name, nodes.c.state, nodes.c.memory_mb, nodes.c.cpu_ids).order_by(nodes.c.name)
            return query.with_for_update() if self.dialect == "postgresql" else query

        # Every node row, locked in name order: few rows, and one statement whatever the names.
        node_rows = {r[0]: r for r in self._query(cursor, "capacity_nodes", node_query) if r[0] in names}
        taken: dict[str, set[int]] = {name: set() for name in names}
        memory: dict[str, int] = {name: 0 for name in names}
        for node_list, cpu_ids, allocated in self._query(
            cursor,
            "capacity_running",
            lambda: select(jobs.c.node_list, jobs.c.cpu_ids, jobs.c.allocated_memory_mb).where(jobs.c.state == RUNNING),
        ):
            if node_list in taken:
                taken[node_list].update(parse_cpu_list(cpu_ids))
                memory[node_list] += allocated or 0
        out = []
        for p in placements:
            row = node_rows.get(p.node)
            if row is None or row[1] != "UP":
                continue
            _, _, node_memory, node_cpu_ids = row
            wanted = set(p.cpu_ids)
            if (
                wanted & taken[p.node]
                or not wanted <= set(parse_cpu_list(node_cpu_ids))
                or memory[p.node] + p.memory_mb > node_memory
            ):
                continue
            taken[p.node] |= wanted
            memory[p.node] += p.memory_mb
            out.append(p)
        return out

    def reap_dead_nodes(self, stale_before: datetime, now: datetime | None = None) -> Reaped:
        """Declare DOWN the nodes silent since before `stale_before`; end or requeue their jobs.

        One transaction, with an event row per job. A job placed but never launched goes back
        to PENDING whatever it asked (no process of it ever existed); a launched job ends
        NODE_FAIL, or returns to PENDING with restart_count + 1 when it asked for --requeue. A
        cancel or time limit already requested decides the end instead. The CPUs are freed by
        the same update, as for every other end of a job.
        """
        now = now or utcnow()
        silent = or_(nodes.c.last_heartbeat.is_(None), nodes.c.last_heartbeat < stale_before)
        busy = select(jobs.c.node_list).where(jobs.c.state == RUNNING, jobs.c.node_list.is_not(None))
        reaped = Reaped()
        with self._write() as conn:
            node_query = select(nodes.c.name, nodes.c.state).where(
                silent, or_(nodes.c.state == "UP", nodes.c.name.in_(busy))
            )
            if self.dialect == "postgresql":
                # A node row locked right now is being heartbeated or placed on: alive.
                node_query = node_query.with_for_update(skip_locked=True)
            node_rows = list(conn.execute(node_query))
            if not node_rows:
                return reaped
            names = [r.name for r in node_rows]
            for r in node_rows:
                if r.state == "UP":
                    conn.execute(
                        update(nodes).where(nodes.c.name == r.name).values(state="DOWN", reason="Not responding")
                    )
                    reaped.nodes.append(r.name)
            job_query = select(
                jobs.c.id, jobs.c.node_list, jobs.c.launched, jobs.c.requeue, jobs.c.kill_state, jobs.c.restart_count
            ).where(jobs.c.state == RUNNING, jobs.c.node_list.in_(names))
            if self.dialect == "postgresql":
                job_query = job_query.with_for_update()
            for job in conn.execute(job_query).all():
                message = f"node {job.node_list} stopped responding"
                # kill_state PENDING: `scontrol requeue` was under way; the dead node ends the run.
                if (job.kill_state is None and (not job.launched or job.requeue)) or job.kill_state == PENDING:
                    restarts = job.restart_count + (1 if job.launched else 0)
                    conn.execute(
                        update(jobs)
                        .where(jobs.c.id == job.id, jobs.c.state == RUNNING)
                        .values(**_requeued_values(now, None), restart_count=restarts)
                    )
                    why = "requeued: node down" if job.launched else "requeued: node down before launch"
                    self._event(conn, job.id, now, RUNNING, PENDING, why, job.node_list, message)
                    reaped.requeued.append(job.id)
                    continue
                state = JobState(job.kill_state) if job.kill_state else JobState.NODE_FAIL
                reason = {
                    JobState.TIMEOUT: Reason.TIME_LIMIT.value,
                    JobState.CANCELLED: Reason.NONE.value,
                }.get(state, Reason.NODE_DOWN.value)
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job.id, jobs.c.state == RUNNING)
                    .values(state=state.value, reason=reason, end_time=now, error_msg=message)
                )
                self._event(conn, job.id, now, RUNNING, state.value, reason, job.node_list, message)
                reaped.ended.append(job.id)
        return reaped

    def relaunch(self, node: str, job_ids: Sequence[int]) -> list[int]:
        """Hand claimed jobs of `node` that provably never started back to its launch path."""
        if not job_ids:
            return []
        now = utcnow()
        with self._write() as conn:
            query = select(jobs.c.id).where(
                jobs.c.id.in_(job_ids), jobs.c.state == RUNNING, jobs.c.node_list == node, jobs.c.launched.is_(True)
            )
            if self.dialect == "postgresql":
                query = query.with_for_update()
            ids = [r[0] for r in conn.execute(query)]
            if ids:
                conn.execute(update(jobs).where(jobs.c.id.in_(ids)).values(launched=False, pid=None))
                for job_id in ids:
                    self._event(conn, job_id, now, RUNNING, RUNNING, "relaunch", node, "claimed, never started")
        return ids

    def scheduler_holder(self) -> str | None:
        """application_name of the connection holding the scheduler lock (PostgreSQL only)."""
        if self.dialect != "postgresql":
            return None
        query = text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = :key "
            "AND l.objsubid = 1"
        )
        with self._read() as conn:
            return conn.execute(query, {"key": SCHEDULER_LOCK_KEY}).scalar()

    def notify(self, payload: str, channel: str = NOTIFY_CHANNEL) -> None:
        """NOTIFY the listeners of `channel` (PostgreSQL only; a no-op on SQLite)."""
        if self.dialect != "postgresql":
            return
        with self.engine.connect() as conn:
            conn.execute(select(func.pg_notify(channel, payload)))
            conn.commit()

    def direct_conninfo(self) -> str:
        """The URL for a dedicated psycopg connection (outside the pool), password included."""
        return make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(slots=True)
class Reaped:
    """What one reaping pass did: nodes declared DOWN, jobs ended, jobs back to PENDING."""

    nodes: list[str] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)


def is_disconnect(exc: BaseException | None) -> bool:
    """Whether `exc` says the database is unreachable (down, restarting, network), as opposed
    to a failed statement: the loops ride the former out quietly."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or type(exc.orig).__name__ == "OperationalError"
    return type(exc).__name__ == "OperationalError"


def pg_connect(conninfo: str, application_name: str) -> Any:
    """A dedicated autocommit psycopg connection: for LISTEN and for the scheduler lock, whose
    lives are tied to one connection and must not go back to a pool."""
    import psycopg

    return psycopg.connect(conninfo, autocommit=True, application_name=application_name[:63], **PG_CONNECT_ARGS)


def pg_listen(conn: Any, channel: str = NOTIFY_CHANNEL) -> None:
    from psycopg import sql

    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))


def pg_try_scheduler_lock(conn: Any) -> bool:
    """Take the scheduler's session-level advisory lock if free; it lives as long as `conn`."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (SCHEDULER_LOCK_KEY,)).fetchone()
    return bool(row and row[0])


def pg_ping(conn: Any) -> None:
    conn.execute("SELECT 1").fetchone()


_PENDING_COLUMNS = (
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


def _pending_query() -> Any:
    """Pending jobs in scheduling order, as `_pending_job` reads them."""
    return (
        select(*_PENDING_COLUMNS)
        .where(jobs.c.state == PENDING)
        .order_by((jobs.c.priority - jobs.c.nice).desc(), jobs.c.submit_time, jobs.c.id)
    )


def _touched_query() -> Any:
    """The jobs of the events in (:after, :last]: what changed since the scheduler last looked."""
    return select(job_events.c.job_id).where(job_events.c.id > bindparam("after"), job_events.c.id <= bindparam("last"))


def _pending_job(row: tuple[Any, ...]) -> PendingJob:
    (job_id, cpus_per_task, ntasks, memory_per_node, memory_per_cpu, partition, priority, nice, submit_time,
     exclusive, held, begin_time, dependency, array_job_id, array_max_running, reason) = row
    cpus = cpus_per_task * ntasks
    begin = aware(begin_time)
    return PendingJob(
        id=job_id,
        cpus=cpus,
        memory_mb=memory_per_node or ((memory_per_cpu or 0) * cpus),
        partition=partition,
        priority=priority - nice,
        submit_time=aware(submit_time).timestamp(),  # type: ignore[union-attr]
        exclusive=bool(exclusive),
        held=bool(held),
        begin_time=begin.timestamp() if begin else None,
        dependency=DependencyStatus.WAITING if dependency else DependencyStatus.SATISFIED,
        array_job_id=array_job_id,
        array_max_running=array_max_running,
        reason=reason,
    )


def _end_rows(done: Sequence[Finish]) -> list[dict[str, Any]]:
    """Parameters of the compare-and-set that ends each run of `done` (`finish`)."""
    return [
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
    ]


def _end_events(done: Sequence[Finish]) -> list[dict[str, Any]]:
    """The event rows of the runs `done` ends."""
    return [
        {
            "job_id": r.job_id,
            "time": r.end_time,
            "from_state": RUNNING,
            "to_state": r.state.value,
            "reason": r.reason,
            "message": r.error_msg or (f"exit_code={r.exit_code}" if r.exit_code else None),
        }
        for r in done
    ]


_TIME_COLUMNS = ("submit_time", "eligible_time", "begin_time", "start_time", "end_time", "kill_time")


def _normalise_times(row: dict[str, Any]) -> None:
    for key in _TIME_COLUMNS:
        if key in row:
            row[key] = aware(row[key])


def _differ_only_in_task(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether the rows of an array are one row repeated but for `array_task_id` (as
    `build_rows` makes them), so the database can copy the first instead of binding each."""
    first = rows[0]
    keys = first.keys() - {"array_task_id", "array_job_id"}
    for row in rows[1:]:
        if row.keys() - {"array_task_id", "array_job_id"} != keys:
            return False
        for key in keys:
            value, expected = row[key], first[key]
            if value is not expected and value != expected:
                return False
    return True


def _arithmetic_runs(ids: Sequence[int]) -> list[tuple[int, int, int]]:
    """Sorted ids as (first, last, step) runs: [0..9999] is one run, [1, 3, 5, 10] two."""
    runs: list[tuple[int, int, int]] = []
    i, n = 0, len(ids)
    while i < n:
        if i + 1 == n:
            runs.append((ids[i], ids[i], 1))
            break
        step = ids[i + 1] - ids[i]
        j = i + 1
        while j + 1 < n and ids[j + 1] - ids[j] == step:
            j += 1
        runs.append((ids[i], ids[j], step))
        i = j + 1
    return runs


# ------------------------------------------------------------ Slurm control (issue 3)
# What `skipped` says when the state alone does not explain why an action did not apply.
NOT_HELD = "NOT_HELD"
BEING_STOPPED = "BEING_STOPPED"
_ENDED = frozenset(s.value for s in JobState) - {PENDING, RUNNING}


@dataclass(slots=True)
class ControlOutcome:
    """What an action on jobs did: ids it changed, ids it skipped with their state (or
    NOT_HELD / BEING_STOPPED), the ids that exist, and the nodes whose workers must wake."""

    changed: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    found: set[int] = field(default_factory=set)
    nodes: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class SingletonState:
    """Jobs of one (user, name): whether one runs, and the lowest id among the pending ones."""

    running: bool
    first_pending_id: int | None


def _requeued_values(now: datetime, hold: bool | None) -> dict[str, Any]:
    """A job back to PENDING for a new run: its allocation and the traces of the last run go.

    `hold` None keeps the job's hold flag (a requeuehold already set it on the running job).
    """
    values: dict[str, Any] = {
        "state": PENDING,
        "reason": Reason.JOB_HELD_USER.value if hold else Reason.NONE.value,
        "node_list": None,
        "cpu_ids": None,
        "allocated_cpus": 0,
        "allocated_memory_mb": 0,
        "start_time": None,
        "end_time": None,
        "exit_code": None,
        "error_msg": None,
        "eligible_time": now,
        "launched": False,
        "pid": None,
        "kill_state": None,
        "kill_time": None,
        "pending_signal": None,
    }
    if hold is not None:
        values["held"] = hold
    return values
