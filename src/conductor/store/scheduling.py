"""What the scheduler loop reads and writes: the backlog (a snapshot and the change feed), the
nodes' free resources, the running count per array, the decision applied, and dead nodes reaped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, case, func, or_, select, update

from conductor.domain.cpuset import format_cpu_list, parse_cpu_list
from conductor.domain.priority import DEFAULT_PRIORITY, effective_priority
from conductor.domain.states import LOST_EXIT_CODE, JobState, Reason
from conductor.scheduler.policy import DependencyStatus, Estimate, PendingJob, Placement
from conductor.store.allocations import Allocations, running_allocations
from conductor.store.engine import epoch_seconds, utcnow
from conductor.store.records import Reaped
from conductor.store.schema import job_events, jobs, nodes
from conductor.store.statements import for_update, id_in, id_list
from conductor.store.transitions import PENDING, RUNNING, add_event, event_insert, requeued_values


class SchedulingQueries(Allocations):
    def pending_for_scheduling(self) -> list[PendingJob]:
        """Pending jobs in scheduling order (priority, then submit time, then id)."""
        return self.pending_snapshot()[1]

    def pending_snapshot(self) -> tuple[int, list[PendingJob]]:
        """(newest event id, every pending job in scheduling order).

        The event id is read first: every change up to it is reflected in the jobs read after
        it, so `pending_changes(that id)` later misses nothing that committed in order.
        """
        # The backlog is the largest read of the system (a row per pending job, 100,000 at a
        # time): a pre-compiled statement on the DBAPI cursor, its rows as the driver returns
        # them, each converted once by `_pending_job`. Through Core rows and the columns'
        # result processors the read took twice as long.
        with self._raw_read() as cursor:
            # A bare max(): SQLite answers it from the primary key's b-tree in O(log n), while
            # max() inside coalesce() makes it scan every event.
            last_event = int(self._query(cursor, _latest_event)[0][0] or 0)
            pending = [_pending_job(r) for r in self._driver_query(cursor, _pending)]
        return last_event, pending

    def pending_changes(self, after_event: int) -> tuple[int, set[int], list[PendingJob]]:
        """What changed since `after_event`: (newest event id, ids touched, those still pending).

        Every transition and every edit of a job writes an event row, so the event table is the
        scheduler's change feed: a pass costs what changed, not the size of the backlog. On
        PostgreSQL an event id can become visible after a higher one; the scheduler's periodic
        full snapshot repairs that.
        """
        with self._raw_read() as cursor:
            # The new events and the newest id in one read (one round trip on PostgreSQL).
            events = self._query(cursor, _touched, after=after_event)
            if not events:
                return after_event, set(), []
            last_event = max(int(r[1]) for r in events)
            touched = {r[0] for r in events}
            # By their ids alone, the state checked here: PostgreSQL, on a table it has no
            # statistics for yet (a new site's first minutes), planned both a join with the
            # events and `state = 'PENDING' AND id = ANY(...)` as a walk over every pending
            # job, so each pass of a burst of submissions read the whole backlog.
            rows = self._driver_query(cursor, _touched_jobs, ids=id_list(self.dialect, touched))
            pending = [_pending_job(r[:-1]) for r in rows if r[-1] == PENDING]
        return last_event, touched, pending

    def next_job_id(self) -> int:
        """The id the next submission will likely get (sbatch --test-only names it)."""
        with self._read() as conn:
            return int(conn.execute(select(func.max(jobs.c.id))).scalar_one() or 0) + 1

    def running_per_array(self) -> dict[int, int]:
        with self._raw_read() as cursor:
            rows = self._query(cursor, _running_per_array)
        return {r[0]: r[1] for r in rows}

    def apply_decision(
        self,
        placements: Sequence[Placement],
        reasons: Mapping[int, str],
        now: datetime | None = None,
        *,
        estimates: Mapping[int, Estimate | None] | None = None,
    ) -> list[Placement]:
        """Start the placed jobs and record new pending reasons and start estimates, in one
        transaction.

        A placement whose job is no longer PENDING (cancelled meanwhile) is dropped: the
        compare-and-set is what guarantees a cancelled job never runs.
        """
        now = now or utcnow()
        applied: list[Placement] = []
        with self._raw_write() as cursor:
            if placements:
                ids = id_list(self.dialect, (p.job_id for p in placements))
                still_pending = {r[0] for r in self._query(cursor, _placeable, ids=ids)}
                applied = self._within_capacity(cursor, [p for p in placements if p.job_id in still_pending])
                self._execute_many(
                    cursor,
                    _start_job,
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
                    event_insert,
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
            # One statement per distinct reason, not per job: a first pass over 10,000 pending
            # jobs (a start, or a big array) set nearly all to a few reasons, and 10,000 UPDATEs
            # took 345 ms on PostgreSQL even pipelined.
            by_reason: dict[str, list[int]] = {}
            for job_id, reason in reasons.items():
                by_reason.setdefault(reason, []).append(job_id)
            self._execute_many(
                cursor,
                _pending_reasons,
                [{"b_reason": reason, "ids": id_list(self.dialect, ids)} for reason, ids in by_reason.items()],
            )
            if estimates:
                self._execute_many(
                    cursor,
                    _pending_estimate,
                    [
                        {
                            "b_id": job_id,
                            "b_start": None if e is None else datetime.fromtimestamp(round(e.start), UTC),
                            "b_nodes": None if e is None else e.node,
                        }
                        for job_id, e in estimates.items()
                    ],
                )
        return applied

    def _within_capacity(self, cursor: Any, placements: Sequence[Placement]) -> list[Placement]:
        """The placements that still fit their node, judged under a lock on the node rows.

        The policy decides from a snapshot. Should two schedulers ever act at once (a leader
        that has not yet noticed its lock is gone), the later commit would hand out CPUs the
        earlier one gave away; locking the node rows serialises the two, and this check then
        sees what the other committed. A node declared DOWN or drained meanwhile gets nothing:
        once a drain has committed, no placement made from an older snapshot starts a job there.
        """
        if not placements:
            return []
        names = sorted({p.node for p in placements})
        # Every node row, locked in name order: few rows, and one statement whatever the names.
        node_rows = {r[0]: r for r in self._query(cursor, _capacity_nodes) if r[0] in names}
        taken: dict[str, set[int]] = {name: set() for name in names}
        memory: dict[str, int] = {name: 0 for name in names}
        for node_list, cpu_ids, allocated in self._query(cursor, running_allocations):
            if node_list in taken:
                taken[node_list].update(parse_cpu_list(cpu_ids))
                memory[node_list] += allocated or 0
        out = []
        for p in placements:
            row = node_rows.get(p.node)
            if row is None or row[1] != "UP" or row[4] is not None:
                continue
            _, _, node_memory, node_cpu_ids, _ = row
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
            # A node row locked right now is being heartbeated or placed on: alive.
            node_rows = list(conn.execute(for_update(self.dialect, node_query, skip_locked=True)))
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
            for job in conn.execute(for_update(self.dialect, job_query)).all():
                message = f"node {job.node_list} stopped responding"
                # kill_state PENDING: `scontrol requeue` was under way; the dead node ends the run.
                if (job.kill_state is None and (not job.launched or job.requeue)) or job.kill_state == PENDING:
                    restarts = job.restart_count + (1 if job.launched else 0)
                    conn.execute(
                        update(jobs)
                        .where(jobs.c.id == job.id, jobs.c.state == RUNNING)
                        .values(**requeued_values(now, None), restart_count=restarts)
                    )
                    why = "requeued: node down" if job.launched else "requeued: node down before launch"
                    add_event(conn, job.id, now, RUNNING, PENDING, why, job.node_list, message)
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
                    .values(state=state.value, reason=reason, end_time=now, error_msg=message, exit_code=LOST_EXIT_CODE)
                )
                add_event(conn, job.id, now, RUNNING, state.value, reason, job.node_list, message)
                reaped.ended.append(job.id)
        return reaped


# ------------------------------------------------------------------ statements
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
    jobs.c.time_limit,
    jobs.c.expected_start_time,
    jobs.c.sched_nodes,
    jobs.c.user_name,
    jobs.c.qos,
    jobs.c.account,
    jobs.c.req_nodes,
    jobs.c.exc_nodes,
)


def _latest_event(_dialect: str) -> Any:
    return select(func.max(job_events.c.id))


def _pending_query() -> Any:
    """Pending jobs in scheduling order, as `_pending_job` reads them."""
    return (
        select(*_PENDING_COLUMNS)
        .where(jobs.c.state == PENDING)
        .order_by(_effective_priority().desc(), jobs.c.submit_time, jobs.c.id)
    )


def _pending(_dialect: str) -> Any:
    return _pending_query()


def _effective_priority() -> Any:
    """`domain.priority.effective_priority` in SQL: the order must be the policy's exactly."""
    base = case((jobs.c.priority > 0, jobs.c.priority), else_=DEFAULT_PRIORITY) - jobs.c.nice
    return case((base < 1, 1), else_=base)


