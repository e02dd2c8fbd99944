"""`conductor explain`'s sentences, from a forecast made by the scheduler's own policy."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from worker_fakes import job_record

from conductor.domain.job import Job, JobSummary
from conductor.scheduler.limits import Limits, QosLimit, Usage
from conductor.scheduler.policy import DependencyStatus, NodeView, PendingJob, Release
from conductor.services.forecast import Forecaster, explain_waiting

NOW = 1_000_000.0


class PlanStore:
    """The store's reads a forecast makes, over fixed lists."""

    def __init__(self, pending: list[PendingJob], releases: list[Release], cpus: int = 4,
                 running: Sequence[Job] = (), per_array: Mapping[int, int] | None = None) -> None:
        self.pending = pending
        self.releases = releases
        self.cpus = cpus
        self.running = list(running)
        self.per_array = dict(per_array or {})

    def pending_snapshot(self) -> tuple[int, list[PendingJob]]:
        return 0, list(self.pending)

    def node_views(self, *, live_after: datetime | None = None) -> list[NodeView]:
        used = sum(r.cpus for r in self.releases)
        return [
            NodeView("n1", tuple(range(self.cpus)), list(range(used, self.cpus)), 1000, 1000, frozenset({"debug"}),
                     len(self.releases), releases=list(self.releases))
        ]

    def running_per_array(self) -> dict[int, int]:
        return dict(self.per_array)

    def list_jobs(
        self, *, states: Sequence[str] | None = None, users: Sequence[str] | None = None,
        array_job_ids: Sequence[int] | None = None, limit: int = 1000, count: bool = True,
        columns: Collection[str] | None = None,
    ) -> tuple[list[Job], int]:
        found = [
            j for j in self.running
            if (not states or j.state in states) and (not users or j.user_name in users)
            and (not array_job_ids or j.array_job_id in array_job_ids)
        ]
        return found[:limit], len(found) if count else -1

    def next_job_id(self) -> int:
        return 100

    def job_summaries(self, ids: Iterable[int]) -> dict[int, JobSummary]:
        return {}


def pending(job_id: int, cpus: int, limit: float | None) -> PendingJob:
    return PendingJob(id=job_id, cpus=cpus, submit_time=float(job_id), time_limit=limit)


def running(job_id: int, cpus: int, started: float, limit: int, **fields: object) -> Job:
    """A running job of alice's under QOS one, as the store lists it."""
    values: dict[str, object] = {"user_name": "alice", "qos": "one"}
    values.update(fields)
    return job_record(job_id, state="RUNNING", start_time=datetime.fromtimestamp(started, UTC), time_limit=limit,
                      allocated_cpus=cpus, allocated_memory_mb=0, node_list="n1", **values)


def alices(job_id: int, cpus: int = 1, limit: float = 600.0) -> PendingJob:
    return PendingJob(id=job_id, cpus=cpus, submit_time=float(job_id), time_limit=limit, user="alice", qos="one")


def with_limits(store: PlanStore, qos: QosLimit, usage: dict[tuple[str, str | None], Usage]) -> Forecaster:
    limits = Limits(qos={"one": qos})
    return Forecaster(store, clock=lambda: NOW, limits=lambda: (limits, usage, None))


def test_a_job_behind_a_reservation_is_told_what_is_ahead_and_what_would_help() -> None:
    store = PlanStore([pending(1, 4, 600.0), pending(2, 1, 3600.0)], [Release(50, 3, 0, NOW + 120)])
    forecaster = Forecaster(store, clock=lambda: NOW)
    job, forecast = forecaster.forecast_pending(2)
    assert forecast is not None and forecast.start == NOW + 720 and not forecast.reserved
    lines = explain_waiting(job_record(2, reason="Priority"), job, forecast, {})
    text = "\n".join(lines)
    assert lines[0] == "Job 2 is PENDING, reason Priority."
    assert "Free CPUs now in partition debug: n1 1/4." in text
    assert "1 job(s) of higher priority wait ahead of it." in text
    assert "Job 1 (higher priority) has 4 CPU(s) of n1 reserved from" in text
    assert "expected start" in text and "(in 12m 0s)" in text
    assert "It starts after the reservation(s) ahead of it on n1 end: job 1." in text
    assert "With a time limit (--time) of at most 2m 0s it would start now on n1, before the reservation there." in text


