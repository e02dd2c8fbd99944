"""Administrators' use cases on nodes: drain one before maintenance, resume it after
(`scontrol update NodeName=... State=DRAIN Reason=...`, `State=RESUME`, `State=UNDRAIN`).

A drained node gets no new job; its running jobs go on and end as they would, their CPUs
released as usual. The drain is stored (conductor.store.drains), outlives the node's worker
restarting or dying, and ends only when an administrator resumes the node.

As Slurm's `scontrol update NodeName=` (src/scontrol/update_node.c, src/slurmctld/node_mgr.c):
DRAIN needs a reason ("You must specify a reason when DOWNING or DRAINING a node"); draining a
drained node again with another reason replaces the reason (its user and time with it), with
the same reason changes nothing; RESUME applies to a drained node, or to one that is down (it
then takes jobs again once its worker is back, which it does by itself here), and is refused
for a node that is neither ("Invalid node state specified"); UNDRAIN clears a drain and
succeeds on any node.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from conductor.bus import SCHEDULER
from conductor.domain.text import first_control_character
from conductor.errors import Conflict, Invalid, NotFound
from conductor.services.ports import Wakeups
from conductor.services.principal import Principal, ensure_admin
from conductor.services.requests import no_control_characters, one_of
from conductor.store import DrainOutcome, NodeDrain, utcnow

NODE_STATES = ("DRAIN", "RESUME", "UNDRAIN")
# A reason is free text others read in sinfo -R and scontrol show node: bounded as the other
# free text administrators set (an account's description).
MAX_REASON = 256


class NodeStateChange(BaseModel):
    """The typed request: the state to put a node in, and for DRAIN why."""

    model_config = ConfigDict(extra="forbid")

    state: str = Field(
        max_length=16,
        description="DRAIN (no new job; running jobs go on), RESUME (take jobs again) or UNDRAIN (clear a drain).",
    )
    reason: str | None = Field(
        default=None,
        max_length=MAX_REASON,
        description="Why (required with DRAIN): free text without control characters, shown by sinfo -R.",
    )

    @field_validator("state")
    @classmethod
    def _state(cls, value: str) -> str:
        return one_of(value, NODE_STATES)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str | None) -> str | None:
        return None if value is None else no_control_characters(value)


class DrainStore(Protocol):
    """The store's side (conductor.store.Store provides it)."""

    def drain_node(
        self, name: str, reason: str, user: str, *, now: datetime | None = None, live_after: datetime | None = None
    ) -> DrainOutcome: ...

    def resume_node(self, name: str, *, live_after: datetime | None = None) -> DrainOutcome: ...


@dataclass(frozen=True, slots=True)
class NodeStateResult:
    node: str
    state: str  # the state asked for
    changed: bool
    drain: NodeDrain | None  # in force now (DRAIN), or ended (RESUME, UNDRAIN; None: there was none)


class NodeService:
    def __init__(self, store: DrainStore, bus: Wakeups, *, heartbeat_timeout: float = 30.0) -> None:
        self.store = store
        self.bus = bus
        self.heartbeat_timeout = heartbeat_timeout

    def set_state(self, principal: Principal, name: str, request: NodeStateChange) -> NodeStateResult:
        """Drain or resume node `name`: an administrator's, checked before the node's existence
        (as a partition's state change)."""
        ensure_admin(principal, "drain or resume a node")
        if first_control_character(name) is not None:  # no node has one; PostgreSQL refuses NUL
            raise Invalid("a node name has no control characters", field="name")
        state = request.state
        live_after = utcnow() - timedelta(seconds=self.heartbeat_timeout)
        if state == "DRAIN":
            reason = (request.reason or "").strip()  # any white space: a no-break space is no reason
            if not reason:
                raise Invalid("You must specify a reason when DRAINING a node", field="reason")
            outcome = self.store.drain_node(name, reason, principal.user, live_after=live_after)
        else:
            outcome = self.store.resume_node(name, live_after=live_after)
        if not outcome.found:
            raise NotFound(f"Invalid node name specified: '{name[:64]}'", field="name")
        if state == "RESUME" and not outcome.changed and outcome.live:
            raise Conflict(
                f"Invalid node state specified: node {name} is neither drained nor down, there is nothing to resume",
                field="state",
            )
        if outcome.changed:
            # A resumed node takes jobs at the next pass; a drained one changes the plan (its
            # reservations move elsewhere).
            self.bus.publish(SCHEDULER)
        return NodeStateResult(name, state, outcome.changed, outcome.drain)