def _touched(_dialect: str) -> Any:
    """The events after :after, (job id, event id): what changed since the scheduler last looked.

    Bounded above by the newest id as well, though nothing is above it: PostgreSQL plans a
    prepared statement once for any :after, guessing that a range open at one end holds a
    third of the table and one closed at both ends a few rows; the bound keeps that plan a
    short walk of the primary key whatever the table's size."""
    newest = select(func.max(job_events.c.id)).scalar_subquery()
    return select(job_events.c.job_id, job_events.c.id).where(
        job_events.c.id > bindparam("after"), job_events.c.id <= newest
    )


def _touched_jobs(dialect: str) -> Any:
    """The jobs of :ids in scheduling order, as `_pending_job` reads them, then their state."""
    return (
        select(*_PENDING_COLUMNS, jobs.c.state)
        .where(id_in(dialect, jobs.c.id))
        .order_by(_effective_priority().desc(), jobs.c.submit_time, jobs.c.id)
    )


def _running_per_array(_dialect: str) -> Any:
    return (
        select(jobs.c.array_job_id, func.count())
        .where(jobs.c.state == RUNNING, jobs.c.array_job_id.is_not(None))
        .group_by(jobs.c.array_job_id)
    )


def _placeable(dialect: str) -> Any:
    # A hold that committed after the scheduler read the backlog wins over the placement.
    query = select(jobs.c.id).where(id_in(dialect, jobs.c.id), jobs.c.state == PENDING, jobs.c.held.is_(False))
    return for_update(dialect, query)


