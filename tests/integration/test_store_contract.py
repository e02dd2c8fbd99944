"""The store's contract, run against SQLite and PostgreSQL alike (`database_url` is both).

Real databases: the PostgreSQL cases use the session's own throw-away cluster.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from conductor.domain.states import JobState
from conductor.scheduler.policy import DependencyStatus, NodeView, PendingJob, Placement, schedule
from conductor.store import DependencyTarget, Finish, NodeConflict, Store, utcnow


def job_row(**values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": "job",
        "user_name": "alice",
        "partition": "debug",
        "cpus_per_task": 1,
        "work_dir": "/tmp",
        "script": "#!/bin/bash\ntrue\n",
        "environment": "{}",
    }
    row.update(values)
    return row


def add_node(store: Store, name: str, cpus: int, *, memory_mb: int = 4000, instance: str | None = None) -> None:
    store.register_node(
        name=name,
        cpus=cpus,
        cpu_ids=list(range(cpus)),
        cpu_binding=False,
        memory_mb=memory_mb,
        partitions=["debug"],
        instance=instance or f"test:{name}",
        hostname="test-host",
        stale_before=utcnow() - timedelta(seconds=30),
    )


def place(store: Store) -> list[Placement]:
    """One scheduler pass: the pure policy fed from the store, its decision applied."""
    decision = schedule(store.pending_for_scheduling(), store.node_views(), time.time(), presorted=True)
    return store.apply_decision(decision.placements, decision.reasons)


def state(store: Store, job_id: int) -> str:
    job = store.get_job(job_id)
    assert job is not None
    return str(job.state)


def test_migrations_are_idempotent(store: Store) -> None:
    store.migrate()
    store.ping()
    assert store.stats().total_cpus == 0


def test_submit_place_claim_finish(store: Store) -> None:
    add_node(store, "n1", 4)
    ids = store.submit([job_row(name=f"j{i}", cpus_per_task=2) for i in range(3)])
    applied = place(store)
    assert sorted(p.job_id for p in applied) == ids[:2]
    third = store.get_job(ids[2])
    assert third is not None and third.state == "PENDING" and third.reason == "Resources"
    stats = store.stats()
    assert (stats.total_cpus, stats.used_cpus, stats.running_jobs, stats.pending_jobs) == (4, 4, 2, 1)

    claimed = store.claim_for_launch("n1")
    assert sorted(r.id for r in claimed) == ids[:2]
    # Whole jobs, as marked: what the worker launches from.
    assert all(r.launched and r.script == "#!/bin/bash\ntrue\n" and r.cpus_per_task == 2 for r in claimed)
    assert store.claim_for_launch("n1") == []  # claimed once, never twice

    ended = store.finish([Finish(ids[0], JobState.COMPLETED, "0:0"), Finish(ids[1], JobState.FAILED, "3:0")])
    assert sorted(ended) == ids[:2]
    assert store.finish([Finish(ids[0], JobState.FAILED, "1:0")]) == []  # compare-and-set: once
    assert state(store, ids[0]) == "COMPLETED"
    assert [e.to_state for e in store.events(ids[0])] == ["PENDING", "RUNNING", "COMPLETED"]
    assert store.stats().used_cpus == 0
    place(store)
    assert state(store, ids[2]) == "RUNNING"


def test_one_job_is_stored_as_core_stores_it(store: Store) -> None:
    """A lone job takes the pre-compiled insert; several take SQLAlchemy Core: the same row."""
    begin = utcnow() + timedelta(hours=1)
    row = job_row(
        uid=1000, gid=1000, account="lab", time_limit=600, exclusive=True, held=True, requeue=True,
        begin_time=begin, eligible_time=begin, comment="é ✓", memory_per_node_mb=512, standard_output="/tmp/o",
    )
    (fast,) = store.submit([row])
    core, _ = store.submit([row, row])
    a, b = store.get_job(fast), store.get_job(core)
    assert a is not None and b is not None
    assert a.submit_time is not None and a.submit_time.tzinfo is not None
    assert replace(a, id=b.id, submit_time=b.submit_time) == b
    assert a.begin_time == begin and a.held is True and a.comment == "é ✓"
    assert [e.to_state for e in store.events(fast)] == ["PENDING"]


def test_the_backlog_reads_every_field_of_a_pending_job(store: Store) -> None:
    """The scheduler's backlog is read from the driver's own values (SQLite's timestamps are
    text) into PendingJob's positional arguments: every field lands where it belongs, to the
    microsecond, whether it is read whole or as a change."""
    submitted = utcnow().replace(microsecond=123457) - timedelta(hours=1)
    begins = submitted + timedelta(minutes=30, microseconds=1)
    expected = submitted + timedelta(hours=2)
    full = job_row(
        user_name="bob", partition="long", qos="high", account="physics", cpus_per_task=3, ntasks=2, memory_per_cpu_mb=100,
        priority=500, nice=7, submit_time=submitted, exclusive=True, held=True, begin_time=begins,
        dependency="afterok:1", array_job_id=42, array_max_running=4, reason="Priority", time_limit=600,
        expected_start_time=expected, sched_nodes="n7", req_nodes="n7", exc_nodes="n1,n2",
    )
    (first,) = store.submit([full])
    (second,) = store.submit([job_row(submit_time=submitted, memory_per_node_mb=256, nice=20000)])
    want = [
        PendingJob(
            id=first, cpus=6, memory_mb=600, partition="long", priority=493, submit_time=submitted.timestamp(),
            exclusive=True, held=True, begin_time=begins.timestamp(), dependency=DependencyStatus.WAITING,
            array_job_id=42, array_max_running=4, reason="Priority", time_limit=600.0,
            expected_start=expected.timestamp(), expected_node="n7", user="bob", qos="high", account="physics",
            explicit_priority=500,
            nice=7, eligible_time=begins.timestamp(), required_node="n7", excluded_nodes=frozenset({"n1", "n2"}),
        ),
        PendingJob(
            id=second, cpus=1, memory_mb=256, partition="debug", priority=1, submit_time=submitted.timestamp(),
            user="alice", nice=20000, eligible_time=submitted.timestamp(),
        ),
    ]
    assert store.pending_for_scheduling() == want
    assert store.pending_changes(0)[2] == want


def test_the_change_feed_gives_the_touched_jobs_still_pending(store: Store) -> None:
    """`pending_changes(after)` names every job with an event after `after`, and gives back,
    in scheduling order, those of them still pending: not the ones that started or were
    cancelled since, nor the pending jobs nothing happened to."""
    add_node(store, "n1", 1)
    quiet, cancelled, waiting = store.submit([job_row(priority=10), job_row(priority=20), job_row(priority=30)])
    last, touched, pending = store.pending_changes(0)
    assert touched == {quiet, cancelled, waiting}
    assert [j.id for j in pending] == [waiting, cancelled, quiet]
    low, high = store.submit([job_row(priority=5), job_row(priority=50)])
    store.cancel(cancelled)
    placed = place(store)
    assert [p.job_id for p in placed] == [high]
    newest, touched, pending = store.pending_changes(last)
    assert newest > last
    assert touched == {low, high, cancelled}
    assert [j.id for j in pending] == [low]
    assert store.pending_changes(newest) == (newest, set(), [])


def test_cancel_pending_never_runs_and_running_is_marked(store: Store) -> None:
    add_node(store, "n1", 1)
    running, pending = store.submit([job_row(), job_row()])
    place(store)
    assert state(store, running) == "RUNNING"
    assert store.cancel(pending).state == "CANCELLED"
    outcome = store.cancel(running)
    assert outcome.state == "RUNNING" and outcome.node == "n1"
    assert store.running_on_node("n1")[0].kill_state == "CANCELLED"
    store.finish([Finish(running, JobState.CANCELLED, "0:15")])
    place(store)
    assert state(store, pending) == "CANCELLED"
    assert "already" in store.cancel(pending).message


def test_who_cancelled_is_kept_until_a_new_run(store: Store) -> None:
    """sacct's "CANCELLED by UID": the user who asked, on a pending job and on a running one
    (kept through its end); a requeue starts a new run without it; a time limit is nobody's."""
    add_node(store, "n1", 2)
    running, pending, timed = store.submit([job_row(), job_row(), job_row()])
    store.cancel(pending, by="bob")
    assert {p.job_id for p in place(store)} == {running, timed}
    store.cancel_jobs([running], by="carol")
    store.finish([Finish(running, JobState.CANCELLED, "0:15"), Finish(timed, JobState.TIMEOUT, "0:15")])
    found = {j.id: j for j in store.list_jobs(job_ids=[running, pending, timed])[0]}
    assert (found[pending].cancelled_by, found[running].cancelled_by, found[timed].cancelled_by) == ("bob", "carol", None)
    assert store.cancel(pending, by="dave").found  # already ended: who stays who it was
    assert store.list_jobs(job_ids=[pending], columns={"cancelled_by"})[0][0].cancelled_by == "bob"
    store.requeue_jobs([running])
    assert store.list_jobs(job_ids=[running])[0][0].cancelled_by is None