def test_the_reserved_job_is_told_which_running_jobs_it_waits_for() -> None:
    store = PlanStore([pending(1, 4, 600.0)], [Release(50, 3, 0, NOW + 120), Release(51, 1, 0, NOW + 60)])
    job, forecast = Forecaster(store, clock=lambda: NOW).forecast_pending(1)
    assert forecast is not None and forecast.reserved
    text = "\n".join(explain_waiting(job_record(1, reason="Resources"), job, forecast, {}))
    assert "(resources are reserved for it)" in text
    assert "time limits of the jobs running on n1: 51 at" in text and ", 50 at" in text


def test_unlimited_jobs_make_the_start_unforeseeable_and_say_so() -> None:
    store = PlanStore([pending(1, 4, 600.0)], [Release(50, 3, 0, math.inf)])
    job, forecast = Forecaster(store, clock=lambda: NOW).forecast_pending(1)
    assert forecast is not None and forecast.start == math.inf
    text = "\n".join(explain_waiting(job_record(1, reason="Resources"), job, forecast, {}))
    assert "no start can be foreseen" in text


def test_held_and_dependent_jobs_say_so_and_name_the_dependency_state() -> None:
    summary = JobSummary(7, "RUNNING", None, None, None, None, None, "root", "x")
    record = job_record(3, reason="Dependency", dependency="afterok:7", held=True)
    text = "\n".join(explain_waiting(record, None, None, {7: summary}))
    assert "It is held: it will not start until released (`scontrol release 3`)." in text
    assert "afterok:7 - job 7 is RUNNING." in text


def test_dependencies_on_arrays_name_what_the_scheduler_weighs() -> None:
    """An array's id is the whole array (a task still running makes it RUNNING), a task ref
    its task, and aftercorr the task of the job's own index, else what the ref names."""
    tasks = {
        7: JobSummary(7, "COMPLETED", None, None, 7, 1, "0:0", "root", "x"),
        8: JobSummary(8, "FAILED", None, None, 7, 3, "1:0", "root", "x"),
        9: JobSummary(9, "RUNNING", None, None, 7, 5, None, "root", "x"),
    }
    record = job_record(3, reason="Dependency", dependency="afterok:7,afterany:7_3")
    text = "\n".join(explain_waiting(record, None, None, tasks))
    assert "afterok:7 - array 7 is RUNNING." in text and "afterany:7_3 - job 7_3 is FAILED." in text, text
    task = job_record(4, reason="Dependency", dependency="aftercorr:7", array_job_id=4, array_task_id=3)
    assert "aftercorr:7 - its task 7_3 is FAILED." in "\n".join(explain_waiting(task, None, None, tasks))
    other = job_record(5, reason="Dependency", dependency="aftercorr:7", array_job_id=4, array_task_id=2)
    assert "aftercorr:7 - array 7 is RUNNING." in "\n".join(explain_waiting(other, None, None, tasks))


def test_a_running_job_is_not_waiting() -> None:
    record = job_record(4, state="RUNNING", node_list="n1", start_time=datetime(2026, 1, 1, tzinfo=UTC))
    assert explain_waiting(record, None, None, {}) == ["Job 4 is RUNNING on n1: it is not waiting."]


def test_a_held_job_is_told_what_it_would_face_once_released() -> None:
    held = PendingJob(id=1, cpus=2, submit_time=1.0, time_limit=60.0, held=True)
    store = PlanStore([held], [Release(50, 3, 0, NOW + 120)])
    job, forecast = Forecaster(store, clock=lambda: NOW).forecast_pending(1)
    lines = explain_waiting(job_record(1, reason="JobHeldUser", held=True), job, forecast, {})
    assert lines[1].startswith("It is held")
    assert lines[2] == "Once free to start, as the queue stands now:"
    assert lines[3] == "  Free CPUs now in partition debug: n1 1/4."
    assert lines[4].startswith("  It needs 2 CPUs on one node; expected start") and "(in 2m 0s)" in lines[4]


