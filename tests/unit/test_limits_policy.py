"""Partition and QOS limits in the pure policy: each of Slurm's reasons, decided from the limits
and the running usage given as data."""

from __future__ import annotations

from conductor.scheduler.limits import Limits, PartitionLimit, QosLimit, Usage
from conductor.scheduler.policy import Backfill, NodeView, PendingJob, schedule

NOW = 1000.0


def node(cpus: int = 8, memory: int = 64_000) -> NodeView:
    return NodeView("n1", tuple(range(cpus)), list(range(cpus)), memory, memory, frozenset({"debug", "long"}))


def job(job_id: int, cpus: int = 1, user: str = "ann", qos: str | None = None, limit: float | None = 60.0,
        partition: str = "debug", memory: int = 0) -> PendingJob:
    return PendingJob(id=job_id, cpus=cpus, submit_time=float(job_id), time_limit=limit, user=user, qos=qos,
                      partition=partition, memory_mb=memory)


def run(pending: list[PendingJob], limits: Limits, usage: dict[tuple[str, str | None], Usage] | None = None,
        backfill: Backfill | None = None) -> tuple[list[int], dict[int, str]]:
    decision = schedule(pending, [node()], NOW, limits=limits, usage=usage or {},
                        backfill=backfill or Backfill())
    return [p.job_id for p in decision.placements], decision.reasons


def qos(**limits: object) -> Limits:
    return Limits(qos={"normal": QosLimit(**limits)})  # type: ignore[arg-type]


def test_max_jobs_per_user_counts_running_jobs_and_those_started_in_the_pass() -> None:
    placed, reasons = run([job(1), job(2), job(3, user="bob"), job(4)], qos(max_jobs_per_user=2),
                          {("ann", None): Usage(jobs=1, cpus=1)})
    assert placed == [1, 3]
    assert reasons == {2: "QOSMaxJobsPerUserLimit", 4: "QOSMaxJobsPerUserLimit"}


def test_max_cpus_per_user() -> None:
    placed, reasons = run([job(1, cpus=3), job(2, cpus=2), job(3, cpus=1)], qos(max_cpus_per_user=4))
    assert placed == [1, 3]
    assert reasons == {2: "QOSMaxCpuPerUserLimit"}


def test_max_memory_per_user_and_group_limits() -> None:
    _, reasons = run([job(1, memory=600), job(2, memory=600)], qos(max_memory_per_user=1000))
    assert reasons == {2: "QOSMaxMemoryPerUser"}
    placed, reasons = run([job(1, cpus=2), job(2, cpus=2, user="bob")], qos(grp_cpus=5),
                          {("carl", "normal"): Usage(jobs=1, cpus=2)})
    assert (placed, reasons) == ([1], {2: "QOSGrpCpuLimit"})


def test_max_wall_and_partition_time_limit_and_unlimited_jobs() -> None:
    limits = Limits(partitions={"debug": PartitionLimit(max_time=600)}, qos={"normal": QosLimit(max_wall=300)})
    placed, reasons = run([job(1, limit=900), job(2, limit=400), job(3, limit=None, partition="long"), job(4, limit=60)],
                          limits)
    assert placed == [4]
    assert reasons == {1: "PartitionTimeLimit", 2: "QOSMaxWallDurationPerJobLimit", 3: "QOSMaxWallDurationPerJobLimit"}


def test_submit_limit_lowered_under_existing_jobs() -> None:
    # Two running, three pending, the limit now 3: the last two pending exceed it.
    placed, reasons = run([job(1), job(2), job(3)], qos(max_submit_jobs_per_user=3),
                          {("ann", "normal"): Usage(jobs=2, cpus=2)})
    assert placed == [1]
    assert reasons == {2: "QOSMaxSubmitJobPerUserLimit", 3: "QOSMaxSubmitJobPerUserLimit"}