def test_a_job_ended_as_asked_ended_when_it_was_asked(store: Store) -> None:
    """A cancel's or a time limit's job ends at the request, not when its processes were gone
    after the kill-wait; other ends keep the worker's time. Stored as the column stores any
    time: on SQLite, a value of a CASE without its type went in as other text."""
    add_node(store, "n1", 3)
    cancelled, timed, plain = store.submit([job_row(), job_row(), job_row()])
    place(store)
    asked = utcnow()
    store.cancel_jobs([cancelled], by="carol")
    assert store.set_kill(timed, JobState.TIMEOUT)
    later = asked + timedelta(seconds=30)
    store.finish([
        Finish(cancelled, JobState.CANCELLED, "0:9", end_time=later),
        Finish(timed, JobState.TIMEOUT, "0:9", end_time=later),
        Finish(plain, JobState.COMPLETED, "0:0", end_time=later),
    ])
    found = {j.id: j for j in store.list_jobs(job_ids=[cancelled, timed, plain])[0]}
    for job_id in (cancelled, timed):
        end = found[job_id].end_time
        assert end is not None and abs((end - asked).total_seconds()) < 5, (job_id, end, asked)
    assert found[plain].end_time == later
    # Every end as the column writes it: the stored times of the three compare as times.
    with store.engine.connect() as conn:
        raw = dict(conn.exec_driver_sql(f"SELECT id, end_time FROM jobs WHERE id IN ({cancelled}, {plain})").all())
        starts = dict(conn.exec_driver_sql(f"SELECT id, start_time FROM jobs WHERE id = {plain}").all())
    assert type(raw[cancelled]) is type(raw[plain]) is type(starts[plain])
    if isinstance(raw[plain], str):
        assert len(raw[cancelled]) == len(raw[plain]) == len(starts[plain]), raw


