"""The database itself: the engine on SQLite or PostgreSQL, its migrations, and the ways of
holding a connection (Core reads and writes, and DBAPI cursors for the pre-compiled statements).

Every query class of the store (`scheduling`, `nodes`, `jobs`, `dependencies`, `tokens`,
`coordination`) derives from `Database`, and `Store` is all of them over one engine.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from conductor.errors import ConductorError, StoreUnavailable
from conductor.store.statements import Builder, Statements

# libpq options of every PostgreSQL connection: fail fast when the server is unreachable and
# notice a silently dead peer through TCP keepalives instead of waiting forever.
PG_CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
}
# pg_advisory_lock key that serialises migrations (the scheduler's is in `coordination`).
MIGRATION_LOCK_KEY = 727001
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back naive; they were written in UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# What SQLite's text timestamps (UTC) count from.
_NAIVE_EPOCH = datetime(1970, 1, 1)


def epoch_seconds(value: str | datetime) -> float:
    """A timestamp as the driver returns it (`Statements.driver_rows`), in seconds since the
    epoch: exactly `aware(<the datetime SQLAlchemy would return>).timestamp()`.

    SQLite hands back the text SQLAlchemy wrote ('YYYY-MM-DD HH:MM:SS.ffffff', UTC), which
    SQLAlchemy itself would read with `fromisoformat`; subtracting a naive epoch gives the same
    timedelta, hence the same float, as an aware datetime's `timestamp()`, without making the
    aware datetime (`replace(tzinfo=...)` and `timestamp()` cost four times the parse, which
    a backlog of 100,000 jobs pays per row). PostgreSQL hands back an aware datetime.
    """
    if isinstance(value, str):
        return (datetime.fromisoformat(value) - _NAIVE_EPOCH).total_seconds()
    return aware(value).timestamp()  # type: ignore[union-attr]


def driver_time(value: str | datetime) -> datetime:
    """A timestamp as the driver returns it (`Statements.driver_rows`), as the aware datetime
    SQLAlchemy would have made of it (SQLite: its text, UTC; PostgreSQL: a datetime)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


TIME_COLUMNS = (
    "submit_time", "eligible_time", "begin_time", "start_time", "end_time", "kill_time", "expected_start_time"
)


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


_DISK_FULL = ("database or disk is full", "could not extend file", "no space left on device")


def is_operational(exc: BaseException) -> bool:
    """Whether `exc` is the driver's operational failure (unreachable, disk full, locked, out of
    connections) rather than a statement's fault: the request may be retried later."""
    cause = getattr(exc, "orig", None) or exc
    return any(kind.__name__ == "OperationalError" for kind in type(cause).__mro__)


def as_unavailable(exc: BaseException) -> StoreUnavailable:
    """The StoreUnavailable an operational failure means, its message fit for a client."""
    cause = getattr(exc, "orig", None) or exc
    text = redact_secrets(str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__)
    if any(marker in text.lower() for marker in _DISK_FULL):
        text = f"its file system is full: {text}"
    return StoreUnavailable(text, type(cause).__name__)


@contextlib.contextmanager
def unavailable() -> Iterator[None]:
    """Turn the driver's operational failures (cannot reach the database, its disk is full,
    no connection left) into StoreUnavailable (its kind in `kind`): a 503 for the API, a retry
    for the loops, never a 500."""
    try:
        yield
    except StoreUnavailable:
        raise
    except Exception as exc:
        if not is_operational(exc):
            raise
        raise as_unavailable(exc) from exc


PING_AFTER_IDLE = 1.0
"""Seconds a pooled PostgreSQL connection may rest before it is pinged at its next checkout."""


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection at checkout only when it has rested: SQLAlchemy's pre-ping pings
    at every checkout, a round trip that cost a busy submission path as much as its insert. A
    connection in steady use is known alive; one that rested may have outlived a database
    restart, and a failed ping makes the pool replace it before anyone uses it."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["rested_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        rested_since = record.info.get("rested_since")
        if rested_since is None or time.monotonic() - rested_since < PING_AFTER_IDLE:
            return
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_connection.commit()  # not rollback(), which makes psycopg forget its prepared statements
        except Exception as exc:
            raise DisconnectionError(str(exc)) from exc


