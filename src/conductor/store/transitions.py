"""What every change of a job's state writes, whoever changes it: the event row, and the
values of a job that goes back to PENDING for a new run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert

from conductor.domain.states import JobState, Reason
from conductor.store.schema import job_events

RUNNING = JobState.RUNNING.value
PENDING = JobState.PENDING.value
ENDED = frozenset(s.value for s in JobState) - {PENDING, RUNNING}

EVENT_KEYS = ("job_id", "time", "from_state", "to_state", "node", "reason", "message")


def event_insert(_dialect: str) -> Any:
    """One event row (the keys of EVENT_KEYS), as a pre-compiled statement."""
    return insert(job_events).values({k: bindparam(k) for k in EVENT_KEYS})


def add_event(
    conn: Connection,
    job_id: int,
    now: datetime,
    from_state: str | None,
    to_state: str,
    reason: str | None,
    node: str | None,
    message: str | None = None,
) -> None:
    """One event row, inside the transaction of `conn`."""
    conn.execute(
        insert(job_events).values(
            job_id=job_id,
            time=now,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            node=node,
            message=message,
        )
    )


def requeued_values(now: Any, hold: bool | None) -> dict[str, Any]:
    """A job back to PENDING for a new run: its allocation and the traces of the last run go.

    `now` is the new eligible time (a value, or a bindparam). `hold` None keeps the job's hold
    flag (a requeuehold already set it on the running job).
    """
    values: dict[str, Any] = {
        "state": PENDING,
        "reason": Reason.JOB_HELD_USER.value if hold else Reason.NONE.value,
        "node_list": None,
        "cpu_ids": None,
        "allocated_cpus": 0,
        "allocated_memory_mb": 0,
        "start_time": None,
        "end_time": None,
        "expected_start_time": None,
        "sched_nodes": None,
        "exit_code": None,
        "error_msg": None,
        "cancelled_by": None,
        "eligible_time": now,
        "launched": False,
        "pid": None,
        "kill_state": None,
        "kill_time": None,
        "pending_signal": None,
    }
    if hold is not None:
        values["held"] = hold
    return values