def test_capacity_guard_refuses_cpus_given_twice(store: Store) -> None:
    """Two schedulers deciding from the same snapshot: the second commit gets nothing."""
    add_node(store, "n1", 2, memory_mb=1000)
    a, b, c = store.submit([job_row(), job_row(), job_row()])
    first = store.apply_decision([Placement(a, "n1", (0,), 0)], {})
    second = store.apply_decision([Placement(b, "n1", (0,), 0), Placement(c, "n1", (1,), 2000)], {})
    assert [p.job_id for p in first] == [a]
    assert second == []  # CPU 0 is taken; job c would exceed the node's memory
    assert (state(store, b), state(store, c)) == ("PENDING", "PENDING")
    assert store.apply_decision([Placement(b, "n1", (5,), 0)], {}) == []  # no such CPU
    store.set_node_down("n1", None, "test")
    assert store.apply_decision([Placement(b, "n1", (1,), 0)], {}) == []  # node is down


def test_second_live_worker_is_refused(store: Store) -> None:
    add_node(store, "n1", 2, instance="host:1:a")
    with pytest.raises(NodeConflict, match="already served by a live worker"):
        add_node(store, "n1", 2, instance="host:2:b")
    # A predecessor known to be dead, or silent past the timeout, is taken over.
    store.register_node(
        name="n1", cpus=2, cpu_ids=[0, 1], cpu_binding=False, memory_mb=1, partitions=["debug"],
        instance="host:3:c", hostname="h", stale_before=utcnow(), instance_alive=lambda _i: False,
    )
    assert not store.heartbeat("n1", "host:1:a")
    assert store.heartbeat("n1", "host:3:c")


