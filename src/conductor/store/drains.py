"""What administrators change on a node: its drain (`scontrol update NodeName=... State=DRAIN
Reason=...`, and `State=RESUME` or `UNDRAIN` to end it).

A drain lives in columns of its own (reason, user, time; migration 0015). A worker's heartbeat
and its registration write the node's state and reason, never these: a drain outlives the
worker's restarts and a node going DOWN and coming back, and only RESUME (or UNDRAIN) ends it.
Each change is one transaction on the node's row, locked: the scheduler's placement locks the
node rows too (`SchedulingQueries._within_capacity`), so once a drain has committed no job is
started there from a decision made before it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from conductor.store.allocations import is_live
from conductor.store.engine import Database, aware, utcnow
from conductor.store.records import DrainOutcome, NodeDrain
from conductor.store.schema import nodes
from conductor.store.statements import for_update


class DrainQueries(Database):
    def drain_node(
        self, name: str, reason: str, user: str, *, now: datetime | None = None, live_after: datetime | None = None
    ) -> DrainOutcome:
        """Drain node `name` for `reason`, as `user`. A node drained already for the same reason
        keeps its drain (who and since when); another reason replaces it, with `user` and now."""
        now = now or utcnow()
        with self._write() as conn:
            row = self._node_row(conn, name)
            if row is None:
                return DrainOutcome(found=False)
            live = is_live(row.state, row.last_heartbeat, live_after)
            if row.drain_reason == reason:
                return DrainOutcome(True, changed=False, drain=_drain(row), live=live)
            conn.execute(
                update(nodes).where(nodes.c.name == name).values(drain_reason=reason, drain_user=user, drain_time=now)
            )
        return DrainOutcome(True, changed=True, drain=NodeDrain(reason, user, now), live=live)

    def resume_node(self, name: str, *, live_after: datetime | None = None) -> DrainOutcome:
        """End node `name`'s drain; `drain` in the outcome is the one ended (None: not drained)."""
        with self._write() as conn:
            row = self._node_row(conn, name)
            if row is None:
                return DrainOutcome(found=False)
            live = is_live(row.state, row.last_heartbeat, live_after)
            if row.drain_reason is None:
                return DrainOutcome(True, changed=False, drain=None, live=live)
            conn.execute(
                update(nodes).where(nodes.c.name == name).values(drain_reason=None, drain_user=None, drain_time=None)
            )
        return DrainOutcome(True, changed=True, drain=_drain(row), live=live)

    def _node_row(self, conn: Connection, name: str) -> Any:
        query = select(
            nodes.c.state, nodes.c.last_heartbeat, nodes.c.drain_reason, nodes.c.drain_user, nodes.c.drain_time
        ).where(nodes.c.name == name)
        return conn.execute(for_update(self.dialect, query)).first()


def _drain(row: Any) -> NodeDrain | None:
    if row.drain_reason is None:
        return None
    return NodeDrain(row.drain_reason, row.drain_user or "", aware(row.drain_time) or utcnow())