def test_partition_states() -> None:
    limits = Limits(partitions={"debug": PartitionLimit(state="DOWN"), "long": PartitionLimit(state="DRAIN")})
    placed, reasons = run([job(1), job(2, partition="long")], limits)
    assert placed == [2]  # DRAIN refuses new submissions, but what waits still runs
    assert reasons == {1: "PartitionDown"}
    _, reasons = run([job(1)], Limits(partitions={"debug": PartitionLimit(state="INACTIVE")}))
    assert reasons == {1: "PartitionInactive"}


def test_a_job_held_by_a_limit_keeps_nobody_waiting_and_reserves_nothing() -> None:
    # Job 1 (whole node) would reserve the node and keep job 2 behind it; held by its QOS
    # limit, it does neither, even in strict priority order.
    limits = Limits(qos={"normal": QosLimit(), "small": QosLimit(max_cpus_per_user=4)})
    for backfill in (Backfill(), Backfill(depth=0, enabled=False)):
        decision = schedule([job(1, cpus=8, qos="small"), job(2, limit=10_000)], [node()], NOW, limits=limits,
                            usage={}, backfill=backfill)
        assert [p.job_id for p in decision.placements] == [2]
        assert decision.reasons == {1: "QOSMaxCpuPerUserLimit"}
        assert decision.commitments.reservations == []


def test_other_reasons_come_first_and_jobs_past_the_test_budget_get_limit_reasons() -> None:
    limits = qos(max_jobs_per_user=0)
    held = job(1)
    held.held = True
    _, reasons = run([held], limits)
    assert reasons == {1: "JobHeldUser"}
    # Budget 1: job 2 (too big to start) is tested; job 3, past it, still gets its limit's reason.
    limits = Limits(qos={"normal": QosLimit(), "none": QosLimit(max_jobs_per_user=0)})
    placed, reasons = run([job(2, cpus=9), job(3, qos="none"), job(4)], limits, backfill=Backfill(max_job_test=1))
    assert reasons == {2: "Resources", 3: "QOSMaxJobsPerUserLimit"}
    assert placed == [4]  # past the budget a job is still offered the nodes as they are


def test_without_limits_nothing_changes() -> None:
    pending = [job(1), job(2)]
    assert schedule(pending, [node()], NOW).placements == schedule(pending, [node()], NOW, limits=None).placements


def test_a_higher_partition_tier_is_scheduled_first_whatever_the_priority() -> None:
    low = PendingJob(id=1, cpus=8, submit_time=1.0, time_limit=60, priority=50_000, partition="debug")
    high = PendingJob(id=2, cpus=8, submit_time=2.0, time_limit=60, priority=10, partition="long", tier=2)
    decision = schedule([low, high], [node()], NOW, limits=None)
    assert [p.job_id for p in decision.placements] == [2]
    assert decision.reasons == {1: "Resources"}


def test_max_cpus_per_node_caps_what_a_partitions_jobs_hold_together_on_a_node() -> None:
    limits = Limits(partitions={"debug": PartitionLimit(max_cpus_per_node=5)})
    # Two 2-CPU jobs of debug fit (4 of 5); a third would hold 6: it waits though 4 CPUs are free.
    # A job of another partition uses them.
    placed, reasons = run([job(1, cpus=2), job(2, cpus=2), job(3, cpus=2), job(4, cpus=3, partition="long")], limits)
    assert placed == [1, 2, 4]
    assert reasons[3] == "Resources"
    # What running jobs of the partition hold counts (the store gives it per node).
    busy = node()
    busy.partition_cpus = {"debug": 4}
    busy.free_cpu_ids = busy.free_cpu_ids[4:]
    decision = schedule([job(5, cpus=1), job(6, cpus=2)], [busy], NOW, limits=limits, usage={})
    assert [p.job_id for p in decision.placements] == [5]


# ---- what a reload removed ----------------------------------------------------------------------


def test_a_job_whose_partition_a_reload_removed_waits_with_invalid_partition() -> None:
    # The file now declares only `long`; the node still lists `debug` (say, a worker's own list).
    limits = Limits(declared_partitions=frozenset({"long"}))
    placed, reasons = run([job(1), job(2, partition="long")], limits)
    assert placed == [2]
    assert reasons == {1: "InvalidPartition"}
    # A state `scontrol update` left for the removed partition does not bring it back.
    limits = Limits(partitions={"debug": PartitionLimit(state="DOWN")}, declared_partitions=frozenset({"long"}))
    _, reasons = run([job(1)], limits)
    assert reasons == {1: "InvalidPartition"}