# ------------------------------------------------ what keeps a job waiting whatever the nodes
def test_a_dependency_that_can_never_be_met_is_never_told_the_next_pass_starts_it() -> None:
    never = PendingJob(id=3, cpus=1, submit_time=3.0, time_limit=60.0, dependency=DependencyStatus.NEVER)
    job, forecast = Forecaster(PlanStore([never], []), clock=lambda: NOW).forecast_pending(3)
    record = job_record(3, reason="DependencyNeverSatisfied", dependency="afterok:7")
    failed = JobSummary(7, "FAILED", None, None, None, None, None, "root", "x")
    lines = explain_waiting(record, job, forecast, {7: failed})
    text = "\n".join(lines)
    assert "next pass" not in text and "fits now" not in text, text
    assert lines[1] == "Its dependency afterok:7 can never be satisfied (all of):"
    assert lines[2] == "  afterok:7 - job 7 is FAILED."
    # scontrol update changes no dependency here (TimeLimit, Priority, Nice, JobName, Comment).
    assert lines[3] == ("It will never start by itself: cancel it (`scancel 3`) and submit it again with a dependency "
                        "that can be met (`scontrol update` cannot change a dependency here).")
    assert len(lines) == 4


@pytest.mark.parametrize("reason", ["JobHeldUser", "Dependency", "BeginTime"])
def test_a_job_held_by_a_hold_a_dependency_or_begin_is_not_told_the_next_pass_starts_it(reason: str) -> None:
    job = PendingJob(id=1, cpus=1, submit_time=1.0, time_limit=60.0, held=reason == "JobHeldUser",
                     dependency=DependencyStatus.WAITING if reason == "Dependency" else DependencyStatus.SATISFIED,
                     begin_time=NOW + 3600 if reason == "BeginTime" else None)
    found, forecast = Forecaster(PlanStore([job], []), clock=lambda: NOW).forecast_pending(1)
    record = job_record(1, reason=reason, held=job.held, dependency="afterok:7" if reason == "Dependency" else None,
                        begin_time=datetime.now(UTC) + timedelta(hours=1) if reason == "BeginTime" else None)
    text = "\n".join(explain_waiting(record, found, forecast, {}))
    assert "next pass starts it" not in text, text
    assert "Once free to start, as the queue stands now:\n  It would fit now (1 CPU free on n1)" in text, text


def test_a_job_held_by_max_jobs_per_user_names_the_limit_and_when_it_lets_go() -> None:
    # The reviewer's case: QOS one allows 1 running job per user, alice runs one limited to a
    # minute, a CPU is free. The node can hold it and the running job has a time limit.
    store = PlanStore([alices(1)], [Release(50, 1, 0, NOW + 60)], running=[running(50, 1, NOW, 60)])
    forecaster = with_limits(store, QosLimit(max_jobs_per_user=1), {("alice", "one"): Usage(1, 1, 0)})
    job, forecast = forecaster.forecast_pending(1)
    record = job_record(1, reason="QOSMaxJobsPerUserLimit", user_name="alice", qos="one")
    text = "\n".join(explain_waiting(record, job, forecast, {}))
    assert "can ever hold it" not in text and "without a time limit" not in text, text
    assert forecast is not None and forecast.start == math.inf and forecast.fit_start == NOW
    assert forecast.counted == [(50, NOW + 60)] and forecast.hold_ends == NOW + 60
    assert "It waits for a limit (QOSMaxJobsPerUserLimit), not for a node." in text, text
    assert "As far as the nodes go it would fit now (1 CPU free on n1)." in text
    assert "The jobs that count against it end by their time limits: 50 at " in text and "(in 1m 0s)." in text
    assert "(in 1m 0s) at the latest, as the queue stands now" in text


