"""The bus between processes: the same topics as `bus.Bus`, carried by PostgreSQL LISTEN/NOTIFY.

A publish calls this process's subscribers at once and NOTIFYs channel `conductor` with payload
"<sender> <topic>"; a listener thread on a connection of its own hands other processes'
notifications to the subscribers.

The NOTIFY itself is sent by a notifier thread on a connection of its own, not by the publisher:
a submission used to pay for it with a pool checkout, its ping and a commit (three round trips,
more than the submission's own insert), and a burst of submissions sent one NOTIFY each where
one wakes the scheduler as well. The notifier sends what was published since its last send, each
topic once, in one statement. Wake-ups are hints: a lost one costs one fallback tick, never a
job. So publish never raises, and after the listener reconnects it wakes every subscriber
once, for whatever it may have missed while it was away.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Protocol

from conductor.bus import Bus
from conductor.store import NOTIFY_CHANNEL, pg_connect, pg_listen, pg_notify_many

log = logging.getLogger("conductor.bus.postgres")


class NotifyStore(Protocol):
    """What the bus needs from the store (conductor.store.Store provides it)."""

    dialect: str

    def direct_conninfo(self) -> str: ...


class PgBus(Bus):
    def __init__(self, store: NotifyStore, *, name: str = "bus", poll: float = 1.0) -> None:
        super().__init__()
        self.store = store
        self.sender = uuid.uuid4().hex[:12]
        self.application_name = f"conductor-{name}:{socket.gethostname()}:{os.getpid()}"
        self.poll = poll  # how often the listener looks at its stop flag
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outbox: set[str] = set()  # topics published, not yet notified
        self._outbox_lock = threading.Lock()
        self._outbox_ready = threading.Event()
        self._notifier: threading.Thread | None = None
        self._local: dict[str, Callable[[], bool]] = {}  # keep_local()

    def start(self) -> PgBus:
        self._thread = threading.Thread(target=self._listen_forever, name="pgbus-listener", daemon=True)
        self._thread.start()
        self._notifier = threading.Thread(target=self._notify_forever, name="pgbus-notifier", daemon=True)
        self._notifier.start()
        return self

    def keep_local(self, topic: str, while_: Callable[[], bool]) -> None:
        """The server's scheduler, while it is the active one, is the only subscriber of the
        scheduler's topic that acts on it (standby servers' schedulers ignore it): the
        submissions of its own server then wake it in-process alone, with no NOTIFY. Under a
        stream of submissions that NOTIFY cost the server as much CPU as the scheduler's passes
        (the notifier thread sending it, the listener receiving its own notification back)."""
        self._local[topic] = while_

    def publish(self, topic: str) -> None:
        super().publish(topic)
        local = self._local.get(topic)
        if local is not None and local():
            return
        with self._outbox_lock:  # sent by the notifier thread (start())
            self._outbox.add(topic)
        self._outbox_ready.set()

    def close(self) -> None:
        self._stop.set()
        self._outbox_ready.set()
        for thread in (self._thread, self._notifier):
            if thread is not None:
                thread.join(timeout=self.poll + 6)

    def _notify_forever(self) -> None:
        conninfo = self.store.direct_conninfo()
        conn = None
        while not self._stop.is_set():
            self._outbox_ready.wait()
            self._outbox_ready.clear()
            with self._outbox_lock:
                topics, self._outbox = self._outbox, set()
            if not topics:
                continue
            try:
                if conn is None or conn.closed:
                    conn = pg_connect(conninfo, self.application_name.replace("conductor-", "conductor-notify-", 1))
                pg_notify_many(conn, [f"{self.sender} {topic}" for topic in sorted(topics)])
            except Exception as exc:  # noqa: BLE001 - the fallback tick repairs a lost wake-up
                log.debug("NOTIFY %s failed: %s", sorted(topics), exc)
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001 - closing a broken connection
                        pass
                conn = None
        if conn is not None:
            conn.close()

    def _wake_everyone(self) -> None:
        with self._lock:
            topics = list(self._subscribers)
        for topic in topics:
            super().publish(topic)

    def _listen_forever(self) -> None:
        delay = 0.1
        first = True
        conninfo = self.store.direct_conninfo()
        while not self._stop.is_set():
            conn = None
            try:
                conn = pg_connect(conninfo, self.application_name)
                pg_listen(conn, NOTIFY_CHANNEL)
                self.connected.set()
                if not first:
                    log.info("listening for notifications again")
                    self._wake_everyone()
                first = False
                delay = 0.1
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=self.poll):
                        sender, _, topic = note.payload.partition(" ")
                        if sender != self.sender and topic:
                            super().publish(topic)
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect with backoff
                self.connected.clear()
                if not self._stop.is_set():
                    log.warning("notification listener lost the database (%s); retrying in %.1fs", exc, delay)
                    self._stop.wait(delay)
                    delay = min(delay * 2, 5.0)
            finally:
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001 - closing a broken connection
                        pass


def bus_for(store: NotifyStore, name: str = "bus") -> Bus:
    """The bus for processes sharing `store`: LISTEN/NOTIFY on PostgreSQL, else in-process only
    (separate processes on one SQLite file then rely on the fallback tick)."""
    if store.dialect == "postgresql":
        return PgBus(store, name=name).start()
    return Bus()