def test_stats_count_live_nodes_only(store: Store) -> None:
    add_node(store, "old", 8)
    time.sleep(0.05)
    cut = utcnow()
    add_node(store, "new", 2)
    assert store.stats().total_cpus == 10
    assert store.stats(live_after=cut).total_cpus == 2
    nodes = {n.name: n.state for n in store.list_nodes(live_after=cut)}
    assert nodes == {"new": "UP", "old": "DOWN"}


def test_a_node_that_comes_while_nodes_are_listed_is_left_for_the_next_listing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """list_nodes reads the nodes and their allocations apart: one registered in between must
    not fail the listing (GET /nodes answered a 500 while a worker registered)."""
    add_node(store, "n1", 2)
    read_views = store.node_views

    def views_then_a_new_node(*, live_after: datetime | None = None) -> list[NodeView]:
        views = read_views(live_after=live_after)
        add_node(store, "n2", 2)
        return views

    monkeypatch.setattr(store, "node_views", views_then_a_new_node)
    # Whichever order the two reads come in, n2 is in one and not the other.
    listed = [n.name for n in store.list_nodes()]
    assert listed in (["n1"], ["n1", "n2"])
    monkeypatch.undo()
    assert [n.name for n in store.list_nodes()] == ["n1", "n2"]
    # A node that went between the reads (its allocations are not read) is left out too.
    monkeypatch.setattr(store, "node_views", lambda **kwargs: [v for v in read_views(**kwargs) if v.name != "n1"])
    assert [n.name for n in store.list_nodes()] == ["n2"]


def exit_code(store: Store, job_id: int) -> str | None:
    job = store.get_job(job_id)
    assert job is not None
    return job.exit_code


def test_jobs_stranded_on_a_node_fail_without_an_exit_status(store: Store) -> None:
    add_node(store, "n1", 2)
    (job_id,) = store.submit([job_row()])
    place(store)
    store.claim_for_launch("n1")
    assert store.fail_stranded("n1", [job_id], "gone") == [job_id]
    job = store.get_job(job_id)
    assert job is not None and (job.state, job.exit_code, job.error_msg) == ("NODE_FAIL", "0:0", "gone")


def test_reaping_a_dead_node(store: Store) -> None:
    add_node(store, "dead", 4)
    plain, requeue, cancelled, unlaunched = store.submit(
        [job_row(), job_row(requeue=True), job_row(), job_row()]
    )
    store.apply_decision([Placement(i, "dead", (n,), 0) for n, i in enumerate((plain, requeue, cancelled))], {})
    store.claim_for_launch("dead")
    store.apply_decision([Placement(unlaunched, "dead", (3,), 0)], {})
    store.cancel(cancelled)
    time.sleep(0.05)
    cut = utcnow()
    add_node(store, "alive", 2)

    reaped = store.reap_dead_nodes(cut)
    assert reaped.nodes == ["dead"]
    assert sorted(reaped.ended) == sorted([plain, cancelled])
    assert sorted(reaped.requeued) == sorted([requeue, unlaunched])
    assert state(store, plain) == "NODE_FAIL"
    assert state(store, cancelled) == "CANCELLED"
    # No exit status was seen: the record says no code and no signal, as Slurm's does.
    assert [exit_code(store, i) for i in (plain, cancelled)] == ["0:0", "0:0"]
    for job_id, restarts in ((requeue, 1), (unlaunched, 0)):
        job = store.get_job(job_id)
        assert job is not None
        assert (job.state, job.restart_count, job.node_list, job.allocated_cpus) == (
            "PENDING", restarts, None, 0,
        )
    assert [e.to_state for e in store.events(plain)] == ["PENDING", "RUNNING", "NODE_FAIL"]
    assert store.events(requeue)[-1].reason == "requeued: node down"
    assert store.stats().used_cpus == 0
    assert {n.name: (n.state, n.reason) for n in store.list_nodes()} == {
        "alive": ("UP", None),
        "dead": ("DOWN", "Not responding"),
    }
    assert store.reap_dead_nodes(cut) == type(reaped)()  # nothing left to do

    # The requeued job runs again on the live node; a late report of its first run ends nothing.
    place(store)
    job = store.get_job(requeue)
    assert job is not None and job.state == "RUNNING" and job.node_list == "alive"
    assert store.finish([Finish(requeue, JobState.COMPLETED, "0:0", node="dead", restart_count=0)]) == []
    assert store.finish([Finish(requeue, JobState.COMPLETED, "0:0", node="alive", restart_count=0)]) == []
    assert store.finish([Finish(requeue, JobState.COMPLETED, "0:0", node="alive", restart_count=1)]) == [requeue]
    # The dead node's worker, heard from again, brings it back UP without the old reason.
    assert store.heartbeat("dead", "test:dead")
    assert {n.name: (n.state, n.reason) for n in store.list_nodes()}["dead"] == ("UP", None)