def test_a_job_whose_partition_is_missing_reserves_nothing_and_keeps_nobody_waiting() -> None:
    limits = Limits(declared_partitions=frozenset({"long"}))
    for backfill in (Backfill(), Backfill(depth=0, enabled=False)):
        decision = schedule([job(1, cpus=8), job(2, partition="long", limit=10_000)], [node()], NOW, limits=limits,
                            usage={}, backfill=backfill)
        assert [p.job_id for p in decision.placements] == [2]
        assert decision.reasons == {1: "InvalidPartition"}
        assert decision.commitments.reservations == [] and decision.commitments.waiting == set()
        assert decision.estimates == {}


def test_a_job_whose_partition_comes_back_is_scheduled_as_before() -> None:
    limits = Limits(declared_partitions=frozenset({"debug", "long"}))
    fits = job(1, cpus=2)
    fits.reason = "InvalidPartition"
    too_big = job(2, cpus=9)
    too_big.reason = "InvalidPartition"
    placed, reasons = run([fits, too_big], limits)
    assert placed == [1]
    assert reasons == {2: "Resources"}  # its reason changes, so the loop writes it


def test_without_declared_partitions_any_partition_name_goes() -> None:
    # No partitions in the file: the workers' partitions are the cluster's.
    placed, reasons = run([job(1), job(2, partition="long")], Limits())
    assert (placed, reasons) == ([1, 2], {})
    # A state set for one partition is not the list of the partitions there are.
    placed, reasons = run([job(1), job(2, partition="long")], Limits(partitions={"long": PartitionLimit(state="DOWN")}))
    assert (placed, reasons) == ([1], {2: "PartitionDown"})


def test_a_job_whose_qos_was_removed_waits_with_invalid_qos_until_it_comes_back() -> None:
    before = Limits(qos={"normal": QosLimit(), "gold": QosLimit()})
    after = Limits(qos={"normal": QosLimit()})
    pending = [job(1, qos="gold"), job(2), job(3, qos="normal")]
    placed, reasons = run(pending, after)
    assert placed == [2, 3]  # a job without a QOS has the default one
    assert reasons == {1: "InvalidQOS"}
    gold = job(1, qos="gold")
    gold.reason = "InvalidQOS"
    placed, reasons = run([gold], before)
    assert placed == [1]
    # The job's QOS' limits are not judged while it is missing; its partition's state neither.
    down = Limits(partitions={"debug": PartitionLimit(state="DOWN")}, qos={"normal": QosLimit(max_jobs_per_user=0)})
    _, reasons = run([job(1, qos="gold"), job(2, qos="normal")], down)
    assert reasons == {1: "InvalidQOS", 2: "PartitionDown"}


def test_without_a_qos_table_any_qos_goes_and_the_default_qos_is_always_there() -> None:
    # No file and no sacctmgr QOS: --qos is stored as given, and the table is empty.
    placed, reasons = run([job(1, qos="anything"), job(2)], Limits(partitions={"debug": PartitionLimit()}))
    assert (placed, reasons) == ([1, 2], {})
    # DefaultQOS changed by a reload: a job without a QOS follows it; one stored with the old
    # name, now gone, waits.
    limits = Limits(qos={"high": QosLimit()}, default_qos="high")
    placed, reasons = run([job(1), job(2, qos="normal")], limits)
    assert (placed, reasons) == ([1], {2: "InvalidQOS"})


def test_other_reasons_come_before_a_missing_partition_or_qos() -> None:
    limits = Limits(qos={"normal": QosLimit()}, declared_partitions=frozenset({"long"}))
    held = job(1)
    held.held = True
    gone = job(2, qos="gold", partition="long")
    _, reasons = run([held, gone], limits)
    assert reasons == {1: "JobHeldUser", 2: "InvalidQOS"}
