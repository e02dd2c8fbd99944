"""Several servers and workers sharing one PostgreSQL: NOTIFY and LISTEN (the bus between
processes), the active scheduler's advisory lock, and telling a lost database from a failed
statement. The capacity guard of placements is in `scheduling`, dead nodes are reaped there."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from conductor.errors import StoreUnavailable
from conductor.store.engine import PG_CONNECT_ARGS, Database

# pg_advisory_lock key of the active scheduler (727001 serialises migrations, see `engine`).
SCHEDULER_LOCK_KEY = 727002
NOTIFY_CHANNEL = "conductor"


class Coordination(Database):
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

    def direct_conninfo(self) -> str:
        """The URL for a dedicated psycopg connection (outside the pool), password included."""
        return make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)


def is_disconnect(exc: BaseException | None) -> bool:
    """Whether `exc` says the database is unreachable (down, restarting, network), as opposed
    to a failed statement: the loops ride the former out quietly."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, StoreUnavailable):  # the store's own word for it (engine.unavailable)
        return True
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


def pg_notify_many(conn: Any, payloads: list[str], channel: str = NOTIFY_CHANNEL) -> None:
    """NOTIFY `channel` once per payload, in one statement and one round trip, on a dedicated
    autocommit connection (pg_connect)."""
    conn.execute("SELECT pg_notify(%s, payload) FROM unnest(%s::text[]) AS payload", (channel, payloads))


def pg_ping(conn: Any) -> None:
    conn.execute("SELECT 1").fetchone()
