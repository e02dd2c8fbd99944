"""What a node's agent (the worker) reads and writes: its node row (register, heartbeat, down),
the jobs placed on it (claim, pids, kills, signals, relaunch) and the end of each run."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, insert, null, select, update

from conductor.domain.cpuset import format_cpu_list
from conductor.domain.job import Job, JobRun
from conductor.domain.states import LOST_EXIT_CODE, JobState, Reason
from conductor.store.engine import Database, StoreError, aware, utcnow
from conductor.store.records import Finish, job_from_row, run_from_row
from conductor.store.schema import jobs, nodes
from conductor.store.statements import for_update, id_in, id_list
from conductor.store.transitions import PENDING, RUNNING, add_event, event_insert, requeued_values


class NodeConflict(StoreError):
    """Another live worker already owns this node name."""


class NodeQueries(Database):
    # ------------------------------------------------------------------- the node
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
        containment: str | None = None,
    ) -> None:
        """Claim the node name for this worker process.

        Refused when another instance holds it, heartbeated after `stale_before` and
        `instance_alive` cannot rule it out (a crashed worker restarting on the same host can);
        a node is never silently merged with another worker's.

        The row is rewritten but for its drain (`drains`): an administrator's drain outlives
        the worker's restarts, so nothing here may name the drain columns.
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
            "containment": containment,
        }
        with self._write() as conn:
            row = conn.execute(for_update(self.dialect, select(nodes).where(nodes.c.name == name))).first()
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
        """Refresh the node's heartbeat; False when another instance took the node over. A
        drain stays (it is not the node's state: `drains`)."""
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

    # --------------------------------------------------------- the node's jobs
    def claim_for_launch(self, node: str) -> list[Job]:
        """Jobs placed on `node` that no worker has launched yet, marked launched.

        Marking before the process exists means a crash in between loses the launch (the job
        ends NODE_FAIL) rather than running the job twice.
        """
        names = [c.name for c in jobs.c]
        if self.dialect == "postgresql":
            # One statement in autocommit, one round trip: a transaction of BEGIN, the SELECT
            # FOR UPDATE, the UPDATE and COMMIT took four, on the path of every job's start.
            with self._raw_autocommit() as cursor:
                found = self._query(cursor, _claim, node=node)
            rows = [dict(zip(names, r, strict=True)) for r in sorted(found, key=lambda r: int(r[0]))]
        else:
            with self._raw_write() as cursor:
                rows = [dict(zip(names, r, strict=True)) for r in self._query(cursor, _claimable, node=node)]
                self._execute_many(cursor, _mark_launched, [{"b_id": r["id"]} for r in rows])
            for row in rows:
                row["launched"] = True  # as marked, and as PostgreSQL's RETURNING gives them
        return [job_from_row(row) for row in rows]

    def record_pids(self, pids: Mapping[int, int]) -> None:
        if not pids:
            return
        with self._raw_write() as cursor:
            self._execute_many(cursor, _record_pid, [{"b_id": k, "b_pid": v} for k, v in pids.items()])

    def record_usage(self, usage: Mapping[int, str]) -> None:
        """What running jobs used so far (JSON, conductor.domain.usage), sampled by their node;
        the figures recorded at their end replace it."""
        if not usage:
            return
        with self._raw_write() as cursor:
            self._execute_many(cursor, _record_usage, [{"b_id": k, "b_rusage": v} for k, v in usage.items()])

    def running_on_node(self, node: str) -> list[JobRun]:
        with self._raw_read() as cursor:
            found = self._query(cursor, _running_on_node, node=node)
        return [run_from_row(dict(zip(_NODE_JOB_COLUMNS, r, strict=True))) for r in found]

    def kill_states(self, ids: Sequence[int]) -> dict[int, str | None]:
        """The kill requested for each running job (cancel, time limit, requeue), if any."""
        with self._raw_read() as cursor:
            rows = self._query(cursor, _kill_states, ids=id_list(self.dialect, ids))
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

    def take_signals(self, node: str) -> dict[int, list[str]]:
        """The signals waiting for the running jobs of `node`, cleared in the same transaction."""
        with self._write() as conn:
            query = select(jobs.c.id, jobs.c.pending_signal).where(
                jobs.c.node_list == node, jobs.c.state == RUNNING, jobs.c.pending_signal.is_not(None)
            )
            taken = {
                r.id: [e for e in r.pending_signal.split(",") if e] for r in conn.execute(for_update(self.dialect, query))
            }
            if taken:
                conn.execute(update(jobs).where(jobs.c.id.in_(list(taken))).values(pending_signal=None))
        return taken

    def relaunch(self, node: str, job_ids: Sequence[int]) -> list[int]:
        """Hand claimed jobs of `node` that provably never started back to its launch path."""
        if not job_ids:
            return []
        now = utcnow()
        with self._write() as conn:
            query = select(jobs.c.id).where(
                jobs.c.id.in_(job_ids), jobs.c.state == RUNNING, jobs.c.node_list == node, jobs.c.launched.is_(True)
            )
            ids = [r[0] for r in conn.execute(for_update(self.dialect, query))]
            if ids:
                conn.execute(update(jobs).where(jobs.c.id.in_(ids)).values(launched=False, pid=None))
                for job_id in ids:
                    add_event(conn, job_id, now, RUNNING, RUNNING, "relaunch", node, "claimed, never started")
        return ids

    # ---------------------------------------------------------- ends of runs
    def finish(self, results: Sequence[Finish]) -> list[int]:
        """End running jobs (compare-and-set RUNNING -> final state); returns the ids ended,
        then those requeued.

        The CPUs are released by this very update: no other bookkeeping exists to drift. A
        report with state PENDING is a run stopped by `scontrol requeue` (see
        `ControlQueries.requeue_jobs`): it ends the run, not the job, which goes back to
        PENDING. A report about an earlier run of the job (`Finish.about_run`) ends nothing.
        """
        if not results:
            return []
        by_id = {r.job_id: r for r in results}
        with self._raw_write() as cursor:
            current = sorted(
                (
                    by_id[job_id]
                    for job_id, node_list, restart_count in self._query(
                        cursor, _running_runs, ids=id_list(self.dialect, by_id)
                    )
                    if by_id[job_id].about_run(node_list, restart_count)
                ),
                key=lambda r: r.job_id,
            )
            requeued = [r for r in current if r.state is JobState.PENDING]
            ended = [r for r in current if r.state is not JobState.PENDING]
            self._execute_many(cursor, _requeue_run, [_requeue_row(r) for r in requeued])
            self._execute_many(cursor, _end_run, [_end_row(r) for r in ended])
            self._execute_many(cursor, event_insert, [_end_event(r) for r in requeued + ended])
        return [r.job_id for r in ended] + [r.job_id for r in requeued]

    def fail_stranded(self, node: str, job_ids: Sequence[int], message: str) -> list[int]:
        """End as NODE_FAIL running jobs of `node` whose processes are gone."""
        now = utcnow()
        return self.finish(
            [
                Finish(
                    i,
                    JobState.NODE_FAIL,
                    LOST_EXIT_CODE,
                    reason=Reason.NODE_DOWN.value,
                    error_msg=message,
                    end_time=now,
                    node=node,
                )
                for i in job_ids
            ]
        )