def test_a_job_ahead_that_takes_the_users_last_place_holds_it_back() -> None:
    # Nothing of alice's runs, but the pass starts job 1 first: job 2 is then over the limit.
    store = PlanStore([alices(1), alices(2, limit=60.0)], [])
    job, forecast = with_limits(store, QosLimit(max_jobs_per_user=1), {}).forecast_pending(2)
    text = "\n".join(explain_waiting(job_record(2, reason="Priority", user_name="alice", qos="one"), job, forecast, {}))
    assert "It fits now" not in text and "next pass starts it" not in text, text
    assert forecast is not None and forecast.reason == "QOSMaxJobsPerUserLimit"
    assert "It waits for a limit (QOSMaxJobsPerUserLimit), not for a node." in text
    assert "end by their time limits: 1 at " in text and "(in 10m 0s) at the latest" in text
    assert "Of these, the next pass starts ahead of it: 1." in text


def test_jobs_ahead_waiting_for_the_same_cpu_limit_go_first() -> None:
    # 2 CPUs per user: alice's two running jobs hold them; job 1 ahead waits for one, job 2 too.
    store = PlanStore([alices(1), alices(2)], [Release(50, 1, 0, NOW + 60), Release(51, 1, 0, NOW + 120)],
                      running=[running(50, 1, NOW, 60), running(51, 1, NOW, 120)])
    forecaster = with_limits(store, QosLimit(max_cpus_per_user=2), {("alice", "one"): Usage(2, 2, 0)})
    job, forecast = forecaster.forecast_pending(2)
    text = "\n".join(explain_waiting(job_record(2, reason="QOSMaxCpuPerUserLimit"), job, forecast, {}))
    assert "can ever hold it" not in text, text
    assert "1 job(s) ahead of it wait too and would count against it: they take what the limit frees first." in text
    assert "(in 2m 0s) at the latest" in text
    assert forecast is not None and forecast.queued == 1 and forecast.hold_ends == NOW + 120


def test_a_limit_whose_jobs_cannot_be_named_still_is_not_blamed_on_the_nodes() -> None:
    # GrpTRES counts every user's jobs: no time is told, but no false sentence either.
    store = PlanStore([alices(1)], [Release(50, 1, 0, NOW + 60)], running=[running(50, 1, NOW, 60, user_name="bob")])
    forecaster = with_limits(store, QosLimit(grp_cpus=1), {("bob", "one"): Usage(1, 1, 0)})
    job, forecast = forecaster.forecast_pending(1)
    text = "\n".join(explain_waiting(job_record(1, reason="QOSGrpCpuLimit"), job, forecast, {}))
    assert "can ever hold it" not in text and "It fits now" not in text and "at the latest" not in text, text
    assert "It waits for a limit (QOSGrpCpuLimit), not for a node." in text


def test_an_array_at_its_task_limit_waits_for_its_running_task_not_for_a_node() -> None:
    task = PendingJob(id=12, cpus=1, submit_time=12.0, time_limit=60.0, array_job_id=10, array_max_running=1)
    store = PlanStore([task], [Release(11, 1, 0, NOW + 90)], per_array={10: 1},
                      running=[running(11, 1, NOW - 30, 120, array_job_id=10)])
    job, forecast = Forecaster(store, clock=lambda: NOW).forecast_pending(12)
    text = "\n".join(explain_waiting(job_record(12, reason="JobArrayTaskLimit"), job, forecast, {}))
    assert "can ever hold it" not in text, text
    assert "It waits for its array's limit on running tasks (JobArrayTaskLimit), not for a node." in text
    assert "As far as the nodes go it would fit now (1 CPU free on n1)." in text
    assert "end by their time limits: 11 at " in text and "(in 1m 30s) at the latest" in text


def test_test_only_names_the_limit_a_job_would_wait_for_not_the_nodes() -> None:
    from conductor.api.fastpath import test_only_answer
    from conductor.services.forecast import Forecast
    from conductor.services.jobs import WouldSubmit

    forecast = Forecast(math.inf, None, "QOSMaxJobsPerUserLimit", False, 1, 0, [], [], [], NOW,
                        fit_start=NOW, fit_node="n1")
    answer = test_only_answer(WouldSubmit(1, forecast, job_id=9, partition="debug"))
    assert answer["message"] == ("Job 9 would be accepted; it would wait with reason QOSMaxJobsPerUserLimit (a limit "
                                 "on what runs at once) until running jobs that count against it end")
    assert answer["expected_start_time"] is None
