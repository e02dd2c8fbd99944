"""The transition feed (monitoring/feed.py) reads every event once, in id order, even when an
event's time is newer than that of a later id (another host's clock, a slow insert)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conductor.monitoring.feed import TransitionFeed
from conductor.store.records import Transition

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def event(event_id: int, age: float) -> Transition:
    return Transition(
        event_id=event_id, job_id=event_id, time=NOW - timedelta(seconds=age), from_state="PENDING",
        to_state="RUNNING", reason=None, node="n1", message=None, user="alice", submit_time=NOW - timedelta(seconds=60),
    )


class Events:
    def __init__(self, rows: list[Transition], latest: int = 0, saved: int | None = None) -> None:
        self.rows = rows
        self.latest = latest
        self.saved = saved

    def latest_event_id(self) -> int:
        return self.latest

    def feed_position(self) -> int | None:
        return self.saved

    def save_feed_position(self, event_id: int) -> None:
        self.saved = max(self.saved or 0, event_id)

    def transitions_after(self, after_event: int, limit: int) -> list[Transition]:
        return [r for r in self.rows if r.event_id > after_event][:limit]


def test_an_event_newer_than_a_later_id_is_not_skipped() -> None:
    # Event 1 is stamped 1 s ago (younger than the 2 s lag), event 2 ten seconds ago.
    store = Events([event(1, 1.0), event(2, 10.0)])
    feed = TransitionFeed(store, lag=timedelta(seconds=2), batch=10)
    assert feed.poll(NOW) == 0  # event 1 is too young, and event 2 waits behind it
    assert feed.after == 0
    assert feed.poll(NOW + timedelta(seconds=5)) == 2  # both, once
    assert feed.after == 2
    assert feed.poll(NOW + timedelta(seconds=10)) == 0


def test_batches_follow_on_until_the_young_ones() -> None:
    store = Events([event(i, 30.0) for i in range(1, 8)] + [event(8, 0.5)])
    feed = TransitionFeed(store, lag=timedelta(seconds=2), batch=3)
    assert feed.poll(NOW) == 7 and feed.after == 7 and store.saved == 7


def test_a_feed_never_saved_starts_at_the_newest_and_saves_it() -> None:
    store = Events([event(i, 30.0) for i in range(1, 6)], latest=5)
    feed = TransitionFeed(store)
    assert feed.poll(NOW) == 0 and store.saved == 5  # the history before it is not replayed


def test_the_process_that_takes_the_feed_over_logs_what_was_written_meanwhile() -> None:
    # The first process read up to event 3 and stopped (a restart, a failover); 4-6 were written
    # while nobody read the feed.
    store = Events([event(i, 30.0) for i in range(1, 7)], latest=6, saved=3)
    assert TransitionFeed(store).poll(NOW) == 3 and store.saved == 6


def test_a_feed_too_far_behind_or_ahead_of_the_database_starts_at_the_newest() -> None:
    from conductor.monitoring.feed import MAX_CATCH_UP

    behind = Events([], latest=MAX_CATCH_UP + 10, saved=5)
    TransitionFeed(behind).poll(NOW)
    assert behind.saved == MAX_CATCH_UP + 10
    restored = Events([event(1, 30.0)], latest=1, saved=500)  # a database restored from before
    feed = TransitionFeed(restored)
    assert feed.poll(NOW) == 0 and feed.after == 1


def test_an_error_between_batches_logs_nothing_twice() -> None:
    import pytest

    class Failing(Events):
        calls = 0

        def transitions_after(self, after_event: int, limit: int) -> list[Transition]:
            self.calls += 1
            if self.calls == 2:
                raise ConnectionError("the database went away a moment")
            return super().transitions_after(after_event, limit)

    store = Failing([event(i, 30.0) for i in range(1, 8)])
    feed = TransitionFeed(store, batch=3)
    with pytest.raises(ConnectionError):
        feed.poll(NOW)  # the first batch is logged, then the next read fails
    assert feed.after == 3 and store.saved == 3
    assert feed.poll(NOW) == 4 and feed.after == 7  # 4-7 only
