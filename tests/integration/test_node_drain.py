"""A node's drain in the store, on SQLite and PostgreSQL alike (`database_url` is both): set and
cleared atomically, carried by the listings and node views, kept through the worker's
heartbeats, re-registrations and deaths, honoured by placement and counted by /jobs/stats."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from conductor.bus import Bus
from conductor.domain.states import JobState
from conductor.errors import Conflict, Forbidden, Invalid, NotFound
from conductor.scheduler.policy import schedule
from conductor.services.nodes import NodeService, NodeStateChange
from conductor.services.principal import Principal
from conductor.store import Finish, Store, utcnow


def _job(**values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": "job", "user_name": "alice", "partition": "debug", "cpus_per_task": 1, "work_dir": "/tmp",
        "script": "#!/bin/bash\ntrue\n", "environment": "{}",
    }
    row.update(values)
    return row


def _register(store: Store, name: str, cpus: int = 4, *, instance: str | None = None, stale: float = 30) -> None:
    store.register_node(
        name=name, cpus=cpus, cpu_ids=list(range(cpus)), cpu_binding=False, memory_mb=4000, partitions=["debug"],
        instance=instance or f"test:{name}", hostname="test-host", stale_before=utcnow() - timedelta(seconds=stale),
    )


def _pass(store: Store) -> dict[int, str]:
    """One scheduler pass over the store: the placements made, job id -> node."""
    decision = schedule(store.pending_for_scheduling(), store.node_views(), time.time(), presorted=True)
    applied = store.apply_decision(decision.placements, decision.reasons)
    return {p.job_id: p.node for p in applied}


def _listed(store: Store, name: str) -> Any:
    return next(n for n in store.list_nodes() if n.name == name)


def test_drain_and_resume_are_stored_with_who_and_when(store: Store) -> None:
    _register(store, "n1")
    before = utcnow()
    done = store.drain_node("n1", "disk swap", "root")
    assert done.found and done.changed and done.live
    assert done.drain is not None and (done.drain.reason, done.drain.user) == ("disk swap", "root")
    drain = _listed(store, "n1").drain
    assert drain is not None and (drain.reason, drain.user) == ("disk swap", "root")
    assert before - timedelta(seconds=1) <= drain.time <= utcnow() and drain.time.tzinfo is not None
    view = next(v for v in store.node_views() if v.name == "n1")
    assert view.drained and not view.up
    assert _listed(store, "n1").state == "UP"  # drained is not down: the worker is alive

    # The same reason again changes nothing (who and since when stay); another replaces it.
    again = store.drain_node("n1", "disk swap", "admin2")
    assert again.found and not again.changed and again.drain == drain
    other = store.drain_node("n1", "fan", "admin2")
    assert other.changed and other.drain is not None and other.drain.user == "admin2"
    assert _listed(store, "n1").drain.reason == "fan"

    resumed = store.resume_node("n1")
    assert resumed.found and resumed.changed and resumed.drain is not None and resumed.drain.reason == "fan"
    assert _listed(store, "n1").drain is None
    view = next(v for v in store.node_views() if v.name == "n1")
    assert view.up and not view.drained
    # Resuming a node that is not drained changes nothing; an unknown node is not found.
    assert not store.resume_node("n1").changed
    assert not store.resume_node("nope").found and not store.drain_node("nope", "x", "root").found


def test_heartbeats_registrations_and_deaths_keep_the_drain(store: Store) -> None:
    _register(store, "n1", instance="w1")
    store.drain_node("n1", "disk swap", "root")
    kept = _listed(store, "n1").drain
    assert store.heartbeat("n1", "w1")
    # The same worker registering again, another worker taking a stale node over, the worker
    # stopping, the scheduler declaring the silent node DOWN: none of them touches the drain.
    _register(store, "n1", instance="w1")
    store.set_node_down("n1", "w1", "worker stopped")
    assert _listed(store, "n1").state == "DOWN" and _listed(store, "n1").drain == kept
    _register(store, "n1", instance="w2", stale=-60)  # w1's heartbeat is older than "stale"
    assert store.heartbeat("n1", "w2")
    store.reap_dead_nodes(utcnow() + timedelta(seconds=1))
    assert _listed(store, "n1").state == "DOWN"
    _register(store, "n1", cpus=8, instance="w3", stale=-60)
    node = _listed(store, "n1")
    assert node.state == "UP" and node.cpus == 8 and node.drain == kept
    assert not next(v for v in store.node_views() if v.name == "n1").up


def test_a_drained_node_gets_no_job_and_its_running_job_ends_as_usual(store: Store) -> None:
    _register(store, "n1", cpus=2)
    first = store.submit([_job()])[0]
    assert _pass(store) == {first: "n1"}
    store.drain_node("n1", "disk swap", "root")
    waiting = store.submit([_job()])[0]
    assert _pass(store) == {}
    job = store.get_job(waiting)
    assert job is not None and job.state == "PENDING" and job.reason == "ReqNodeNotAvail"
    # The running job goes on and ends normally; its CPU is released as for any other.
    assert store.finish([Finish(first, JobState.COMPLETED, "0:0")]) == [first]
    view = next(v for v in store.node_views() if v.name == "n1")
    assert len(view.free_cpu_ids) == 2 and view.running_jobs == 0 and not view.up
    assert _pass(store) == {}
    store.resume_node("n1")
    assert _pass(store) == {waiting: "n1"}


def test_a_drain_committed_after_the_decision_wins_over_its_placements(store: Store) -> None:
    """The scheduler decides from a snapshot; a drain that commits before the placement does
    keeps the job off the node (the placement's compare-and-set reads the node row locked)."""
    _register(store, "n1")
    job_id = store.submit([_job()])[0]
    decision = schedule(store.pending_for_scheduling(), store.node_views(), time.time(), presorted=True)
    assert [p.node for p in decision.placements] == ["n1"]
    store.drain_node("n1", "disk swap", "root")
    assert store.apply_decision(decision.placements, decision.reasons) == []
    job = store.get_job(job_id)
    assert job is not None and job.state == "PENDING"


def test_jobs_go_to_the_nodes_that_take_them(store: Store) -> None:
    _register(store, "n1")
    _register(store, "n2")
    store.drain_node("n1", "disk swap", "root")
    ids = store.submit([_job() for _ in range(5)])
    placed = _pass(store)
    assert set(placed.values()) == {"n2"} and len(placed) == 4
    left = store.get_job(ids[-1])
    # n2 could hold it: it waits for n2's CPUs, not for the drained node.
    assert left is not None and left.reason == "Resources"


def test_stats_count_a_drained_nodes_free_cpus_as_neither_used_nor_available(store: Store) -> None:
    _register(store, "n1", cpus=4)
    _register(store, "n2", cpus=2)
    running = store.submit([_job(partition="debug") for _ in range(3)])
    assert len(_pass(store)) == 3
    on_n1 = sum(1 for j in running if (store.get_job(j) or _missing()).node_list == "n1")
    live_after = utcnow() - timedelta(seconds=30)
    assert store.stats(live_after=live_after).available_cpus == 3
    store.drain_node("n1", "disk swap", "root")
    s = store.stats(live_after=live_after)
    assert (s.total_cpus, s.used_cpus, s.running_jobs) == (6, 3, 3)
    # n1's CPUs its jobs do not hold are "other"; only n2's free ones are available.
    assert s.available_cpus == 2 - (3 - on_n1)
    store.resume_node("n1")
    assert store.stats(live_after=live_after).available_cpus == 3


def _missing() -> Any:
    raise AssertionError("job not found")


# ------------------------------------------------------------------ the service over the store
ADMIN = Principal("root", admin=True, token_id=1)
USER = Principal("alice", admin=False, token_id=2)


def test_the_service_checks_who_what_and_which(store: Store) -> None:
    published: list[str] = []
    bus = Bus()
    bus.subscribe("scheduler", lambda: published.append("scheduler"))
    service = NodeService(store, bus)
    _register(store, "n1")
    with pytest.raises(Forbidden):
        service.set_state(USER, "n1", NodeStateChange(state="DRAIN", reason="x"))
    with pytest.raises(NotFound) as missing:
        service.set_state(ADMIN, "n9", NodeStateChange(state="drain", reason="x"))
    assert missing.value.field == "name"
    for reason in (None, "", "   "):
        with pytest.raises(Invalid) as no_reason:
            service.set_state(ADMIN, "n1", NodeStateChange(state="DRAIN", reason=reason))
        assert no_reason.value.field == "reason"
    with pytest.raises(Conflict):  # neither drained nor down: nothing to resume
        service.set_state(ADMIN, "n1", NodeStateChange(state="RESUME"))
    assert not service.set_state(ADMIN, "n1", NodeStateChange(state="UNDRAIN")).changed  # UNDRAIN: always
    assert published == []

    result = service.set_state(ADMIN, "n1", NodeStateChange(state="DRAIN", reason=" disk swap "))
    assert result.changed and result.drain is not None and result.drain.reason == "disk swap"
    assert result.drain.user == "root" and published == ["scheduler"]
    assert service.set_state(ADMIN, "n1", NodeStateChange(state="RESUME")).changed
    # A node that is down may be resumed (it takes jobs once its worker is back): no refusal.
    store.set_node_down("n1", None, "worker stopped")
    assert not service.set_state(ADMIN, "n1", NodeStateChange(state="RESUME")).changed
    assert service.set_state(ADMIN, "n1", NodeStateChange(state="DRAIN", reason="x")).changed
    assert service.set_state(ADMIN, "n1", NodeStateChange(state="UNDRAIN")).changed
