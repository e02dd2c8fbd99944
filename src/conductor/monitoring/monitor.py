"""The thread that follows the transition feed and takes the utilisation samples, in the
process that schedules (the holder of the scheduler lock when several servers run)."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Protocol

from conductor.monitoring.feed import TransitionFeed, TransitionStore
from conductor.monitoring.samples import Sampler, SampleStore
from conductor.store.engine import utcnow

log = logging.getLogger("conductor.monitoring")


class MonitorStore(TransitionStore, SampleStore, Protocol):
    dialect: str


class Leadership(Protocol):
    def is_active(self) -> bool: ...


class Monitor:
    def __init__(
        self,
        store: MonitorStore,
        *,
        sample_interval: float,
        sample_keep: float,
        heartbeat_timeout: float,
        poll_interval: float = 1.0,
        leader: Leadership | None = None,
    ) -> None:
        # On PostgreSQL an event id can become visible after a higher one: read with a lag.
        lag = timedelta(seconds=2) if store.dialect == "postgresql" else timedelta(0)
        self.feed = TransitionFeed(store, lag=lag)
        self.sampler = Sampler(store, interval=timedelta(seconds=sample_interval), keep=timedelta(seconds=sample_keep))
        self.heartbeat_timeout = heartbeat_timeout
        self.poll_interval = poll_interval
        self.leader = leader
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> None:
        if self.leader is not None and not self.leader.is_active():
            self.feed.reset()
            return
        now = utcnow()
        self.feed.poll(now)
        self.sampler.maybe_sample(now, now - timedelta(seconds=self.heartbeat_timeout))

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001 - observing must never stop; the next tick retries
                log.warning("monitoring step failed: %s", type(exc).__name__)
            self._stop.wait(self.poll_interval)

    def start(self) -> Monitor:
        self._thread = threading.Thread(target=self.run, name="monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
