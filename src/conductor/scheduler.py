"""The scheduler loop: feeds the pure policy from the store and applies its decision.

It runs a pass whenever something that can change a decision happens (submit, finish, cancel,
a node joining), and every `check_interval` seconds only as a fallback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from conductor.bus import SCHEDULER, Bus, node_topic
from conductor.policy import Decision, PlacementPolicy, schedule
from conductor.store import Reaped, Store, utcnow

log = logging.getLogger("conductor.scheduler")


class Leadership(Protocol):
    """Whether this process is the one that schedules (leader.SchedulerLock)."""

    def is_active(self) -> bool: ...

    def active_since(self) -> float: ...


class Scheduler:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        *,
        check_interval: float = 5.0,
        heartbeat_timeout: float = 30.0,
        policy: PlacementPolicy | str = PlacementPolicy.SPREAD,
        clock: Callable[[], float] = time.time,
        dependency_resolver: Callable[[Store, list], None] | None = None,  # type: ignore[type-arg]
        leader: Leadership | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.check_interval = check_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.policy = PlacementPolicy(policy)
        self.clock = clock
        self.dependency_resolver = dependency_resolver
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0
        self._next_begin: float | None = None
        # None: the only scheduler there is (`conductor up`), active from its start.
        self.leader = leader
        self._started = time.monotonic()
        self._next_reap = 0.0
        bus.subscribe(SCHEDULER, self.wake)

    def wake(self) -> None:
        self._wake.set()

    def run_pass(self) -> Decision:
        live_after = utcnow() - timedelta(seconds=self.heartbeat_timeout)
        pending = self.store.pending_for_scheduling()
        now = self.clock()
        # A job held by --begin must start on time, not at the next fallback tick.
        self._next_begin = min((j.begin_time for j in pending if j.begin_time and j.begin_time > now), default=None)
        if not pending:
            return Decision()
        if self.dependency_resolver is not None:
            self.dependency_resolver(self.store, pending)
        nodes = self.store.node_views(live_after=live_after)
        decision = schedule(
            pending,
            nodes,
            now,
            running_per_array=self.store.running_per_array(),
            policy=self.policy,
            presorted=True,
        )
        if decision.placements or decision.reasons:
            applied = self.store.apply_decision(decision.placements, decision.reasons)
            for node in {p.node for p in applied}:
                self.bus.publish(node_topic(node))
        self.passes += 1
        return decision

    def _next_wakeup(self) -> float:
        timeout = self.check_interval
        if self._next_begin is not None:
            timeout = min(timeout, max(self._next_begin - self.clock(), 0.0) + 0.01)
        if self.is_active():
            timeout = min(timeout, max(self._next_reap - time.monotonic(), 0.0) + 0.01)
        return timeout

    def run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            if self.is_active():
                try:
                    if self.reap():
                        self._wake.set()  # requeued jobs and freed CPUs: decide again at once
                    self.run_pass()
                except Exception as exc:  # noqa: BLE001 - a failed pass is retried at the next wake-up
                    if _is_disconnect(exc):
                        log.warning("scheduler pass failed: database unreachable (%s)", type(exc).__name__)
                    else:
                        log.exception("scheduler pass failed")
            self._wake.wait(self._next_wakeup())

    # ------------------------------------------------------------ node failure
    def is_active(self) -> bool:
        return self.leader is None or self.leader.is_active()

    @property
    def reap_interval(self) -> float:
        return max(min(self.check_interval, self.heartbeat_timeout / 4), 0.1)

    def reap(self) -> Reaped | None:
        """Declare dead the nodes silent past the heartbeat timeout (see Store.reap_dead_nodes).

        Only after this process has been the active scheduler for a whole timeout: when the
        database itself was away (a restart) no worker could heartbeat, and judging their
        silence before they had the time to come back would kill every job of the cluster.
        """
        now = time.monotonic()
        since = self._started if self.leader is None else self.leader.active_since()
        if now < since + self.heartbeat_timeout or now < self._next_reap:
            return None
        self._next_reap = now + self.reap_interval
        reaped = self.store.reap_dead_nodes(utcnow() - timedelta(seconds=self.heartbeat_timeout))
        for node in reaped.nodes:
            log.warning("node %s silent for over %.0fs: declared DOWN", node, self.heartbeat_timeout)
        if reaped.ended or reaped.requeued:
            log.warning(
                "jobs of dead nodes: %d ended (NODE_FAIL), %d back to pending: %s",
                len(reaped.ended),
                len(reaped.requeued),
                ",".join(map(str, reaped.ended + reaped.requeued))[:500],
            )
            return reaped
        return None

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="scheduler", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _is_disconnect(exc: BaseException) -> bool:
    from sqlalchemy.exc import DBAPIError

    return isinstance(exc, DBAPIError) and (exc.connection_invalidated or "OperationalError" in type(exc.orig).__name__)