def protect_sqlite_files(url: str) -> list[Path]:
    """Create an SQLite database (and its WAL files, which SQLite creates with the database's
    mode) readable by its owner only: it holds every job's script and environment. The files
    of the database (none for another one)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return []
    path = Path(parsed.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):  # not ours to create: opening it will say more
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600))
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    for candidate in files:
        with contextlib.suppress(FileNotFoundError, PermissionError):
            os.chmod(candidate, 0o600)
    return files


class Database:
    """One engine and the connections the query classes run their statements on."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        if self.dialect == "postgresql" and make_url(url).drivername == "postgresql":
            url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None
        self._local = threading.local()
        self._held_lock = threading.Lock()
        self._held: list[Any] = []
        self.engine: Engine = self._make_engine(url, echo)
        self._statements = Statements(self.engine.dialect)

    @property
    def database(self) -> str | None:
        """The database's name: for SQLite, its file."""
        return make_url(self.url).database

    # ----------------------------------------------------------------- set-up
    def _make_engine(self, url: str, echo: bool) -> Engine:
        if self.dialect == "sqlite":
            path = make_url(url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                url,
                echo=echo,
                # A failed statement's error names its statement, not the values bound to it:
                # they are jobs' scripts and environments (secrets among them), and errors reach
                # the log. (A database's own message may still quote a value it refused.)
                hide_parameters=True,
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
        engine = create_engine(
            url,
            echo=echo,
            hide_parameters=True,  # as on SQLite
            pool_size=10,
            max_overflow=20,
            # A database host that vanishes must fail calls in seconds, not hang the loops. The
            # name tells an operator (pg_stat_activity) which process holds which connections.
            connect_args={**PG_CONNECT_ARGS, "application_name": f"conductor-pool:{socket.gethostname()}:{os.getpid()}"[:63]},
        )
        _ping_when_idle(engine)
        return engine

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest migration."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                # Two servers starting together must not both run the migrations.
                conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")
            config.attributes["connection"] = conn
            try:
                command.upgrade(config, "head")
                conn.commit()
            finally:
                if self.dialect == "postgresql":
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")
                    conn.commit()

    def close(self) -> None:
        with self._held_lock:
            held, self._held = self._held, []
        for connection in held:
            with contextlib.suppress(Exception):
                connection.invalidate()  # closed for good, not handed back to a pool being disposed
        self.engine.dispose()

    def ping(self) -> None:
        with self._read() as conn:
            conn.exec_driver_sql("SELECT 1")

    # ------------------------------------------------------------ connections
    @contextmanager
    def _write(self) -> Iterator[Connection]:
        # SQLite has one writer; serialising in-process writers here avoids busy-waiting on
        # the file lock, which costs far more than a mutex.
        if getattr(self._local, "batch", None) is not None:
            # It would wait for the write lock this thread holds: a bug, said at once.
            raise RuntimeError("a write outside the raw statements inside batched_writes()")
        if self._write_lock is not None:
            with unavailable(), self._write_lock, self.engine.begin() as conn:
                yield conn
        else:
            with unavailable(), self.engine.begin() as conn:
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with unavailable(), self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn = conn.execution_options(readonly=True)
                yield conn
                conn.rollback()
                return
            # PostgreSQL: each statement on its own, as `_raw_read` says why; the pool sets the
            # connection back to transactions when it returns.
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def _dbapi(self) -> Iterator[Any]:
        """A DBAPI connection for the pre-compiled statements (`statements.Statements`).

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
    def batched_writes(self) -> Iterator[bool]:
        """One transaction for the raw writes (`_raw_write`) this thread makes until the end of
        the block, each in a savepoint of its own: one that fails is undone alone, and its
        caller sees its error, as it would have alone. All commit at the end, or none: an
        error of the commit itself reaches the block's caller. Yields whether the writes wait
        for the end of the block (on SQLite; elsewhere each is its own transaction, as without
        the block). Other connections see nothing of them until then.

        The API's event loop submits the jobs that arrived in one turn so (SQLite only, where
        submissions run on the loop): a commit is most of a submission's cost there, as it
        writes every page the insert touched to the WAL, and a batch's jobs share their pages.
        Measured on a 2-core machine: 88 µs of CPU a job alone, 45 in batches of 4.
        """
        if self.dialect != "sqlite" or getattr(self._local, "batch", None) is not None:
            # Elsewhere each write is its own transaction; in a batch already, it is that one's.
            yield False
            return
        with self._raw_write() as cursor:
            self._local.batch = cursor
            try:
                yield True
                # An error such as a full disk makes SQLite roll the whole transaction back,
                # not only the failing write's savepoint: what the block stored before is gone.
                if not cursor.connection.in_transaction:
                    raise StoreUnavailable("the database rolled back the batch's transaction", "rollback")
            finally:
                self._local.batch = None

    @contextmanager
    def _raw_write(self) -> Iterator[Any]:
        """A DBAPI cursor inside a write transaction, for the hottest statements only.

        SQLAlchemy Core spends about 100 µs of CPU per statement on building, caching and
        processing; the driver itself needs a few. On a path taken once per submission that
        is most of the submission's cost, so it runs pre-compiled SQL on the DBAPI connection
        directly.
        """
        batch = getattr(self._local, "batch", None)
        if batch is not None:
            with unavailable():
                if not batch.connection.in_transaction:
                    # Rolled back whole (batched_writes): a savepoint now would commit alone.
                    raise StoreUnavailable("the database rolled back the batch's transaction", "rollback")
                batch.execute("SAVEPOINT write")
                try:
                    yield batch
                except BaseException:
                    if batch.connection.in_transaction:
                        batch.execute("ROLLBACK TO write")
                        batch.execute("RELEASE write")
                    raise
                batch.execute("RELEASE write")
            return
        with (
            unavailable(),
            self._write_lock if self._write_lock is not None else contextlib.nullcontext(),
            self._dbapi() as raw,
        ):
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

    @contextmanager
    def _raw_read(self) -> Iterator[Any]:
        """A DBAPI cursor for `_query`: one connection, reads only.

        On PostgreSQL the connection autocommits meanwhile: each SELECT is its own transaction,
        one round trip. In a transaction, psycopg sends BEGIN before the first statement and
        the read must end with a COMMIT or ROLLBACK: two more round trips per read (a scheduler
        pass makes several reads, a worker's tick too), for nothing, since at READ COMMITTED
        each statement sees its own snapshot whether in a transaction or not. And a ROLLBACK
        would cost more again: psycopg forgets every statement it prepared on the connection
        at each one (sending DEALLOCATE ALL), so the hot statements would never stay prepared.
        Nothing read this way locks rows (FOR UPDATE belongs in `_raw_write`).
        """
        if self.dialect != "sqlite":
            with self._raw_autocommit() as cursor:
                yield cursor
            return
        with unavailable(), self._dbapi() as raw:
            cursor = raw.cursor()
            try:
                yield cursor
            finally:
                cursor.close()

    @contextmanager
    def _raw_autocommit(self) -> Iterator[Any]:
        """A DBAPI cursor on a PostgreSQL connection that autocommits meanwhile: each statement
        is its own transaction, sent in one round trip (no BEGIN before it, no COMMIT after)."""
        assert self.dialect != "sqlite"
        with unavailable(), self._dbapi() as raw:
            driver = raw.driver_connection
            driver.autocommit = True
            try:
                cursor = raw.cursor()
                try:
                    yield cursor
                finally:
                    cursor.close()
            finally:
                try:
                    driver.autocommit = False  # as the pool and `_raw_write` expect it
                except Exception:  # noqa: BLE001 - a broken connection: what failed is raised already
                    raw.invalidate()  # its state unknown, it must not go back to the pool

    # ------------------------------------------------- pre-compiled statements
    def _query(self, cursor: Any, build: Builder, /, **params: Any) -> list[tuple[Any, ...]]:
        """Rows of the SELECT `build` makes, pre-compiled, on a `_raw_read`/`_raw_write` cursor."""
        return self._statements.rows(cursor, build, params)

    def _driver_query(self, cursor: Any, build: Builder, /, **params: Any) -> Iterator[tuple[Any, ...]]:
        """As `_query`, with the values as the driver returns them, streamed: read them before
        `cursor` closes (`Statements.driver_rows`)."""
        return self._statements.driver_rows(cursor, build, params)

    def _execute_many(self, cursor: Any, build: Builder, rows: Sequence[Mapping[str, Any]]) -> None:
        """The INSERT/UPDATE `build` makes, pre-compiled, once for each of `rows`."""
        self._statements.execute_many(cursor, build, rows)

    def _insert(self, cursor: Any, table: Table, values: Mapping[str, Any]) -> int:
        """INSERT `values` into `table`, pre-compiled; the new row's id."""
        return self._statements.insert(cursor, table, values)
