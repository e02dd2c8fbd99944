"""After a restart: which jobs the worker takes back, reports, launches again or fails, and whose
processes it kills, decided from made-up rows and status files, acted out on fakes."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

from worker_fakes import FakeSignaller, FakeStore, running_row

from conductor.domain.states import JobState
from conductor.worker.adoption import (
    GONE_AT_RESTART,
    AdoptionPlan,
    hand_back,
    is_orphan,
    kill_orphans,
    kill_strays,
    plan_adoption,
    settle,
)
from conductor.worker.protocol import JobStatus
from conductor.worker.running import RunningJob
from conductor.worker.spool import Spool

NOW = datetime(2026, 1, 1, tzinfo=UTC)
STARTED = datetime(2025, 12, 31, 23, 0)  # as SQLite gives it back: naive, in UTC
KILL = int(signal.SIGKILL)


def plan(rows: list[dict], statuses: dict[int, JobStatus], running: set[int]) -> AdoptionPlan:
    def read(path: str) -> JobStatus:
        return statuses.get(int(path.rpartition("_")[2]), JobStatus())

    return plan_adoption(rows, lambda job_id: f"/run/job_{job_id}", read, lambda pid, ticks: pid in running, NOW)


def test_each_kind_of_job_found_at_a_restart() -> None:
    rows = [
        running_row(1),  # alive
        running_row(2),  # ended while the worker was away, its end recorded
        running_row(3),  # its setup failed
        running_row(4, pid=104),  # started, and its status file is gone
        running_row(5, pid=None),  # claimed, never started (no "start" line)
        running_row(6),  # its process is gone, its end not (yet) recorded
        running_row(7, launched=False),  # placed, not claimed: the launch path takes it
    ]
    statuses = {
        1: JobStatus(pid=501, ticks=11, launcher=(90, 9)),
        2: JobStatus(pid=502, ticks=12, exit=(0, 0)),
        3: JobStatus(pid=503, ticks=13, exit=(1, 0), error="cannot open output"),
        6: JobStatus(pid=506, ticks=16, launcher=(90, 9)),
    }
    result = plan(rows, statuses, running={501})
    assert [j.job_id for j in result.running] == [1]
    assert [j.job_id for j in result.ended] == [2, 3]
    assert [j.job_id for j in result.unsettled] == [6]
    assert (result.gone, result.never_started) == ([4], [5])
    assert result.ended[0].status is statuses[2] and result.ended[1].status is statuses[3]


def test_an_adopted_job_keeps_its_identity_limit_and_run() -> None:
    row = running_row(
        1, start_time=STARTED, time_limit=60, kill_state=JobState.CANCELLED.value, restart_count=2, requeue=True
    )
    (job,) = plan([row], {1: JobStatus(pid=501, ticks=11, launcher=(90, 9))}, running={501}).running
    assert (job.pid, job.ticks, job.launcher, job.status_path) == (501, 11, (90, 9), "/run/job_1")
    assert (job.time_limit, job.kill_state, job.restart_count, job.requeue) == (60, JobState.CANCELLED.value, 2, True)
    assert job.start_time == STARTED.replace(tzinfo=UTC)
    # Without a start time in its row: now.
    (job,) = plan([running_row(1, restart_count=None)], {1: JobStatus(pid=501, ticks=11)}, running={501}).running
    assert (job.start_time, job.restart_count) == (NOW, 0)


def test_a_reused_pid_is_not_adopted() -> None:
    # The pid runs, but is not the job's (is_running says so from its start time).
    result = plan_adoption(
        [running_row(1)], lambda i: "/run/job_1", lambda p: JobStatus(pid=501, ticks=11),
        lambda pid, ticks: ticks == 12, NOW,
    )
    assert result.running == [] and [j.job_id for j in result.unsettled] == [1]


def test_unsettled_jobs_end_with_what_their_launcher_wrote_or_are_gone() -> None:
    result = plan([running_row(6), running_row(8)], {6: JobStatus(pid=506, ticks=16), 8: JobStatus(pid=508, ticks=18)},
                  running=set())
    late = JobStatus(pid=506, ticks=16, exit=(0, 15))
    settle(result, lambda job: late if job.job_id == 6 else JobStatus(pid=508, ticks=18))
    assert [j.job_id for j in result.ended] == [6] and result.ended[0].status is late
    assert (result.gone, result.unsettled) == ([8], [])


def test_hand_back_launches_the_never_started_and_fails_the_gone() -> None:
    store = FakeStore()
    hand_back(AdoptionPlan(gone=[4], never_started=[5]), "n1", store)
    assert store.called("relaunch") == [("n1", [5])]
    assert store.called("fail_stranded") == [("n1", [4], GONE_AT_RESTART)]
    quiet = FakeStore()
    hand_back(AdoptionPlan(), "n1", quiet)
    assert quiet.calls == []


def test_hand_back_survives_a_lost_database() -> None:
    store = FakeStore()
    store.failing = {"relaunch", "fail_stranded"}
    hand_back(AdoptionPlan(gone=[4], never_started=[5]), "n1", store)  # logs, does not raise
    assert [name for name, _ in store.calls] == ["relaunch", "fail_stranded"]


# ---------------------------------------------------------------- orphans
def job(job_id: int, restart_count: int = 0) -> RunningJob:
    return RunningJob(job_id, 500 + job_id, f"/run/job_{job_id}", NOW, None, ticks=10 + job_id,
                      restart_count=restart_count)


def test_which_processes_are_orphans() -> None:
    assert not is_orphan(job(1), running_row(1))
    assert is_orphan(job(1), None)  # no longer on this node
    assert is_orphan(job(1), running_row(1, launched=False))  # requeued and placed here again
    assert is_orphan(job(1), running_row(1, restart_count=1))  # a later run of the job
    assert not is_orphan(job(1, restart_count=0), running_row(1, restart_count=None))


def make_spool(tmp_path: Path) -> Spool:
    spool = Spool(tmp_path)
    spool.make_dirs()
    return spool


def test_orphans_are_killed_and_forgotten(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    for job_id in (1, 2):
        Path(spool.status_path(job_id)).write_text(f"start {500 + job_id} {10 + job_id} 90 9\n")
    jobs = {1: job(1), 2: job(2)}
    signaller = FakeSignaller()
    kill_orphans(jobs, [running_row(1)], spool, signaller)
    assert list(jobs) == [1]
    assert signaller.sent == [("group", 502, KILL)]
    assert Path(spool.status_path(1)).exists() and not Path(spool.status_path(2)).exists()


def test_strays_of_a_predecessor_are_killed_and_their_files_removed(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    Path(spool.status_path(5)).write_text("start 505 15 90 9\n")  # ours
    Path(spool.status_path(6)).write_text("start 506 16 90 9\n")  # not ours, alive
    Path(spool.status_path(7)).write_text("start 507 17 90 9\nexit 0 0 0.00 0.00\n")  # not ours, over
    (spool.status_dir / "spare_3").write_text("start 1 2 3 4\n")
    signaller = FakeSignaller()
    kill_strays({5}, spool, signaller, lambda pid, ticks: (pid, ticks) == (506, 16))
    assert signaller.sent == [("group", 506, KILL)]
    assert sorted(p.name for p in spool.status_dir.iterdir()) == ["job_5.status", "spare_3"]