def _start_job(_dialect: str) -> Any:
    return (
        update(jobs)
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
            expected_start_time=None,
            sched_nodes=None,
        )
    )


def _pending_reasons(dialect: str) -> Any:
    return update(jobs).where(id_in(dialect, jobs.c.id), jobs.c.state == PENDING).values(reason=bindparam("b_reason"))


def _pending_estimate(_dialect: str) -> Any:
    return (
        update(jobs)
        .where(jobs.c.id == bindparam("b_id"), jobs.c.state == PENDING)
        .values(expected_start_time=bindparam("b_start"), sched_nodes=bindparam("b_nodes"))
    )


def _capacity_nodes(dialect: str) -> Any:
    query = select(nodes.c.name, nodes.c.state, nodes.c.memory_mb, nodes.c.cpu_ids, nodes.c.drain_reason).order_by(
        nodes.c.name
    )
    return for_update(dialect, query)


_NO_NODES: frozenset[str] = frozenset()


def _pending_job(row: tuple[Any, ...]) -> PendingJob:
    """A row of `_pending_query` as the driver returns it (`Statements.driver_rows`): on SQLite
    timestamps are text and booleans 0/1, on PostgreSQL datetimes and bools.

    Runs once per pending job of a full snapshot (100,000 and more), hence its shape: a
    timestamp is converted only when present (`epoch_seconds`, no aware datetime made), and
    PendingJob is built from positional arguments, in its fields' order (keywords cost a fifth
    more of the whole construction; test_store_contract checks every field read back).
    """
    (job_id, cpus_per_task, ntasks, memory_per_node, memory_per_cpu, partition, priority, nice, submit_time,
     exclusive, held, begin_time, dependency, array_job_id, array_max_running, reason, time_limit,
     expected_start, sched_nodes, user_name, qos, account, req_nodes, exc_nodes) = row
    cpus = cpus_per_task * ntasks
    submitted = epoch_seconds(submit_time)
    begins = None if begin_time is None else epoch_seconds(begin_time)
    return PendingJob(
        job_id,  # id
        cpus,  # cpus
        memory_per_node or ((memory_per_cpu or 0) * cpus),  # memory_mb
        partition,  # partition
        effective_priority(priority, nice),  # priority
        submitted,  # submit_time
        bool(exclusive),  # exclusive
        bool(held),  # held
        begins,  # begin_time
        DependencyStatus.WAITING if dependency else DependencyStatus.SATISFIED,  # dependency
        array_job_id,  # array_job_id
        array_max_running,  # array_max_running
        reason,  # reason
        float(time_limit) if time_limit else None,  # time_limit
        None if expected_start is None else epoch_seconds(expected_start),  # expected_start
        sched_nodes,  # expected_node
        user_name,  # user
        qos,  # qos
        account,  # account
        priority,  # explicit_priority
        nice,  # nice
        submitted if begins is None or begins < submitted else begins,  # eligible_time
        0,  # tier (the loop sets it from the configuration)
        req_nodes or None,  # required_node
        _NO_NODES if exc_nodes is None else frozenset(exc_nodes.split(",")),  # excluded_nodes
    )
