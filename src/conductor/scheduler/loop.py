"""The scheduler loop: feeds the pure policy from the store and applies its decision.

It runs a pass whenever something that can change a decision happens (submit, finish, cancel,
a node joining), and every `check_interval` seconds only as a fallback.
"""

from __future__ import annotations

import bisect
import gc
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from conductor.bus import SCHEDULER, Bus, node_topic
from conductor.monitoring.metrics import SCHEDULER_PASS
from conductor.scheduler.dependencies import DependencyResolver, DependencyStore
from conductor.scheduler.limits import Limits, Usage
from conductor.scheduler.policy import (
    EASY,
    Backfill,
    Commitments,
    Decision,
    DependencyStatus,
    Estimate,
    NodeView,
    PendingJob,
    Placement,
    PlacementPolicy,
    order_key,
    schedule,
)
from conductor.scheduler.priority import Multifactor, PriorityConfig
from conductor.store import Reaped, is_disconnect, utcnow

log = logging.getLogger("conductor.scheduler")

MIN_PASS_GAP = 0.005  # seconds between the end of a pass and the start of the next


class SchedulerStore(DependencyStore, Protocol):
    """What the loop needs from the store (conductor.store.Store provides it; its statements
    are in conductor.store.scheduling), dependency resolution's reads included."""

    def pending_snapshot(self) -> tuple[int, list[PendingJob]]: ...

    def pending_changes(self, after_event: int) -> tuple[int, set[int], list[PendingJob]]: ...

    def node_views(self, *, live_after: datetime | None = None) -> list[NodeView]: ...

    def running_per_array(self) -> dict[int, int]: ...

    def apply_decision(
        self,
        placements: Sequence[Placement],
        reasons: Mapping[int, str],
        *,
        estimates: Mapping[int, Estimate | None] | None = None,
    ) -> list[Placement]: ...

    def reap_dead_nodes(self, stale_before: datetime) -> Reaped: ...

    def refresh_usage(self, half_life: float | None) -> dict[tuple[str, str], float]: ...

    def running_holdings(self) -> tuple[dict[tuple[str, str | None], Usage], dict[tuple[str, str], Usage]]: ...


class Configuration(Protocol):
    """The cluster configuration as the loop uses it (config.live.LiveConfig provides it)."""

    def refresh(self) -> bool: ...

    def generation(self) -> int: ...

    def limits(self) -> Limits | None: ...

    def backfill(self, base: Backfill) -> Backfill: ...

    def priority(self) -> PriorityConfig | None: ...

    def tiers(self) -> dict[str, int] | None: ...

    def assign(self, nodes: list[NodeView]) -> list[NodeView]: ...


class Leadership(Protocol):
    """Whether this process is the one that schedules (leader.SchedulerLock)."""

    def is_active(self) -> bool: ...

    def active_since(self) -> float: ...


