"""A running job whose end was asked for (a cancel, its time limit) is shown as slurmctld shows
it until its processes are gone: COMPLETING in the state it ends in, ended at the request, its
run time stopped there. slurmrestd's records and the dashboard's pages agree with squeue."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from conductor.api.slurmrestd import job_info
from conductor.domain.job import Job, ending_state
from conductor.web import views

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ASKED = T0 + timedelta(seconds=70)
NOW = T0 + timedelta(seconds=100)


def job(**values: object) -> Job:
    base: dict[str, object] = {f.name: None for f in dataclasses.fields(Job)}
    base.update(
        id=7, name="stubborn", user_name="alice", partition="debug", state="RUNNING", reason="None",
        priority=0, nice=0, cpus_per_task=1, ntasks=1, exclusive=False, allocated_cpus=1, allocated_memory_mb=0,
        submit_time=T0, start_time=T0 + timedelta(seconds=10), work_dir="/tmp", open_mode="truncate",
        held=False, requeue=False, restart_count=0, launched=True, node_list="n1", time_limit=60,
    )
    base.update(values)
    return Job(**base)  # type: ignore[arg-type]


def test_only_a_cancel_or_a_time_limit_of_a_running_job_is_an_end() -> None:
    assert ending_state(job(kill_state="CANCELLED", kill_time=ASKED)) == "CANCELLED"
    assert ending_state(job(kill_state="TIMEOUT", kill_time=ASKED)) == "TIMEOUT"
    assert ending_state(job(kill_state="PENDING", kill_time=ASKED)) is None  # a requeue runs again
    assert ending_state(job()) is None
    assert ending_state(job(state="CANCELLED", kill_state="CANCELLED", kill_time=ASKED)) is None


def test_slurmrestd_shows_the_end_state_with_completing_and_the_request_as_end() -> None:
    info = job_info(job(kill_state="TIMEOUT", kill_time=ASKED))
    assert info["job_state"] == ["TIMEOUT", "COMPLETING"]
    assert info["end_time"]["number"] == int(ASKED.timestamp())
    assert info["state_reason"] == "TimeLimit"
    cancelled = job_info(job(kill_state="CANCELLED", kill_time=ASKED))
    assert cancelled["job_state"] == ["CANCELLED", "COMPLETING"] and cancelled["state_reason"] == "None"
    running = job_info(job())
    assert running["job_state"] == ["RUNNING"] and running["end_time"]["number"] == 0


def test_the_dashboard_shows_completing_with_the_run_time_stopped_at_the_request() -> None:
    ending = job(kill_state="TIMEOUT", kill_time=ASKED)
    row = views.queue_rows([ending], NOW)[0]
    assert (row.state, row.time) == ("COMPLETING", "00:01:00")
    fields = dict(views.job_fields(ending, NOW))
    assert fields["JobState"] == "COMPLETING" and fields["Reason"] == "TimeLimit"
    assert fields["EndTime"] == views.when(ASKED) and fields["RunTime"] == "00:01:00"
    running = job()
    assert views.queue_rows([running], NOW)[0].state == "RUNNING"
    assert views.queue_rows([running], NOW)[0].time == "00:01:30"
    assert dict(views.job_fields(running, NOW))["EndTime"] == ""