def test_relaunch_hands_back_only_claimed_running_jobs(store: Store) -> None:
    add_node(store, "n1", 2)
    claimed, unclaimed = store.submit([job_row(), job_row()])
    store.apply_decision([Placement(claimed, "n1", (0,), 0)], {})
    assert [r.id for r in store.claim_for_launch("n1")] == [claimed]
    store.apply_decision([Placement(unclaimed, "n1", (1,), 0)], {})
    assert store.relaunch("other-node", [claimed]) == []
    assert store.relaunch("n1", [claimed, unclaimed]) == [claimed]
    assert sorted(r.id for r in store.claim_for_launch("n1")) == [claimed, unclaimed]
    assert [e.reason for e in store.events(claimed)] == ["submit", "scheduled", "relaunch"]


def test_concurrent_claims_launch_each_job_once(store: Store) -> None:
    add_node(store, "n1", 64)
    ids = store.submit([job_row() for _ in range(64)])
    place(store)
    claimed: list[int] = []
    lock = threading.Lock()

    def claim() -> None:
        for _ in range(20):
            rows = store.claim_for_launch("n1")
            with lock:
                claimed.extend(r.id for r in rows)

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == ids


# ----------------------------------------------------------------- PostgreSQL only
def test_seed_queries_run_verbatim(pg_url: str) -> None:
    import psycopg

    store = Store(pg_url)
    store.migrate()
    add_node(store, "n1", 4)
    ids = store.submit([job_row(name="a", cpus_per_task=1), job_row(name="b", cpus_per_task=3), job_row()])
    store.apply_decision([Placement(ids[0], "n1", (0,), 0)], {})
    time.sleep(0.02)
    store.apply_decision([Placement(ids[1], "n1", (1, 2, 3), 0)], {})
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT id, name, allocated_cpus, start_time, EXTRACT(EPOCH FROM (NOW() - start_time)) as running_seconds FROM jobs WHERE state = 'RUNNING' ORDER BY start_time;"
        ).fetchall()
        totals = conn.execute(
            "SELECT SUM(allocated_cpus) as total_used_cpus, COUNT(*) as running_count FROM jobs WHERE state = 'RUNNING';"
        ).fetchone()
    assert [(r[0], r[1], r[2]) for r in rows] == [(ids[0], "a", 1), (ids[1], "b", 3)]
    assert all(r[3].tzinfo is not None and float(r[4]) >= 0 for r in rows)
    assert totals is not None and (int(totals[0]), totals[1]) == (4, 2)
    stats = store.stats()
    assert (stats.used_cpus, stats.running_jobs) == (4, 2)
    store.close()