# ------------------------------------------------------------------ statements
_NODE_JOB_COLUMNS = (
    "id", "pid", "launched", "start_time", "time_limit", "kill_state", "kill_time", "restart_count",
    # Signals to deliver (scancel --signal) and the --signal warning of the job.
    "pending_signal", "signal_spec",
    # Whether a run its launcher fenced goes back to the queue (worker/outcome.py).
    "requeue",
)


def _claimable(dialect: str) -> Any:
    query = select(*jobs.c).where(
        jobs.c.node_list == bindparam("node"), jobs.c.state == RUNNING, jobs.c.launched.is_(False)
    )
    return for_update(dialect, query, skip_locked=True)


def _claim(dialect: str) -> Any:
    """PostgreSQL: the claimable jobs of :node marked launched, returned whole (rows another
    transaction holds are skipped, as `_claimable` skips them, and taken at the next wake)."""
    claimable = select(jobs.c.id).where(
        jobs.c.node_list == bindparam("node"), jobs.c.state == RUNNING, jobs.c.launched.is_(False)
    )
    locked = for_update(dialect, claimable, skip_locked=True)
    return update(jobs).where(jobs.c.id.in_(locked)).values(launched=True).returning(*jobs.c)


def _mark_launched(_dialect: str) -> Any:
    return update(jobs).where(jobs.c.id == bindparam("b_id")).values(launched=True)


