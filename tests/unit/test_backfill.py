"""Backfill with reservations: the pure policy, called directly."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from conductor.scheduler.policy import (
    EASY,
    FIFO,
    Backfill,
    Commitments,
    Decision,
    NodeView,
    PendingJob,
    Release,
    Reservation,
    order_key,
    schedule,
)
from conductor.scheduler.timeline import overdue_floor

NOW = 1000.0


def busy_node(name: str, cpus: int, running: list[tuple[int, int, float]], memory: int = 64_000) -> NodeView:
    """A node whose running jobs are (job id, CPUs, end time); their CPUs are the lowest ids."""
    used = sum(c for _, c, _ in running)
    return NodeView(
        name=name,
        cpu_ids=tuple(range(cpus)),
        free_cpu_ids=list(range(used, cpus)),
        memory_mb=memory,
        free_memory_mb=memory,
        partitions=frozenset({"debug"}),
        running_jobs=len(running),
        releases=[Release(job_id, c, 0, end) for job_id, c, end in running],
    )


def job(job_id: int, cpus: int = 1, limit: float | None = 60.0, **kw: object) -> PendingJob:
    return PendingJob(id=job_id, cpus=cpus, submit_time=float(job_id), time_limit=limit, **kw)  # type: ignore[arg-type]


def placed(decision: Decision) -> list[int]:
    return [p.job_id for p in decision.placements]


def test_whole_node_job_gets_a_reservation_short_job_backfills_long_one_waits() -> None:
    # 4 CPUs: two running jobs end at +100 and +300; the whole-node job can start at +300.
    node = busy_node("n1", 4, [(101, 2, NOW + 100), (102, 1, NOW + 300)])
    pending = [job(1, cpus=4, limit=600), job(2, cpus=1, limit=250), job(3, cpus=1, limit=400)]
    decision = schedule(pending, [node], NOW)
    assert placed(decision) == [2]  # ends at +250, before the reservation at +300
    assert decision.reasons == {1: "Resources", 3: "Priority"}
    assert decision.estimates[1].start == NOW + 300 and decision.estimates[1].reserved
    assert decision.estimates[1].node == "n1"
    [reservation] = decision.commitments.reservations
    assert (reservation.job_id, reservation.start, reservation.end, reservation.cpus) == (1, NOW + 300, NOW + 900, 4)
    # The long job is planned after the reservation, on what it leaves.
    assert decision.estimates[3].start == NOW + 900 and not decision.estimates[3].reserved


def test_backfill_may_use_resources_the_reservation_does_not_need() -> None:
    # 8 CPUs, 6 busy until +100; a 4-CPU job reserves 4 of the 8 at +100: 2 stay free for ever.
    node = busy_node("n1", 8, [(101, 6, NOW + 100)])
    decision = schedule([job(1, cpus=4), job(2, cpus=2, limit=10_000)], [node], NOW)
    assert placed(decision) == [2]
    assert decision.reasons == {1: "Resources"}


def test_no_reservation_means_greedy_first_fit() -> None:
    node = busy_node("n1", 4, [(101, 2, NOW + 100)])
    decision = schedule([job(1, cpus=4), job(2, cpus=1, limit=10_000)], [node], NOW, backfill=Backfill(depth=0))
    assert placed(decision) == [2]
    assert decision.commitments.reservations == []


def test_fifo_starts_nothing_behind_a_waiting_job() -> None:
    node = busy_node("n1", 4, [(101, 2, NOW + 100)])
    decision = schedule([job(1, cpus=4), job(2, cpus=1, limit=10)], [node], NOW, backfill=FIFO)
    assert placed(decision) == []
    assert decision.reasons == {1: "Resources", 2: "Priority"}


def test_unlimited_running_jobs_cannot_be_backfilled_around() -> None:
    # The CPUs of an UNLIMITED job never come back: no start can be foreseen, nothing is kept.
    node = busy_node("n1", 4, [(101, 2, math.inf)])
    decision = schedule([job(1, cpus=4), job(2, cpus=1)], [node], NOW)
    assert decision.commitments.reservations == []
    assert decision.estimates[1].start == math.inf
    assert placed(decision) == [2]
    assert decision.estimate_changes == {}  # nothing foreseeable: no estimate to write


def test_an_unlimited_pending_job_cannot_backfill_into_a_reservation() -> None:
    node = busy_node("n1", 4, [(101, 2, NOW + 100)])
    decision = schedule([job(1, cpus=4), job(2, cpus=1, limit=None)], [node], NOW)
    assert placed(decision) == []
    assert decision.reasons == {1: "Resources", 2: "Priority"}


def test_conservative_depth_reserves_for_several_jobs() -> None:
    node = busy_node("n1", 4, [(101, 4, NOW + 100)])
    pending = [job(1, cpus=4, limit=100), job(2, cpus=4, limit=100), job(3, cpus=2, limit=50)]
    easy = schedule(pending, [node], NOW, backfill=EASY)
    assert [r.job_id for r in easy.commitments.reservations] == [1]
    conservative = schedule(
        pending, [busy_node("n1", 4, [(101, 4, NOW + 100)])], NOW, backfill=Backfill(depth=10)
    )
    assert [(r.job_id, r.start) for r in conservative.commitments.reservations] == [
        (1, NOW + 100),
        (2, NOW + 200),
        (3, NOW + 300),
    ]
    assert conservative.reasons == {1: "Resources", 2: "Priority", 3: "Priority"}


def test_max_job_test_bounds_the_jobs_tested() -> None:
    node = busy_node("n1", 4, [(101, 4, NOW + 100)])
    pending = [job(i, cpus=2) for i in range(1, 11)]
    decision = schedule(pending, [node], NOW, backfill=Backfill(depth=1, max_job_test=3))
    assert sorted(decision.estimates) == [1, 2, 3]
    assert decision.reasons[1] == "Resources"
    assert {decision.reasons[i] for i in range(2, 11)} == {"Priority"}


def test_a_spent_test_budget_starves_no_idle_node_and_no_short_job() -> None:
    # 500 jobs that cannot run (their partition has no node up) spend the budget; an idle node
    # of another partition still takes the job meant for it.
    idle = busy_node("b1", 4, [])
    idle.partitions = frozenset({"b"})
    stuck = [job(i, cpus=1, partition="a") for i in range(1, 501)]
    decision = schedule([*stuck, job(501, cpus=1, partition="b")], [idle], NOW, backfill=Backfill(max_job_test=500))
    assert placed(decision) == [501]
    # In one partition: short jobs behind a spent budget of big blocked ones still backfill,
    # a long one still does not break the reservation.
    node = busy_node("n1", 4, [(101, 3, NOW + 100)])
    big = [job(i, cpus=4, limit=600) for i in range(1, 11)]
    decision = schedule(
        [*big, job(11, cpus=1, limit=50), job(12, cpus=1, limit=5000)], [node], NOW, backfill=Backfill(max_job_test=3)
    )
    assert placed(decision) == [11]
    assert decision.reasons[12] == "Priority" and 12 not in decision.estimates


def test_estimates_are_written_only_when_they_change() -> None:
    node = lambda: busy_node("n1", 4, [(101, 4, NOW + 100)])
    first = schedule([job(1, cpus=4)], [node()], NOW)
    assert first.estimate_changes[1] is not None and first.estimate_changes[1].start == NOW + 100
    again = job(1, cpus=4, reason="Resources", expected_start=NOW + 100, expected_node="n1")
    assert schedule([again], [node()], NOW + 5).estimate_changes == {}
    # It started elsewhere meanwhile or was held: its estimate goes.
    held = job(1, cpus=4, held=True, expected_start=NOW + 100, expected_node="n1")
    assert schedule([held], [node()], NOW).estimate_changes == {1: None}


def test_a_running_job_past_its_limit_is_planned_to_end_soon_not_now() -> None:
    node = busy_node("n1", 4, [(101, 4, NOW - 10)])
    decision = schedule([job(1, cpus=4), job(2, cpus=1, limit=5)], [node], NOW)
    # Soon, on a 30-second step: the estimate holds still from pass to pass while the kill runs.
    assert NOW + 1 <= decision.estimates[1].start <= NOW + 31 and decision.estimates[1].start % 30 == 0
    assert placed(decision) == []
    later = schedule([job(1, cpus=4, expected_start=decision.estimates[1].start, expected_node="n1")], [node], NOW + 2)
    assert later.estimate_changes == {}


def test_exclusive_jobs_plan_for_the_whole_node() -> None:
    node = busy_node("n1", 4, [(101, 1, NOW + 100)])
    decision = schedule([job(1, cpus=1, exclusive=True), job(2, cpus=1, limit=500)], [node], NOW)
    assert decision.estimates[1].start == NOW + 100
    assert placed(decision) == []  # would hold a CPU of the node the exclusive job is kept


def test_a_pass_over_new_jobs_respects_the_reservations_ahead() -> None:
    node = lambda: busy_node("n1", 4, [(101, 2, NOW + 100)])
    full = schedule([job(1, cpus=4)], [node()], NOW)
    ahead = full.commitments
    assert ahead.waiting == {"debug"}
    later = schedule([job(2, cpus=1, limit=1000)], [node()], NOW, ahead=ahead)
    assert placed(later) == [] and later.reasons == {2: "Priority"}
    short = schedule([job(3, cpus=1, limit=50)], [node()], NOW, ahead=ahead)
    assert placed(short) == [3]


def test_commitments_horizon_is_the_last_reserved_job() -> None:
    c = Commitments()
    assert c.horizon() is None
    c.reservations.append(Reservation(5, "n1", 1.0, 2.0, 1, 0, order_key(job(5))))
    assert c.horizon() == order_key(job(5))


# --------------------------------------------------------------------- properties
def _demand_ok(nodes: list[NodeView], decision: Decision, pending: dict[int, PendingJob]) -> None:
    """Independent check of the plan: at every instant, on every node, the running jobs, the
    jobs placed now and the reservations fit in the node (so no reservation can be delayed)."""
    for node in nodes:
        total = len(node.cpu_ids)
        intervals: list[tuple[float, float, int]] = []
        busy = total - len(node.free_cpu_ids)  # before this pass placed anything
        held_for_ever = busy - sum(r.cpus for r in node.releases)
        intervals.append((NOW, math.inf, held_for_ever))
        for r in node.releases:
            intervals.append((NOW, r.end if r.end >= NOW + 1.0 else overdue_floor(NOW), r.cpus))
        for p in decision.placements:
            if p.node == node.name:
                limit = pending[p.job_id].time_limit
                intervals.append((NOW, NOW + (limit or math.inf), len(p.cpu_ids)))
        for r in decision.commitments.reservations:
            if r.node == node.name:
                intervals.append((r.start, r.end, r.cpus))
        for instant in {start for start, _, _ in intervals}:
            used = sum(c for s, e, c in intervals if s <= instant < e)
            assert used <= total, f"{node.name} over-committed at {instant - NOW:+.0f}s: {used} > {total}"


workloads = st.fixed_dictionaries(
    {
        "nodes": st.lists(
            st.tuples(
                st.integers(1, 8),  # CPUs
                st.lists(st.tuples(st.integers(1, 4), st.sampled_from([10.0, 50.0, 100.0, 300.0, math.inf])), max_size=4),
            ),
            min_size=1,
            max_size=3,
        ),
        "jobs": st.lists(
            st.tuples(
                st.integers(1, 8),  # CPUs
                st.sampled_from([5.0, 20.0, 60.0, 200.0, 1000.0, None]),  # time limit
                st.integers(0, 2),  # priority
                st.booleans(),  # exclusive
            ),
            max_size=25,
        ),
        "depth": st.integers(0, 6),
    }
)


def _build(workload: dict[str, object]) -> tuple[list[NodeView], list[PendingJob]]:
    nodes = []
    next_id = 1000
    for index, (cpus, running) in enumerate(workload["nodes"]):  # type: ignore[arg-type]
        kept: list[tuple[int, int, float]] = []
        used = 0
        for c, end in running:
            if used + c <= cpus:
                kept.append((next_id, c, NOW + end))
                used += c
                next_id += 1
        nodes.append(busy_node(f"n{index}", cpus, kept))
    jobs = [
        PendingJob(id=i + 1, cpus=c, priority=p, submit_time=float(i), time_limit=limit, exclusive=exclusive)
        for i, (c, limit, p, exclusive) in enumerate(workload["jobs"])  # type: ignore[arg-type]
    ]
    return nodes, jobs


@settings(max_examples=300, deadline=None)
@given(workload=workloads)
def test_no_backfilled_job_delays_a_reservation(workload: dict[str, object]) -> None:
    nodes, jobs = _build(workload)
    backfill = Backfill(depth=workload["depth"])  # type: ignore[arg-type]
    decision = schedule(jobs, nodes, NOW, backfill=backfill)
    fresh_nodes, _ = _build(workload)
    _demand_ok(fresh_nodes, decision, {j.id: j for j in jobs})
    # Lower-priority jobs change nothing of a reservation: planning only the jobs up to the
    # reserved one gives it the same start and node.
    ordered = sorted(jobs, key=order_key)
    for r in decision.commitments.reservations:
        prefix = ordered[: [j.id for j in ordered].index(r.job_id) + 1]
        alone = schedule(prefix, _build(workload)[0], NOW, backfill=backfill)
        same = [x for x in alone.commitments.reservations if x.job_id == r.job_id]
        assert same and (same[0].start, same[0].node) == (r.start, r.node)


@settings(max_examples=150, deadline=None)
@given(workload=workloads, split=st.integers(0, 25))
def test_a_pass_over_new_jobs_keeps_the_reservations_of_the_last_full_pass(
    workload: dict[str, object], split: int
) -> None:
    nodes, jobs = _build(workload)
    backfill = Backfill(depth=workload["depth"])  # type: ignore[arg-type]
    ordered = sorted(jobs, key=order_key)
    first, new = ordered[:split], ordered[split:]
    full = schedule(first, nodes, NOW, backfill=backfill)
    # The new jobs run against what the first pass left (its placements now running).
    after, _ = _build(workload)
    pending = {j.id: j for j in jobs}
    for p in full.placements:
        node = next(n for n in after if n.name == p.node)
        node.free_cpu_ids = [c for c in node.free_cpu_ids if c not in p.cpu_ids]
        node.running_jobs += 1
        node.releases.append(Release(p.job_id, len(p.cpu_ids), 0, NOW + (pending[p.job_id].time_limit or math.inf)))
    ahead = Commitments(list(full.commitments.reservations), set(full.commitments.waiting))
    second = schedule(new, after, NOW, backfill=backfill, ahead=ahead)
    combined = Decision(
        placements=full.placements + second.placements,
        commitments=Commitments(full.commitments.reservations + second.commitments.reservations),
    )
    _demand_ok(_build(workload)[0], combined, pending)


def test_timeline_steps_earliest_and_free_until() -> None:
    from conductor.scheduler.timeline import Timeline

    t = Timeline(0.0, 1, 100, 4, [(10.0, 2, 0), (30.0, 1, 0), (math.inf, 0, 0)])
    assert (t.times, t.cpus) == ([0.0, 10.0, 30.0], [1, 3, 4])
    assert t.earliest(3, 0, 5.0) == 10.0 and t.earliest(5, 0, 1.0) == math.inf
    t.take(15.0, 25.0, 3, 0)  # a reservation in the middle
    assert t.earliest(2, 0, 10.0) == 25.0  # [10, 20) would overlap it
    assert t.earliest(1, 0, 10.0) == 0.0
    assert t.free_until(0.0, 1, 0) == 15.0 and t.free_until(0.0, 2, 0) == 0.0
    assert t.fits(0.0, 15.0, 1, 0) and not t.fits(0.0, 15.5, 1, 0)


def test_jobs_past_the_budget_keep_their_blocking_reasons_and_lose_stale_estimates() -> None:
    node = busy_node("n1", 4, [(101, 4, NOW + 100)])
    pending = [
        job(1, cpus=2),
        job(2, cpus=2, expected_start=NOW + 50, expected_node="n1"),
        job(3, held=True),
        job(4, begin_time=NOW + 500),
        job(5, begin_time=NOW - 5),
    ]
    decision = schedule(pending, [node], NOW, backfill=Backfill(depth=1, max_job_test=1))
    assert decision.reasons == {1: "Resources", 2: "Priority", 3: "JobHeldUser", 4: "BeginTime", 5: "Priority"}
    assert decision.estimate_changes[2] is None and sorted(decision.estimates) == [1]