def test_scheduler_lock_is_exclusive_and_dies_with_its_connection(pg_url: str) -> None:
    from conductor.store import pg_connect, pg_try_scheduler_lock

    store = Store(pg_url)
    first = pg_connect(store.direct_conninfo(), "conductor-scheduler:first")
    second = pg_connect(store.direct_conninfo(), "conductor-scheduler:second")
    try:
        assert pg_try_scheduler_lock(first)
        assert not pg_try_scheduler_lock(second)
        assert store.scheduler_holder() == "conductor-scheduler:first"
        first.close()
        # The server ends the closed session (and frees its locks) a moment after the close.
        deadline = time.monotonic() + 5
        while not pg_try_scheduler_lock(second) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.scheduler_holder() == "conductor-scheduler:second"
    finally:
        second.close()
        store.close()


def test_scheduler_lock_hands_over(pg_url: str) -> None:
    from conductor.scheduler.leader import SchedulerLock

    store = Store(pg_url)
    changes: list[tuple[str, bool]] = []
    a = SchedulerLock(store, interval=0.1, on_change=lambda on: changes.append(("a", on))).start()
    deadline = time.monotonic() + 5
    while not a.is_active() and time.monotonic() < deadline:
        time.sleep(0.02)
    b = SchedulerLock(store, interval=0.1, on_change=lambda on: changes.append(("b", on))).start()
    time.sleep(0.5)
    assert a.is_active() and not b.is_active()
    a.stop()
    deadline = time.monotonic() + 5
    while not b.is_active() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert b.is_active()
    b.stop()
    assert changes == [("a", True), ("a", False), ("b", True), ("b", False)]
    store.close()


def test_pg_bus_carries_topics_between_processes(pg_url: str) -> None:
    from conductor.bus.postgres import PgBus

    store = Store(pg_url)
    sender, receiver = PgBus(store, poll=0.1).start(), PgBus(store, poll=0.1).start()
    got: list[float] = []
    own: list[float] = []
    receiver.subscribe("node:n1", lambda: got.append(time.monotonic()))
    sender.subscribe("node:n1", lambda: own.append(time.monotonic()))
    try:
        assert receiver.connected.wait(5)
        t0 = time.monotonic()
        sender.publish("node:n1")
        sender.publish("node:other")
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.2)
        assert len(got) == 1 and got[0] - t0 < 0.5
        assert len(own) == 1  # its own notification is not delivered twice
    finally:
        sender.close()
        receiver.close()
        store.close()


def test_pg_bus_coalesces_a_burst_into_few_notifications(pg_url: str) -> None:
    from conductor.bus.postgres import PgBus

    store = Store(pg_url)
    sender, receiver = PgBus(store, poll=0.1).start(), PgBus(store, poll=0.1).start()
    got: list[str] = []
    receiver.subscribe("scheduler", lambda: got.append("scheduler"))
    receiver.subscribe("node:n1", lambda: got.append("node:n1"))
    try:
        assert receiver.connected.wait(5)
        for _ in range(2000):  # a burst of submissions, each waking the scheduler
            sender.publish("scheduler")
        sender.publish("node:n1")
        deadline = time.monotonic() + 5
        while "node:n1" not in got and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.2)
        # Every topic arrives, the burst as a handful of notifications, not 2,000.
        assert got.count("node:n1") >= 1
        assert 1 <= got.count("scheduler") < 200, got.count("scheduler")
    finally:
        sender.close()
        receiver.close()
        store.close()


