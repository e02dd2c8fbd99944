"""The job history as a feed: one log line per transition, and the counters of ended jobs and
of submit-to-start latency.

Every change of a job's state, whoever makes it (the API, a worker on another host, the
scheduler, the reaper of dead nodes), writes an event row in the same transaction. Reading
those rows in id order is therefore the one place that sees every transition exactly once,
and costs a range read on the primary key. One process reads it: the one that schedules (a
single `conductor up`, or the holder of the scheduler lock among several `conductor server`s),
so each transition is logged and counted once in a deployment.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Protocol

from conductor.domain.states import JobState
from conductor.monitoring.metrics import JOBS_ENDED, SUBMIT_TO_START
from conductor.store.records import Transition

log = logging.getLogger("conductor.jobs")

_ENDED = frozenset(s.value for s in JobState) - {JobState.PENDING.value, JobState.RUNNING.value}


class TransitionStore(Protocol):
    def latest_event_id(self) -> int: ...

    def feed_position(self) -> int | None: ...

    def save_feed_position(self, event_id: int) -> None: ...

    def transitions_after(
        self, after_event: int, limit: int
    ) -> list[Transition]: ...


# Past this many events behind, a process taking the feed over starts at the newest event
# instead: a server down for days would otherwise log its whole absence at start.
MAX_CATCH_UP = 100_000


class TransitionFeed:
    """Reads the transitions written since it last looked. It goes on where the feed last saved
    its position, in the database, whichever process that was: the transitions written while
    no process read the feed (a restart, a failover to another server) are logged and counted
    once it is read again. Only a feed never saved, or too far behind, starts at the newest."""

    def __init__(self, store: TransitionStore, *, lag: timedelta = timedelta(0), batch: int = 1000) -> None:
        self.store = store
        self.lag = lag
        self.batch = batch
        self.after: int | None = None

    def reset(self) -> None:
        """Read the saved position again (on becoming the process that schedules)."""
        self.after = None

    def _start(self) -> int:
        latest = self.store.latest_event_id()
        saved = self.store.feed_position()
        if saved is None or saved > latest:  # never saved, or a database restored from before it
            return latest
        if latest - saved > MAX_CATCH_UP:
            log.warning("the transition feed is %d events behind: they are not logged; it goes on from the newest",
                        latest - saved)
            return latest
        return saved

    def poll(self, now: datetime) -> int:
        """Log and count what was written since the last poll; how many transitions."""
        after = self.after
        if after is None:
            after = self.after = self._start()
            self.store.save_feed_position(after)
        written_before = now - self.lag if self.lag else None
        done = 0
        while True:
            found = self.store.transitions_after(after, self.batch)
            # In id order, up to the first event younger than the lag: the cursor never passes
            # an event it has not read. (Filtering by time in the query did: an event with a
            # lower id and a newer time — another host's clock, a slow insert — was skipped
            # for good once a higher id with an older time had been read.)
            taken = found
            if written_before is not None:
                for index, transition in enumerate(found):
                    if transition.time >= written_before:
                        taken = found[:index]
                        break
            for transition in taken:
                record(transition)
            done += len(taken)
            if taken:
                # Kept, and saved, batch by batch: an error on the next batch (the database
                # gone a moment) must not have these logged and counted again.
                after = self.after = taken[-1].event_id
                self.store.save_feed_position(after)
            if len(taken) < self.batch:
                return done


def record(t: Transition) -> None:
    """The log line and the counters of one transition."""
    if t.to_state in _ENDED and t.from_state != t.to_state:
        JOBS_ENDED.labels(t.to_state).inc()
    if t.to_state == JobState.RUNNING.value and t.from_state == JobState.PENDING.value and t.submit_time is not None:
        SUBMIT_TO_START.observe(max((t.time - t.submit_time).total_seconds(), 0.0))
    log.info(
        "job %d %s -> %s user=%s node=%s reason=%s",
        t.job_id,
        t.from_state or "new",
        t.to_state,
        t.user or "-",
        t.node or "-",
        t.reason or "-",
        extra={
            "job_id": t.job_id,
            "user": t.user,
            "from_state": t.from_state,
            "state": t.to_state,
            "node": t.node,
            "reason": t.reason,
            "event_time": t.time.isoformat(),
        },
    )