class Scheduler:
    def __init__(
        self,
        store: SchedulerStore,
        bus: Bus,
        *,
        check_interval: float = 5.0,
        heartbeat_timeout: float = 30.0,
        policy: PlacementPolicy | str = PlacementPolicy.SPREAD,
        clock: Callable[[], float] = time.time,
        dependency_resolver: Callable[[SchedulerStore, list[PendingJob]], None] | None = None,
        leader: Leadership | None = None,
        backfill: Backfill = EASY,
        config: Configuration | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.check_interval = check_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.policy = PlacementPolicy(policy)
        self.backfill = backfill
        # The configuration file's limits, partitions and backfill settings; None: no file.
        self.config = config
        self._generation = config.generation() if config is not None else 0
        # The multifactor priority as of the last full snapshot (None: not configured).
        self._multifactor: Multifactor | None = None
        self._cluster = (0, 0)  # CPUs and nodes, for the job-size factor
        # What the last pass over the whole backlog reserved (plus what passes over new jobs
        # added since): a pass over new jobs alone must not start one into a reservation.
        self._commitments: Commitments | None = None
        self.clock = clock
        # Dependencies are resolved unless a caller substitutes its own hook.
        self.dependency_resolver = dependency_resolver if dependency_resolver is not None else DependencyResolver()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0
        self._next_begin: float | None = None
        self._cache: dict[int, PendingJob] = {}
        self._quiet = False
        self._last_nodes: tuple[tuple[str, bool, int, int], ...] = ()
        self._ordered: list[PendingJob] = []
        self._last_event = 0
        self._last_full = float("-inf")
        # None: the only scheduler there is (`conductor up`), active from its start.
        self.leader = leader
        self._started = time.monotonic()
        self._next_reap = 0.0
        self._last_reap_check = time.time()  # wall clock: it also runs while the host sleeps
        self._stalled_at = 0.0
        bus.subscribe(SCHEDULER, self.wake)

    def wake(self) -> None:
        self._wake.set()

    def invalidate(self) -> None:
        """Forget the cached backlog: the next pass reads every pending job again."""
        self._last_full = float("-inf")
        self._commitments = None

    def _pending(self) -> tuple[list[PendingJob], list[PendingJob] | None]:
        """(the backlog in scheduling order, the jobs this pass must consider; None: all).

        Reading every pending job on every wake-up would make each submission cost time in
        proportion to the backlog; instead a pass reads only the jobs whose events are new,
        and a full snapshot every `check_interval` repairs anything the feed missed. When the
        only news is newly submitted jobs, nothing freed resources, so the jobs that waited
        before still cannot start: the pass considers the new jobs alone.
        """
        if time.monotonic() - self._last_full >= self.check_interval:
            # The old backlog goes first: kept alive while the new one is read, its records
            # (as many as there are pending jobs) would double what every collection of the
            # garbage collector traverses meanwhile. Should the read fail, `_last_full` is
            # unchanged and the next pass reads everything again.
            self._cache = {}
            self._ordered = []
            self._last_event, snapshot = self.store.pending_snapshot()
            if self._prioritise(snapshot, full=True):
                snapshot.sort(key=order_key)
            self._cache = {j.id: j for j in snapshot}
            self._ordered = snapshot
            self._last_full = time.monotonic()
            return self._ordered, None
        self._last_event, touched, pending = self.store.pending_changes(self._last_event)
        self._quiet = not touched
        self._prioritise(pending, full=False)
        fresh = [j for j in pending if j.id not in self._cache]
        only_new = bool(touched) and len(fresh) == len(touched)
        # The backlog stays sorted by edits, not by sorting it again: under a stream of
        # submissions and ends, a pass would otherwise sort thousands of jobs to add a few.
        stale = {job_id for job_id in touched if self._cache.pop(job_id, None) is not None}
        for job in pending:
            self._cache[job.id] = job
        if stale:
            self._ordered = [j for j in self._ordered if j.id not in stale]
        for job in sorted(pending, key=order_key):
            bisect.insort(self._ordered, job, key=order_key)
        if only_new:
            return self._ordered, sorted(fresh, key=order_key)
        return self._ordered, None

    def _prioritise(self, jobs: list[PendingJob], *, full: bool) -> bool:
        """Give `jobs` their partitions' PriorityTier and multifactor priorities; False when the
        configuration sets neither (the store's order stands). A full snapshot first brings the
        users' decayed usage up to date."""
        config = self.config.priority() if self.config is not None else None
        tiers = self.config.tiers() if self.config is not None else None
        if tiers is not None:
            for job in jobs:
                job.tier = tiers.get(job.partition, 0)
        if config is None:
            self._multifactor = None
            return tiers is not None
        current = self._multifactor
        if full or current is None or current.config is not config:
            usage = self.store.refresh_usage(config.half_life) if config.weights.fairshare else {}
            cpus, count = self._cluster
            current = self._multifactor = Multifactor(
                config, usage, cluster_cpus=cpus, cluster_nodes=count
            )
        current.assign(jobs, self.clock())
        return True

    def _forget(self, placed: set[int], decision: Decision) -> None:
        for job_id in placed:
            self._cache.pop(job_id, None)
        if placed:
            self._ordered = [j for j in self._ordered if j.id not in placed]
        for job_id, reason in decision.reasons.items():
            cached = self._cache.get(job_id)
            if cached is not None:
                cached.reason = reason
        for job_id, estimate in decision.estimate_changes.items():
            cached = self._cache.get(job_id)
            if cached is not None:
                cached.expected_start = None if estimate is None else float(round(estimate.start))
                cached.expected_node = None if estimate is None else estimate.node

    def run_pass(self) -> Decision:
        # A full pass allocates a record per pending job (100,000 and more) and keeps them:
        # the cyclic collector would scan the whole heap several times over while they are
        # made (130-190 ms of a 0.9 s pass at 100,000). It waits until the pass is over
        # instead; reference counting still frees everything meanwhile.
        paused = time.monotonic() - self._last_full >= self.check_interval and gc.isenabled()
        if paused:
            gc.disable()
        try:
            return self._run_pass()
        finally:
            if paused:
                gc.enable()

    def _run_pass(self) -> Decision:
        live_after = utcnow() - timedelta(seconds=self.heartbeat_timeout)
        self._quiet = False
        self._take_config()
        backlog, fresh = self._pending()
        now = self.clock()
        begin_due = self._next_begin is not None and self._next_begin <= now
        if self._quiet and not begin_due:
            # No job changed since the last pass: only the nodes can have (one joined, or
            # came back). When they have not either, the last decision stands.
            nodes = self._node_views(live_after)
            if _fingerprint(nodes) == self._last_nodes:
                return Decision()
        commitments = self._commitments
        if fresh is not None and not begin_due:
            horizon = commitments.horizon() if commitments is not None else None
            if commitments is None or (horizon is not None and order_key(fresh[0]) < horizon):
                # A new job ahead of a reserved one can take its reservation: plan everything.
                fresh = None
        if fresh is None or begin_due:
            pending = backlog
            commitments = None
            # A job held by --begin must start on time, not at the next fallback tick.
            self._next_begin = min(
                (j.begin_time for j in pending if j.begin_time and j.begin_time > now), default=None
            )
        else:
            pending = fresh
            begins = [j.begin_time for j in fresh if j.begin_time and j.begin_time > now]
            if begins:
                self._next_begin = min(begins + ([self._next_begin] if self._next_begin else []))
        if not pending:
            return Decision()
        if self.dependency_resolver is not None:
            self.dependency_resolver(self.store, pending)
        nodes = self._node_views(live_after)
        self._last_nodes = _fingerprint(nodes)
        backfill, limits, usage, account_usage = self._policy_inputs()
        decision = schedule(
            pending,
            nodes,
            now,
            # Read only when a waiting task has a limit (`--array=...%N`): one query less
            # in nearly every pass, a round trip on PostgreSQL.
            running_per_array=(
                self.store.running_per_array() if any(j.array_max_running is not None for j in pending) else {}
            ),
            policy=self.policy,
            presorted=True,
            backfill=backfill,
            ahead=commitments,
            limits=limits,
            usage=usage,
            account_usage=account_usage,
        )
        if commitments is None:
            self._commitments = decision.commitments
        else:
            commitments.merge(decision.commitments)
        if decision.placements or decision.reasons or decision.estimate_changes:
            try:
                applied = self.store.apply_decision(
                    decision.placements, decision.reasons, estimates=decision.estimate_changes
                )
            except Exception:
                self.invalidate()  # what was written is unknown: read it all again
                raise
            for node in {p.node for p in applied}:
                self.bus.publish(node_topic(node))
            self._forget({p.job_id for p in applied}, decision)
            if applied and any(j.dependency is DependencyStatus.WAITING for j in pending):
                # `after:` is met by a start: jobs waiting on one decide again at once.
                self.wake()
            if len(applied) < len(decision.placements):
                # A placement lost its compare-and-set (cancelled, or the node filled up
                # meanwhile): read the backlog again rather than guess what became of it.
                self.invalidate()
        self.passes += 1
        return decision

    def _policy_inputs(
        self,
    ) -> tuple[Backfill, Limits | None, dict[tuple[str, str | None], Usage] | None, dict[tuple[str, str], Usage] | None]:
        """The backfill settings, the limits and what running jobs hold against them (per user
        and QOS, and per user and account when accounts have limits)."""
        config = self.config
        if config is None:
            return self.backfill, None, None, None
        limits = config.limits()
        if limits is None:
            return config.backfill(self.backfill), None, None, None
        by_qos, by_account = self.store.running_holdings()
        return config.backfill(self.backfill), limits, by_qos, by_account if limits.accounting is not None else None

    def _take_config(self) -> None:
        config = self.config
        if config is None:
            return
        config.refresh()
        if config.generation() != self._generation:
            # Limits, partitions or states changed: every waiting job decides again.
            self._generation = config.generation()
            self.invalidate()

    def _node_views(self, live_after: datetime) -> list[NodeView]:
        nodes = self.store.node_views(live_after=live_after)
        self._cluster = (sum(len(n.cpu_ids) for n in nodes), len(nodes))
        return self.config.assign(nodes) if self.config is not None else nodes

    def _next_wakeup(self) -> float:
        timeout = self.check_interval
        if self.config is not None:
            timeout = min(timeout, 1.0)  # a reconfigure elsewhere is seen within a second
        if self._next_begin is not None:
            timeout = min(timeout, max(self._next_begin - self.clock(), 0.0) + 0.01)
        if self.is_active():
            timeout = min(timeout, max(self._next_reap - time.monotonic(), 0.0) + 0.01)
        return timeout

    def run(self) -> None:
        was_active = False
        while not self._stop.is_set():
            self._wake.clear()
            active = self.is_active()
            if active and not was_active:
                self.invalidate()  # a standby taking over knows nothing of the backlog yet
            was_active = active
            if active:
                try:
                    if self.reap():
                        self._wake.set()  # requeued jobs and freed CPUs: decide again at once
                    with SCHEDULER_PASS.time():
                        self.run_pass()
                except Exception as exc:
                    if is_disconnect(exc):
                        log.warning("scheduler pass failed: database unreachable (%s)", type(exc).__name__)
                    else:
                        log.exception("scheduler pass failed")
            else:
                self._last_reap_check = time.time()  # standing by is not standing still
            finished = time.monotonic()
            self._wake.wait(self._next_wakeup())
            # Under a burst of submissions, one pass per request would cost more than the
            # requests themselves; a pass that follows right after another waits a few ms and
            # then takes all that arrived meanwhile. An idle system decides at once.
            pause = MIN_PASS_GAP - (time.monotonic() - finished)
            if pause > 0 and not self._stop.is_set():
                time.sleep(pause)

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
        Likewise after this process itself stood still (a suspended host, a stalled VM): the
        workers' heartbeats may be stale only because nobody ran.
        """
        now = time.monotonic()
        wall = time.time()
        if wall - self._last_reap_check > self.reap_interval + max(self.heartbeat_timeout / 2, 2.0):
            log.warning("the scheduler stood still for %.0fs; judging node silence afresh", wall - self._last_reap_check)
            self._stalled_at = now
        self._last_reap_check = wall
        since = self._started if self.leader is None else self.leader.active_since()
        since = max(since, self._stalled_at)
        if now < since + self.heartbeat_timeout:
            # Not before the grace ends: sleep until then rather than poll towards it.
            self._next_reap = since + self.heartbeat_timeout
            return None
        if now < self._next_reap:
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


def _fingerprint(nodes: list[NodeView]) -> tuple[tuple[str, bool, int, int], ...]:
    """What of the nodes can change a decision: which are up and what they have free."""
    return tuple((n.name, n.up, len(n.free_cpu_ids), n.free_memory_mb) for n in nodes)