def test_concurrent_submissions_each_store_their_own_job(store: Store) -> None:
    """On PostgreSQL concurrent plain submissions share transactions (group commit); on both
    backends each submitter gets the id of its own job, with its own values and event."""
    import threading

    names = [f"c{i}" for i in range(60)]
    got: dict[str, int] = {}
    start = threading.Barrier(12)

    def submit_some(chunk: list[str]) -> None:
        start.wait()
        for name in chunk:
            [job_id] = store.submit([job_row(name=name)])
            got[name] = job_id

    threads = [threading.Thread(target=submit_some, args=(names[i::12],)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(got) == sorted(names) and len(set(got.values())) == len(names)
    for name, job_id in got.items():
        job = store.get_job(job_id)
        assert job is not None and job.name == name and job.state == "PENDING"
        assert [e.to_state for e in store.events(job_id)] == ["PENDING"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # the group commit's batch is PostgreSQL's
def test_batched_submissions_map_each_id_to_its_row(store: Store) -> None:
    """The group commit's batch (PostgreSQL): rows naming the same columns go in one statement
    (chunks of them in one transaction beyond a chunk's size), rows of another shape in a
    statement of their own; each id is its own row's, with its submit event."""
    assert store.dialect == "postgresql"
    now = utcnow()
    base = {"submit_time": now, "eligible_time": now, "state": "PENDING", "reason": "None"}
    rows = [{**job_row(name=f"b{i}"), **base} for i in range(70)]
    rows[3] = {**rows[3], "comment": "other shape"}
    rows[50] = {**rows[50], "comment": "other shape"}
    ids = store._submit_batch(rows)
    assert len(set(ids)) == 70
    for row, job_id in zip(rows, ids, strict=True):
        job = store.get_job(job_id)
        assert job is not None and job.name == row["name"] and job.comment == row.get("comment")
        assert [(e.from_state, e.to_state) for e in store.events(job_id)] == [(None, "PENDING")]
    # One shape, one statement: a batch of a few (the usual), mapped in order too.
    few = store._submit_batch([{**job_row(name=f"f{i}"), **base} for i in range(5)])
    assert [store.get_job(i).name for i in few] == [f"f{i}" for i in range(5)]  # type: ignore[union-attr]


def test_a_decision_sets_each_pending_jobs_reason_and_no_other_jobs(store: Store) -> None:
    # Reasons are written one statement per distinct reason: each job must still get its own.
    add_node(store, "n1", 1)
    ids = store.submit([job_row(name=f"r{i}") for i in range(6)])
    (running,) = [p.job_id for p in place(store)]
    others = [i for i in ids if i != running]
    reasons = {others[0]: "Resources", others[1]: "Priority", others[2]: "Priority", others[3]: "Dependency"}
    store.apply_decision([], {**reasons, running: "Priority"})
    got = {i: (job.state, job.reason) for i in ids if (job := store.get_job(i)) is not None}
    assert got[running] == ("RUNNING", "None")  # not pending: left as it was
    for job_id, reason in reasons.items():
        assert got[job_id] == ("PENDING", reason)
    assert got[others[4]][0] == "PENDING" and got[others[4]][1] != "Dependency"


def test_a_failed_statement_does_not_carry_its_values(store: Store) -> None:
    # Errors reach the log, and the values of the store's statements are jobs' scripts and
    # environments: secrets among them. The statement itself is enough to find the fault.
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError) as failed, store.engine.connect() as conn:
        conn.execute(text("INSERT INTO no_such_table (secret) VALUES (:secret)"), {"secret": "TOKEN=s3cr3t"})
    assert "no_such_table" in str(failed.value)
    assert "s3cr3t" not in str(failed.value)


def test_what_dependency_views_read(store: Store) -> None:
    """The dependencies of jobs not started (squeue %E asks for them), and the summaries of the
    jobs they name, an array's tasks with it."""
    add_node(store, "n1", 4)
    first = store.submit([job_row()])[0]
    tasks = store.submit([job_row(array_task_id=t, array_spec="0-1") for t in (0, 1)])
    waiting = store.submit([job_row(dependency=f"afterok:{first}:{tasks[0]}")])[0]
    plain = store.submit([job_row(begin_time=utcnow() + timedelta(hours=1))])[0]
    assert {p.job_id for p in place(store)} == {first, *tasks}
    assert store.dependencies_of([waiting, plain, first, 99999999]) == {
        waiting: DependencyTarget(f"afterok:{first}:{tasks[0]}"), plain: None, first: None,
    }
    assert store.dependency_targets() == {waiting: DependencyTarget(f"afterok:{first}:{tasks[0]}")}
    summaries = store.job_summaries([first, tasks[0]])
    assert set(summaries) == {first, *tasks}
    assert {summaries[t].array_task_id for t in tasks} == {0, 1} and summaries[first].state == "RUNNING"
