"""The scheduler's decisions, called directly as the pure function they are."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from conductor.scheduler.limits import Limits, QosLimit
from conductor.scheduler.policy import Backfill, DependencyStatus, NodeView, PendingJob, PlacementPolicy, schedule


def node(name: str, cpus: int, free: int | None = None, memory: int = 64_000, partitions: str = "debug") -> NodeView:
    free = cpus if free is None else free
    return NodeView(
        name=name,
        cpu_ids=tuple(range(cpus)),
        free_cpu_ids=list(range(cpus - free, cpus)),
        memory_mb=memory,
        free_memory_mb=memory,
        partitions=frozenset(partitions.split(",")),
        running_jobs=0 if free == cpus else 1,
    )


def job(job_id: int, cpus: int = 1, **kw: object) -> PendingJob:
    return PendingJob(id=job_id, cpus=cpus, submit_time=float(job_id), **kw)  # type: ignore[arg-type]


def test_fills_free_cpus_then_waits_for_resources() -> None:
    decision = schedule([job(i) for i in range(1, 6)], [node("n1", 4)], now=100.0)
    assert [p.job_id for p in decision.placements] == [1, 2, 3, 4]
    assert sorted(cpu for p in decision.placements for cpu in p.cpu_ids) == [0, 1, 2, 3]
    assert decision.reasons == {5: "Resources"}


def test_order_is_priority_then_submit_time_then_id() -> None:
    jobs = [
        PendingJob(id=3, cpus=1, priority=0, submit_time=1.0),
        PendingJob(id=2, cpus=1, priority=0, submit_time=1.0),
        PendingJob(id=1, cpus=1, priority=0, submit_time=2.0),
        PendingJob(id=9, cpus=1, priority=5, submit_time=9.0),
    ]
    decision = schedule(jobs, [node("n1", 2)], now=10.0)
    assert [p.job_id for p in decision.placements] == [9, 2]
    # The first job that waits is the one resources are kept for; the one behind it waits on it.
    assert decision.reasons == {3: "Resources", 1: "Priority"}


def test_smaller_later_jobs_start_while_a_large_one_waits() -> None:
    decision = schedule([job(1, cpus=4), job(2, cpus=1)], [node("n1", 4, free=2)], now=0.0)
    assert [p.job_id for p in decision.placements] == [2]
    assert decision.reasons == {1: "Resources"}


def test_reason_only_reported_when_it_changes() -> None:
    waiting = job(1, cpus=8, reason="Resources")
    assert schedule([waiting], [node("n1", 4)], now=0.0).reasons == {}


def test_spread_prefers_least_loaded_and_pack_the_fullest() -> None:
    nodes = lambda: [node("a", 8, free=2), node("b", 8, free=6), node("c", 4, free=3)]
    spread = schedule([job(1)], nodes(), now=0.0, policy=PlacementPolicy.SPREAD)
    assert spread.placements[0].node == "b"  # 6/8 free is the largest fraction
    pack = schedule([job(1)], nodes(), now=0.0, policy=PlacementPolicy.PACK)
    assert pack.placements[0].node == "a"  # fewest free CPUs that still fit


def test_spread_balances_a_burst_across_nodes() -> None:
    decision = schedule([job(i) for i in range(1, 9)], [node("a", 4), node("b", 4)], now=0.0)
    per_node = {n: sum(1 for p in decision.placements if p.node == n) for n in ("a", "b")}
    assert per_node == {"a": 4, "b": 4}


def test_partition_and_memory_are_respected() -> None:
    nodes = [node("gpu1", 8, partitions="gpu"), node("cpu1", 8, memory=1000)]
    decision = schedule(
        [job(1, partition="gpu"), job(2, memory_mb=2000), job(3, memory_mb=500)], nodes, now=0.0
    )
    placed = {p.job_id: p.node for p in decision.placements}
    assert placed == {1: "gpu1", 3: "cpu1"}
    assert decision.reasons == {2: "Resources"}


def test_exclusive_takes_a_whole_idle_node() -> None:
    decision = schedule([job(1, exclusive=True), job(2)], [node("n1", 4, free=3), node("n2", 4)], now=0.0)
    placed = {p.job_id: p for p in decision.placements}
    assert placed[1].node == "n2" and placed[1].cpu_ids == (0, 1, 2, 3)
    assert placed[2].node == "n1"


def test_down_nodes_get_nothing() -> None:
    down = node("n1", 4)
    down.up = False
    decision = schedule([job(1)], [down], now=0.0)
    # Only a node that takes no job could hold it: Slurm's ReqNodeNotAvail (node_scheduler.c).
    assert decision.placements == [] and decision.reasons == {1: "ReqNodeNotAvail"}


def test_blocking_reasons() -> None:
    jobs = [
        job(1, held=True),
        job(2, begin_time=50.0),
        job(3, dependency=DependencyStatus.WAITING),
        job(4, dependency=DependencyStatus.NEVER),
        job(5, begin_time=5.0),
    ]
    decision = schedule(jobs, [node("n1", 4)], now=10.0)
    assert [p.job_id for p in decision.placements] == [5]
    assert decision.reasons == {
        1: "JobHeldUser",
        2: "BeginTime",
        3: "Dependency",
        4: "DependencyNeverSatisfied",
    }


def test_array_task_limit() -> None:
    tasks = [job(i, array_job_id=1, array_max_running=2) for i in range(1, 6)]
    decision = schedule(tasks, [node("n1", 8)], now=0.0, running_per_array={1: 1})
    assert [p.job_id for p in decision.placements] == [1]
    assert set(decision.reasons.values()) == {"JobArrayTaskLimit"}


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=6), min_size=0, max_size=60),
    capacities=st.lists(st.tuples(st.integers(1, 8), st.integers(0, 8)), min_size=1, max_size=4),
    pack=st.booleans(),
)
def test_never_overallocates(sizes: list[int], capacities: list[tuple[int, int]], pack: bool) -> None:
    nodes = [node(f"n{i}", cpus, free=min(free, cpus)) for i, (cpus, free) in enumerate(capacities)]
    free_before = {n.name: set(n.free_cpu_ids) for n in nodes}
    decision = schedule(
        [job(i + 1, cpus=c) for i, c in enumerate(sizes)],
        nodes,
        now=0.0,
        policy=PlacementPolicy.PACK if pack else PlacementPolicy.SPREAD,
    )
    taken: dict[str, list[int]] = {}
    for p in decision.placements:
        taken.setdefault(p.node, []).extend(p.cpu_ids)
        assert len(p.cpu_ids) == sizes[p.job_id - 1]
    for name, cpus in taken.items():
        assert len(cpus) == len(set(cpus)), "a CPU was given twice"
        assert set(cpus) <= free_before[name], "a busy CPU was given"
    placed = {p.job_id for p in decision.placements}
    assert placed.isdisjoint(decision.reasons)
    assert placed | set(decision.reasons) == set(range(1, len(sizes) + 1))


PARTS = ("debug", "long", "gone")
QOSES = (None, "normal", "high", "gone")


@settings(max_examples=200, deadline=None)
@given(
    shapes=st.lists(st.tuples(st.integers(1, 4), st.sampled_from(PARTS), st.sampled_from(QOSES)), max_size=40),
    declared=st.sets(st.sampled_from(PARTS)),
    table=st.sets(st.sampled_from(QOSES[1:])),
    strict=st.booleans(),
)
def test_a_job_whose_partition_or_qos_is_missing_never_starts(
    shapes: list[tuple[int, str, str | None]], declared: set[str], table: set[str], strict: bool
) -> None:
    # Every node lists every partition: only the limits can keep such a job off them.
    nodes = [node(f"n{i}", 8, partitions=",".join(PARTS)) for i in range(2)]
    qos = dict.fromkeys({*table, "normal"}, QosLimit()) if table else {}  # a table always has the default
    limits = Limits(qos=qos, declared_partitions=frozenset(declared))
    jobs = [job(i + 1, cpus=c, partition=p, qos=q, time_limit=60.0) for i, (c, p, q) in enumerate(shapes)]
    decision = schedule(jobs, nodes, now=0.0, limits=limits, usage={},
                        backfill=Backfill(depth=0, enabled=False) if strict else Backfill())
    placed = {p.job_id for p in decision.placements}
    valid: set[int] = set()
    for j in jobs:
        if j.partition not in declared:
            assert j.id not in placed and decision.reasons[j.id] == "InvalidPartition"
        elif qos and (j.qos or "normal") not in qos:
            assert j.id not in placed and decision.reasons[j.id] == "InvalidQOS"
        else:
            valid.add(j.id)
    # They hold nothing back, even in strict order: when the others fit on one node, all start.
    if sum(j.cpus for j in jobs if j.id in valid) <= 8:
        assert placed == valid
