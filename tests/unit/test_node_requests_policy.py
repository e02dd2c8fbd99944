"""sbatch --nodelist and --exclude in the scheduler's pure policy: a job runs only on a node it
may use, waits for it when busy (reserving it), and waits with ReqNodeNotAvail when no node it
may use takes jobs; nobody else is held back by its constraints."""

from __future__ import annotations

from typing import Any

import pytest

from conductor.scheduler import policy
from conductor.scheduler.policy import Backfill, NodeView, PendingJob, Release, schedule


def node(name: str, cpus: int = 2, free: int | None = None, up: bool = True, end: float = 500.0) -> NodeView:
    free = cpus if free is None else free
    busy = cpus - free
    return NodeView(
        name=name, cpu_ids=tuple(range(cpus)), free_cpu_ids=list(range(busy, cpus)), memory_mb=8000,
        free_memory_mb=8000, partitions=frozenset({"debug"}), running_jobs=1 if busy else 0, up=up,
        releases=[Release(99, busy, 0, end)] if busy else [],
    )


def job(job_id: int, cpus: int = 1, **kw: object) -> PendingJob:
    return PendingJob(id=job_id, cpus=cpus, submit_time=float(job_id), time_limit=60.0, **kw)  # type: ignore[arg-type]


def test_a_job_runs_on_the_node_it_names_and_never_on_one_it_excludes() -> None:
    nodes = [node("a"), node("b"), node("c")]
    decision = schedule(
        [job(1, required_node="c"), job(2, excluded_nodes=frozenset({"a", "b"})), job(3, excluded_nodes=frozenset({"c"}))],
        nodes, now=0.0,
    )
    placed = {p.job_id: p.node for p in decision.placements}
    assert placed[1] == "c" and placed[2] == "c" and placed[3] in ("a", "b")


def test_a_job_whose_node_is_busy_waits_for_it_and_reserves_it() -> None:
    # Node a is full until t=500; b is free. The job named a waits (Resources) with a start on a;
    # a job without constraints behind it still starts on b.
    decision = schedule([job(1, required_node="a"), job(2)], [node("a", free=0), node("b")], now=0.0)
    assert [(p.job_id, p.node) for p in decision.placements] == [(2, "b")]
    assert decision.reasons == {1: "Resources"}
    estimate = decision.estimates[1]
    assert (estimate.node, estimate.start, estimate.reserved) == ("a", 500.0, True)


def test_a_job_whose_nodes_take_no_jobs_waits_with_req_node_not_avail() -> None:
    nodes = [node("a", up=False), node("b")]
    decision = schedule([job(1, required_node="a"), job(2, excluded_nodes=frozenset({"b"})), job(3)], nodes, now=0.0)
    assert [(p.job_id, p.node) for p in decision.placements] == [(3, "b")]
    assert decision.reasons == {1: "ReqNodeNotAvail", 2: "ReqNodeNotAvail"}
    assert 1 not in decision.estimates and not decision.commitments.reservations
    # A node it names that left the cluster: the same.
    assert schedule([job(4, required_node="gone")], [node("b")], now=0.0).reasons == {4: "ReqNodeNotAvail"}


def test_a_constrained_job_that_does_not_fit_stops_no_alike_job() -> None:
    # Past the first miss, jobs of the same shape are skipped as unable to fit: a miss of a job
    # kept off node b says nothing of a job that may use b.
    nodes = [node("a", free=0), node("b")]
    jobs = [job(1, required_node="a"), job(2, required_node="a"), job(3), job(4)]
    decision = schedule(jobs, nodes, now=0.0)
    assert sorted(p.job_id for p in decision.placements) == [3, 4]
    # The reverse holds: an unconstrained miss does stop a constrained job of the same shape.
    full = [node("a", free=0), node("b", free=0)]
    decision = schedule([job(5), job(6, excluded_nodes=frozenset({"a"}))], full, now=0.0)
    assert decision.placements == []


def test_estimates_of_alike_jobs_are_not_shared_across_constraints() -> None:
    # Both nodes busy, a until 500 and b until 100: the job kept to a starts at 500, not at b's 100.
    # No reservations (depth 0): nothing changes a node between the two searches.
    nodes = [node("a", free=0, end=500.0), node("b", free=0, end=100.0)]
    decision = schedule([job(1), job(2, required_node="a")], nodes, now=0.0, backfill=Backfill(depth=0))
    assert (decision.estimates[1].node, decision.estimates[1].start) == ("b", 100.0)
    assert (decision.estimates[2].node, decision.estimates[2].start) == ("a", 500.0)


def test_alike_constrained_jobs_that_cannot_fit_are_tried_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # An array kept off the one free node: after the first task fails to fit, the others (the
    # same shape, kept to the same nodes) are known not to, as alike jobs of the partition are.
    tried: list[int] = []
    pick = policy._pick_node

    def counting(job: PendingJob, *args: Any) -> Any:
        tried.append(job.id)
        return pick(job, *args)

    monkeypatch.setattr(policy, "_pick_node", counting)
    kept_off = [job(i, excluded_nodes=frozenset({"b"})) for i in range(1, 51)]
    decision = schedule([*kept_off, job(51)], [node("a", free=0), node("b")], now=0.0)
    assert [(p.job_id, p.node) for p in decision.placements] == [(51, "b")]
    assert tried == [1, 51]
