"""Which `conductor server` schedules: the holder of one lock; the others stand by.

On PostgreSQL the lock is a session-level advisory lock held on a connection of its own: when
the holder dies, so does its connection, the server releases the lock, and a standby takes it
at its next try (every `interval` seconds). The holder checks its connection as often and stops
scheduling the moment it cannot prove it still holds the lock. On SQLite (one machine) the
lock is an flock on a file next to the database, released by the kernel when the process dies.

The lock is what makes a second scheduler idle; `Store.apply_decision` re-checks each node's
capacity under a row lock, so even a holder that has not yet noticed it lost the lock cannot
hand out CPUs twice.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from conductor.store import pg_connect, pg_ping, pg_try_scheduler_lock

log = logging.getLogger("conductor.scheduler.leader")


class LockStore(Protocol):
    """What the lock needs from the store (conductor.store.Store provides it)."""

    dialect: str

    @property
    def database(self) -> str | None: ...

    def direct_conninfo(self) -> str: ...


class SchedulerLock:
    """Try to become the active scheduler, keep checking, and say when that changes."""

    def __init__(
        self,
        store: LockStore,
        *,
        interval: float = 1.0,
        on_change: Callable[[bool], None] = lambda _active: None,
        lock_path: Path | None = None,
    ) -> None:
        self.store = store
        self.interval = interval
        self.on_change = on_change
        self.lock_path = lock_path
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self.application_name = f"conductor-scheduler:{self.identity}"
        self._active = False
        self._since = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        self._file: int | None = None

    # What the scheduler asks.
    def is_active(self) -> bool:
        return self._active

    def active_since(self) -> float:
        """time.monotonic() when this process last became the active scheduler."""
        return self._since

    def start(self) -> SchedulerLock:
        self._thread = threading.Thread(target=self._run, name="scheduler-lock", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 6)
        self._release()

    def _run(self) -> None:
        delay = self.interval
        while not self._stop.is_set():
            try:
                if self._active:
                    self._check()
                elif self._try():
                    self._set(True)
                delay = self.interval
            except Exception as exc:  # noqa: BLE001 - lost the database: lose the lock too
                if self._active:
                    log.error("lost the scheduler lock (%s); standing by", exc)
                    self._set(False)
                else:
                    log.warning("cannot reach the database for the scheduler lock (%s)", exc)
                self._release()
                delay = min(delay * 2, 2.0)  # soon after the database is back
            self._stop.wait(delay if not self._active else self.interval)

    def _set(self, active: bool) -> None:
        self._active = active
        if active:
            self._since = time.monotonic()
            log.info("this server (%s) is now the active scheduler", self.identity)
        self.on_change(active)

    def _try(self) -> bool:
        if self.store.dialect == "postgresql":
            if self._conn is None:
                self._conn = pg_connect(self.store.direct_conninfo(), self.application_name)
            return pg_try_scheduler_lock(self._conn)
        path = self.lock_path or Path(str(self.store.database) + ".scheduler.lock")
        if self._file is None:
            self._file = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _check(self) -> None:
        if self._conn is not None:
            pg_ping(self._conn)

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()  # closing the session releases the advisory lock
            except Exception:  # noqa: BLE001 - the connection may already be broken
                pass
        if self._file is not None:
            os.close(self._file)
            self._file = None
        if self._active:
            self._set(False)
