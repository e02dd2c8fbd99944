"""`conductor explain`'s sentences, from a forecast made by the scheduler's own policy."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime

from worker_fakes import job_record

from conductor.domain.job import JobSummary
from conductor.scheduler.policy import NodeView, PendingJob, Release
from conductor.services.forecast import Forecaster, explain_waiting

NOW = 1_000_000.0


class PlanStore:
    """The store's reads a forecast makes, over fixed lists."""

    def __init__(self, pending: list[PendingJob], releases: list[Release], cpus: int = 4) -> None:
        self.pending = pending
        self.releases = releases
        self.cpus = cpus

    def pending_snapshot(self) -> tuple[int, list[PendingJob]]:
        return 0, list(self.pending)

    def node_views(self, *, live_after: datetime | None = None) -> list[NodeView]:
        used = sum(r.cpus for r in self.releases)
        return [
            NodeView("n1", tuple(range(self.cpus)), list(range(used, self.cpus)), 1000, 1000, frozenset({"debug"}),
                     len(self.releases), releases=list(self.releases))
        ]

    def running_per_array(self) -> dict[int, int]:
        return {}

    def next_job_id(self) -> int:
        return 100

    def job_summaries(self, ids: Iterable[int]) -> dict[int, JobSummary]:
        return {}


def pending(job_id: int, cpus: int, limit: float | None) -> PendingJob:
    return PendingJob(id=job_id, cpus=cpus, submit_time=float(job_id), time_limit=limit)


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
