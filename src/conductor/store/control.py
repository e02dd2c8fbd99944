"""The actions on existing jobs that the job services take for users: cancel, hold and
release, requeue, update and signal.

Each action is one transaction: the rows are read (and locked on PostgreSQL), the action
applies to those in a state that allows it, and every change writes an event row. What did
not apply is returned with its state, for the API's 409.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, insert, literal, null, select, update

from conductor.domain.states import JobState, Reason
from conductor.store.engine import Database, utcnow
from conductor.store.records import BEING_STOPPED, NOT_HELD, CancelOutcome, ControlOutcome
from conductor.store.schema import job_events, jobs
from conductor.store.statements import for_update
from conductor.store.transitions import ENDED, PENDING, RUNNING, requeued_values

# Ids per IN (...) of one statement.
_IN_CHUNK = 5_000
CANCELLED = JobState.CANCELLED.value


class ControlQueries(Database):
    def cancel(self, job_id: int, now: datetime | None = None, *, by: str | None = None) -> CancelOutcome:
        """Cancel one job (`cancel_jobs`' rules), answered as `scancel` words it."""
        with self._write() as conn:
            rows, _, _ = self._cancel(conn, [job_id], now or utcnow(), by)
        row = rows.get(job_id)
        if row is None:
            return CancelOutcome(job_id, found=False, message=f"Invalid job id specified: {job_id}")
        if row.state == PENDING:
            return CancelOutcome(job_id, True, CANCELLED, "cancelled while pending")
        if row.state == RUNNING:
            return CancelOutcome(job_id, True, RUNNING, "cancel requested; the job is being stopped", node=row.node_list)
        return CancelOutcome(job_id, True, row.state, f"Job has already finished ({row.state})")

    def cancel_jobs(self, ids: Sequence[int], now: datetime | None = None, *, by: str | None = None) -> ControlOutcome:
        """Cancel many jobs (an array's tasks) at once: pending ones end CANCELLED here, running
        ones are marked for their worker to stop. `by`: the user who asked (sacct's "by UID")."""
        out = ControlOutcome()
        with self._write() as conn:
            rows, pending, running = self._cancel(conn, ids, now or utcnow(), by)
        out.changed = pending + running
        out.nodes = {rows[i].node_list for i in running if rows[i].node_list}
        changed = set(out.changed)
        out.skipped = {i: r.state for i, r in rows.items() if i not in changed}
        out.found = set(rows)
        return out

    def _cancel(
        self, conn: Connection, ids: Sequence[int], now: datetime, by: str | None
    ) -> tuple[dict[int, Any], list[int], list[int]]:
        """The rules of cancelling: (the rows as found, the pending ids ended CANCELLED, the
        running ids marked for their worker to stop). A requeue in progress (kill_state
        PENDING) gives way: the job ends cancelled rather than going back to the queue; any
        other kill already requested stands."""
        rows = self._control_rows(conn, ids)
        pending = [i for i, r in rows.items() if r.state == PENDING]
        running = [i for i, r in rows.items() if r.state == RUNNING and r.kill_state in (None, PENDING)]
        self._update_ids(conn, pending, PENDING, state=CANCELLED, end_time=now, exit_code="0:0", cancelled_by=by)
        self._events_for(conn, pending, now, PENDING, CANCELLED, "cancel")
        self._update_ids(conn, running, RUNNING, kill_state=CANCELLED, kill_time=now, cancelled_by=by)
        self._events_for(conn, running, now, RUNNING, RUNNING, "cancel requested")
        return rows, pending, running

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
            ended = [i for i, r in rows.items() if r.state in ENDED]
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
                self._update_ids(conn, some, state, **requeued_values(now, hold), restart_count=jobs.c.restart_count + 1)
                self._events_for(conn, some, now, state, PENDING, "requeue")
        return out

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
        """Ask the workers of running jobs to deliver a signal (`entry` is "[b:|s:]NUMBER": the
        batch shell, the steps, or every process).

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

    # ----------------------------------------------------------------- helpers
    def _control_rows(self, conn: Connection, ids: Sequence[int]) -> dict[int, Any]:
        found: dict[int, Any] = {}
        for start in range(0, len(ids), _IN_CHUNK):
            query = select(
                jobs.c.id, jobs.c.state, jobs.c.node_list, jobs.c.kill_state, jobs.c.held, jobs.c.restart_count
            ).where(jobs.c.id.in_(ids[start : start + _IN_CHUNK]))
            found.update({r.id: r for r in conn.execute(for_update(self.dialect, query))})
        return found

    def _update_ids(self, conn: Connection, ids: Sequence[int], current: str, /, **values: Any) -> None:
        """Set `values` on the jobs `ids` still in state `current` (the compare-and-set)."""
        for start in range(0, len(ids), _IN_CHUNK):
            conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(ids[start : start + _IN_CHUNK]), jobs.c.state == current)
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
        for start in range(0, len(ids), _IN_CHUNK):
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
                    ).where(jobs.c.id.in_(ids[start : start + _IN_CHUNK])),
                )
            )
