"""Drained nodes in the pure policy and in the forecast built on it (`conductor explain`,
`sbatch --test-only`): a drained node is presented as taking no new job (`up` False); a job only
such nodes could hold waits with ReqNodeNotAvail, as Slurm's (node_scheduler.c)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from worker_fakes import job_record

from conductor.api import fastpath
from conductor.domain.job import Job
from conductor.scheduler.policy import Backfill, NodeView, PendingJob, Release, schedule
from conductor.services.forecast import Forecaster, explain_waiting
from conductor.services.jobs import WouldSubmit

NOW = 1_000_000.0


def node(name: str, cpus: int, *, free: int | None = None, drained: bool = False, down: bool = False,
         releases: Sequence[Release] = ()) -> NodeView:
    free = cpus if free is None else free
    return NodeView(
        name=name, cpu_ids=tuple(range(cpus)), free_cpu_ids=list(range(cpus - free, cpus)), memory_mb=8000,
        free_memory_mb=8000, partitions=frozenset({"debug"}), running_jobs=0 if free == cpus else 1,
        up=not (drained or down), releases=list(releases), drained=drained,
    )


def job(job_id: int, cpus: int = 1, **kw: object) -> PendingJob:
    return PendingJob(id=job_id, cpus=cpus, submit_time=float(job_id), **kw)  # type: ignore[arg-type]


def test_a_drained_node_gets_no_job_while_others_do() -> None:
    decision = schedule([job(1), job(2)], [node("n1", 4, drained=True), node("n2", 1)], NOW)
    assert [(p.job_id, p.node) for p in decision.placements] == [(1, "n2")]
    # n2 could hold job 2 once job 1 ends: it waits for resources, never planned on n1.
    assert decision.reasons == {2: "Resources"}
    assert decision.estimates[2].node != "n1"


def test_only_drained_nodes_could_hold_it_reqnodenotavail() -> None:
    nodes = [node("big", 8, drained=True), node("small", 2)]
    decision = schedule([job(1, cpus=4), job(2, cpus=2), job(3, cpus=4, exclusive=True)], nodes, NOW)
    # Job 1 (4 CPUs) fits only the drained node: ReqNodeNotAvail, no estimate, no reservation,
    # and it keeps nobody waiting: job 2 behind it starts on the small node.
    assert [(p.job_id, p.node) for p in decision.placements] == [(2, "small")]
    assert decision.reasons == {1: "ReqNodeNotAvail", 3: "ReqNodeNotAvail"}
    assert 1 not in decision.estimates and decision.commitments.reservations == []
    assert "debug" not in decision.commitments.waiting


def test_a_job_no_node_could_ever_hold_still_waits_for_resources() -> None:
    decision = schedule([job(1, cpus=16)], [node("n1", 8, drained=True), node("n2", 4)], NOW)
    assert decision.reasons == {1: "Resources"}  # not a node's state: nothing could hold it


def test_down_and_drained_nodes_alike() -> None:
    nodes = [node("n1", 4, down=True), node("n2", 4, drained=True)]
    decision = schedule([job(1, cpus=2)], nodes, NOW)
    assert decision.placements == [] and decision.reasons == {1: "ReqNodeNotAvail"}
    # Once resumed (up again) the same job starts there.
    nodes[1].up, nodes[1].drained = True, False
    again = schedule([job(1, cpus=2, reason="ReqNodeNotAvail")], nodes, NOW)
    assert [(p.job_id, p.node) for p in again.placements] == [(1, "n2")]


def test_running_jobs_of_a_drained_node_reserve_nothing_there() -> None:
    """A drained node's running jobs end by their limits, but what they free is not planned:
    the waiting job's estimate is on a node that takes jobs."""
    drained = node("n1", 4, free=0, drained=True, releases=[Release(10, 4, 0, NOW + 60)])
    busy = node("n2", 4, free=0, releases=[Release(11, 4, 0, NOW + 600)])
    decision = schedule([job(1, cpus=4, time_limit=100.0)], [drained, busy], NOW, backfill=Backfill(depth=1))
    assert decision.reasons == {1: "Resources"}
    estimate = decision.estimates[1]
    assert (estimate.node, estimate.start) == ("n2", NOW + 600)