def _record_pid(_dialect: str) -> Any:
    return update(jobs).where(jobs.c.id == bindparam("b_id")).values(pid=bindparam("b_pid"))


def _record_usage(_dialect: str) -> Any:
    return update(jobs).where(jobs.c.id == bindparam("b_id"), jobs.c.state == RUNNING).values(
        rusage=bindparam("b_rusage")
    )


def _running_on_node(_dialect: str) -> Any:
    return select(*(jobs.c[n] for n in _NODE_JOB_COLUMNS)).where(
        jobs.c.node_list == bindparam("node"), jobs.c.state == RUNNING
    )


def _kill_states(dialect: str) -> Any:
    return select(jobs.c.id, jobs.c.kill_state).where(id_in(dialect, jobs.c.id))


def _running_runs(dialect: str) -> Any:
    """The runs (node, restart count) of those of :ids that are RUNNING, locked."""
    query = select(jobs.c.id, jobs.c.node_list, jobs.c.restart_count).where(
        id_in(dialect, jobs.c.id), jobs.c.state == RUNNING
    )
    return for_update(dialect, query)


def _end_run(_dialect: str) -> Any:
    """The compare-and-set that ends a run and its job.

    A job ended as asked (a cancel, its time limit: `kill_state` is the state it ends in) ended
    when it was asked, as slurmctld sets its end time when it signals it: the kill-wait its
    processes took after is not run time (Elapsed, sacct's End). The transition's event keeps
    the moment the processes were gone. Typed: inside a CASE the value would have no type, and
    SQLite would get it without the column's conversion to its stored text."""
    end: Any = bindparam("b_end", type_=jobs.c.end_time.type)
    asked = and_(jobs.c.kill_state == bindparam("b_state"), jobs.c.kill_time.is_not(None), jobs.c.kill_time < end)
    return (
        update(jobs)
        .where(jobs.c.id == bindparam("b_id"), jobs.c.state == RUNNING)
        .values(
            state=bindparam("b_state"),
            reason=bindparam("b_reason"),
            exit_code=bindparam("b_exit"),
            error_msg=bindparam("b_err"),
            end_time=case((asked, jobs.c.kill_time), else_=end),
            rusage=bindparam("b_rusage"),
        )
    )


def _requeue_run(_dialect: str) -> Any:
    """The compare-and-set that ends a run and sends its job back to PENDING."""
    return (
        update(jobs)
        .where(jobs.c.id == bindparam("b_id"), jobs.c.state == RUNNING)
        .values(
            **requeued_values(bindparam("b_end"), None),
            rusage=bindparam("b_rusage"),
            restart_count=jobs.c.restart_count + 1,
        )
    )


def _rusage(report: Finish) -> str | None:
    return json.dumps(report.rusage) if report.rusage else None


def _end_row(r: Finish) -> dict[str, Any]:
    return {
        "b_id": r.job_id,
        "b_state": r.state.value,
        "b_reason": r.reason,
        "b_exit": r.exit_code,
        "b_err": r.error_msg,
        "b_end": r.end_time,
        "b_rusage": _rusage(r),
    }


def _requeue_row(r: Finish) -> dict[str, Any]:
    return {"b_id": r.job_id, "b_end": r.end_time, "b_rusage": _rusage(r)}


def _end_event(r: Finish) -> dict[str, Any]:
    """The event row of the run `r` ends."""
    if r.state is JobState.PENDING:
        ended = f"previous run ended, exit_code={r.exit_code}" if r.exit_code else "previous run ended"
        if r.error_msg:
            ended = f"{ended}: {r.error_msg}"
        return {
            "job_id": r.job_id, "time": r.end_time, "from_state": RUNNING, "to_state": PENDING,
            "node": r.node, "reason": "requeued", "message": ended,
        }
    return {
        "job_id": r.job_id, "time": r.end_time, "from_state": RUNNING, "to_state": r.state.value,
        "node": None, "reason": r.reason, "message": r.error_msg or (f"exit_code={r.exit_code}" if r.exit_code else None),
    }