# ------------------------------------------------------------------ the forecast
class PlanStore:
    def __init__(self, nodes: list[NodeView], pending: list[PendingJob]) -> None:
        self.nodes = nodes
        self.pending = pending

    def pending_snapshot(self) -> tuple[int, list[PendingJob]]:
        return 0, list(self.pending)

    def node_views(self, *, live_after: datetime | None = None) -> list[NodeView]:
        return [NodeView(n.name, n.cpu_ids, list(n.free_cpu_ids), n.memory_mb, n.free_memory_mb, n.partitions,
                         n.running_jobs, n.up, list(n.releases), dict(n.partition_cpus), n.drained) for n in self.nodes]

    def running_per_array(self) -> dict[int, int]:
        return {}

    def next_job_id(self) -> int:
        return 100

    def list_jobs(self, *, states: Sequence[str] | None = None, users: Sequence[str] | None = None,
                  array_job_ids: Sequence[int] | None = None, limit: int = 1000, count: bool = True,
                  columns: Collection[str] | None = None) -> tuple[list[Job], int]:
        return [], 0


def test_explain_names_the_drained_nodes() -> None:
    store = PlanStore([node("n1", 4, drained=True), node("n2", 4, down=True)], [job(1, cpus=2)])
    forecaster = Forecaster(store, clock=lambda: NOW)
    pending, forecast = forecaster.forecast_pending(1)
    assert forecast is not None and forecast.reason == "ReqNodeNotAvail" and forecast.start == float("inf")
    assert forecast.unavailable == [("n1", "drained"), ("n2", "down")]
    text = "\n".join(explain_waiting(job_record(1, reason="ReqNodeNotAvail"), pending, forecast, {}))
    assert "No node of partition debug takes new jobs: n1 (drained), n2 (down)." in text
    assert "only nodes that take no new job now could hold it (ReqNodeNotAvail)" in text
    assert "`scontrol update NodeName=n1 State=RESUME`" in text


def test_explain_speaks_of_the_nodes_a_job_is_kept_to() -> None:
    # n2 is free, but the job asked for the drained n1 (--nodelist): only n1 is named.
    store = PlanStore([node("n1", 4, drained=True), node("n2", 4)], [job(1, cpus=2, required_node="n1")])
    pending, forecast = Forecaster(store, clock=lambda: NOW).forecast_pending(1)
    assert forecast is not None and forecast.reason == "ReqNodeNotAvail"
    assert forecast.unavailable == [("n1", "drained")] and forecast.free_now == []
    text = "\n".join(explain_waiting(job_record(1, reason="ReqNodeNotAvail"), pending, forecast, {}))
    assert "It may run on node n1 alone (--nodelist)." in text
    assert "No node of partition debug takes new jobs: n1 (drained)." in text
    assert "or asking for less or other nodes." in text
    store = PlanStore([node("n1", 4), node("n2", 4), node("n3", 4)], [job(2, excluded_nodes=frozenset({"n1", "n3"}))])
    pending, forecast = Forecaster(store, clock=lambda: NOW).forecast_pending(2)
    assert forecast is not None and forecast.node == "n2"
    text = "\n".join(explain_waiting(job_record(2), pending, forecast, {}))
    assert "It may not run on n[1,3] (--exclude)." in text


def test_explain_of_a_job_waiting_for_the_nodes_that_take_jobs_mentions_the_drained() -> None:
    store = PlanStore([node("n1", 4, drained=True), node("n2", 2, free=0, releases=[Release(9, 2, 0, NOW + 60)])],
                      [job(1, cpus=2, time_limit=30.0)])
    pending, forecast = Forecaster(store, clock=lambda: NOW).forecast_pending(1)
    assert forecast is not None and forecast.reason == "Resources" and forecast.node == "n2"
    text = "\n".join(explain_waiting(job_record(1, reason="Resources"), pending, forecast, {}))
    assert "Free CPUs now in partition debug: n2 0/2." in text
    assert "Taking no new job in partition debug: n1 (drained)." in text


def test_test_only_says_reqnodenotavail() -> None:
    store = PlanStore([node("n1", 4, drained=True)], [])
    forecast = Forecaster(store, clock=lambda: NOW).forecast(job(100, cpus=2))
    answer = fastpath.test_only_answer(WouldSubmit(1, forecast, 100, "debug"))
    assert answer["expected_start_time"] is None
    assert answer["message"] == (
        "Job 100 would be accepted; it would wait with reason ReqNodeNotAvail: only nodes of its partition that "
        "take no new job now (drained or down: n1) could run it"
    )


def test_only_partitions_where_a_drained_node_is_larger_are_asked_about() -> None:
    from conductor.scheduler.policy import _Unavailable

    # A drained node as large as one that takes jobs: no shape can need it alone, and the pass
    # over the backlog does not ask (one set lookup a job).
    assert _Unavailable([node("n1", 4, drained=True), node("n2", 4), node("n3", 2)]).risky == frozenset()
    assert _Unavailable([node("n1", 8, drained=True), node("n2", 4)]).risky == frozenset({"debug"})
    assert _Unavailable([node("n1", 4, down=True)]).risky == frozenset({"debug"})
