"""How the worker records an ended job: the pure decision, and the agent deciding through a fake
store (a kill asked for after the process ended is read from the database first)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from worker_fakes import FakeStore, job_record

from conductor.bus import Bus
from conductor.domain.states import JobState, Reason
from conductor.worker.agent import Worker
from conductor.worker.config import NodeConfig
from conductor.worker.launcher_client import Started
from conductor.worker.outcome import (
    NO_EXIT_STATUS,
    decide_outcome,
    launch_failure,
    report,
    settled_kill_state,
)
from conductor.worker.protocol import JobStatus
from conductor.worker.running import RunningJob
from conductor.worker.spool import exit_report

TIMES = {"utime": 1.5, "stime": 0.25}


def ended(code: int, sig: int = 0) -> JobStatus:
    return JobStatus(pid=10, ticks=5, exit=(code, sig), rusage=TIMES)


def summary(job_id: int, status: JobStatus, kill_state: str | None) -> tuple[object, ...]:
    finish = decide_outcome(job_id, status, kill_state)
    assert finish.job_id == job_id
    return (finish.state, finish.exit_code, finish.reason, finish.error_msg)


def test_exit_zero_completes() -> None:
    finish = decide_outcome(1, ended(0), None)
    assert (finish.state, finish.exit_code, finish.reason, finish.error_msg) == (
        JobState.COMPLETED, "0:0", Reason.NONE.value, None,
    )
    # The batch script's CPU times (wait4) are its usage when no group measured any.
    assert finish.rusage is not None
    assert (finish.rusage["user_cpu"], finish.rusage["system_cpu"]) == (TIMES["utime"], TIMES["stime"])


def test_non_zero_exit_fails() -> None:
    assert summary(1, ended(3), None) == (JobState.FAILED, "3:0", Reason.NON_ZERO_EXIT_CODE.value, None)


def test_death_by_signal_fails() -> None:
    assert summary(1, ended(0, 9), None) == (JobState.FAILED, "0:9", Reason.RAISED_SIGNAL.value, None)
    # A signal wins over the code for the reason.
    assert summary(1, ended(1, 6), None)[2] == Reason.RAISED_SIGNAL.value


def test_killed_for_its_time_limit_is_a_timeout() -> None:
    assert summary(1, ended(0, 15), JobState.TIMEOUT.value) == (
        JobState.TIMEOUT, "0:15", Reason.TIME_LIMIT.value, None,
    )
    # Whatever the script did on its way out.
    assert summary(1, ended(0), JobState.TIMEOUT.value)[0] == JobState.TIMEOUT


def test_cancelled() -> None:
    assert summary(1, ended(0, 15), JobState.CANCELLED.value) == (JobState.CANCELLED, "0:15", Reason.NONE.value, None)
    assert summary(1, ended(0), JobState.CANCELLED.value)[0] == JobState.CANCELLED


def test_requeue_sends_the_run_back_to_the_queue() -> None:
    assert summary(1, ended(0, 15), JobState.PENDING.value) == (JobState.PENDING, "0:15", Reason.NONE.value, None)


def test_launcher_died_and_the_status_is_lost() -> None:
    lost = JobStatus(pid=10, ticks=5)
    # Slurm's NODE_FAIL, saying why, and no exit code or signal that nobody saw.
    assert summary(1, lost, None) == (JobState.NODE_FAIL, "0:0", Reason.NODE_DOWN.value, NO_EXIT_STATUS)
    assert NO_EXIT_STATUS.startswith("exit status lost: launcher died")
    # A kill asked for still says which it was; the exit status stays unknown.
    assert summary(1, lost, JobState.CANCELLED.value) == (JobState.CANCELLED, "0:0", Reason.NONE.value, NO_EXIT_STATUS)
    assert summary(1, lost, JobState.TIMEOUT.value) == (JobState.TIMEOUT, "0:0", Reason.TIME_LIMIT.value, NO_EXIT_STATUS)
    assert summary(1, JobStatus(), None)[3] == NO_EXIT_STATUS


def test_setup_error_fails_with_its_message_whatever_was_asked() -> None:
    status = JobStatus(pid=10, ticks=5, exit=(1, 0), error="working directory '/x' is not usable")
    for kill_state in (None, JobState.CANCELLED.value, JobState.TIMEOUT.value, JobState.PENDING.value):
        assert summary(1, status, kill_state) == (
            JobState.FAILED, "1:0", Reason.JOB_LAUNCH_FAILURE.value, "working directory '/x' is not usable",
        )


def test_a_cancel_read_later_overrides_a_requeue_but_not_a_timeout() -> None:
    requested: dict[int, str | None] = {1: JobState.CANCELLED.value}
    assert settled_kill_state(None, 1, requested) == JobState.CANCELLED.value
    assert settled_kill_state(JobState.PENDING.value, 1, requested) == JobState.CANCELLED.value
    assert settled_kill_state(JobState.TIMEOUT.value, 1, requested) == JobState.TIMEOUT.value
    assert settled_kill_state(JobState.CANCELLED.value, 1, {1: JobState.PENDING.value}) == JobState.CANCELLED.value
    assert settled_kill_state(None, 2, requested) is None
    assert settled_kill_state(JobState.PENDING.value, 2, requested) == JobState.PENDING.value


def test_reports_are_tied_to_their_run() -> None:
    finish = report(decide_outcome(4, ended(0), None), "n1", 2)
    assert (finish.node, finish.restart_count) == ("n1", 2)
    failed = launch_failure(4, "user 'x' does not exist", "n1", 3)
    assert (failed.state, failed.exit_code, failed.error_msg, failed.node, failed.restart_count) == (
        JobState.FAILED, "1:0", "launch failed: user 'x' does not exist", "n1", 3,
    )
    assert failed.reason == Reason.JOB_LAUNCH_FAILURE.value


def test_the_launchers_exit_report() -> None:
    status = exit_report("3 0 0.01 0.02", 10)
    assert status is not None and (status.pid, status.exit, status.rusage) == (10, (3, 0), {"utime": 0.01, "stime": 0.02})
    # "exit TAG" alone: the status file says why (a setup failure).
    assert exit_report("", 10) is None


# --------------------------------------------------------------- in the agent
@pytest.fixture
def worker(tmp_path: Path) -> tuple[Worker, FakeStore]:
    store = FakeStore()
    config = NodeConfig(name="n1", cpus=2, memory_mb=1000, partitions=["debug"], home=tmp_path)
    return Worker(store, Bus(), config), store


def exited(job_id: int, status: JobStatus, kill_state: str | None = None, restart_count: int = 0) -> RunningJob:
    job = RunningJob(job_id, 10, f"/nonexistent/job_{job_id}.status", datetime.now(UTC), None,
                     kill_state=kill_state, restart_count=restart_count)
    job.status = status
    return job


def test_the_agent_reads_kills_asked_for_before_deciding(worker: tuple[Worker, FakeStore]) -> None:
    agent, store = worker
    store.requested = {2: JobState.CANCELLED.value, 3: JobState.CANCELLED.value}
    agent._exited = [
        exited(1, ended(0)),
        exited(2, ended(0, 15)),
        exited(3, ended(0, 15), JobState.TIMEOUT.value),  # final: not asked about
        exited(4, ended(0, 15), JobState.PENDING.value, restart_count=1),
    ]
    agent._flush()
    assert store.called("kill_states") == [([1, 2, 4],)]
    states = {f.job_id: (f.state, f.node, f.restart_count) for f in store.finished}
    assert states == {
        1: (JobState.COMPLETED, "n1", 0),
        2: (JobState.CANCELLED, "n1", 0),
        3: (JobState.TIMEOUT, "n1", 0),
        4: (JobState.PENDING, "n1", 1),
    }


def test_the_agent_requeues_a_fenced_job_that_asked_for_it(worker: tuple[Worker, FakeStore]) -> None:
    agent, store = worker
    fenced = JobStatus(pid=10, ticks=5, exit=(0, 9), rusage=TIMES)
    fenced.fenced = 1700000000.0
    agent._exited = [exited(1, fenced), exited(2, fenced)]
    agent._exited[1].requeue = True
    agent._flush()
    assert {f.job_id: f.state for f in store.finished} == {1: JobState.NODE_FAIL, 2: JobState.PENDING}


def test_the_agent_decides_once_the_database_answers(worker: tuple[Worker, FakeStore]) -> None:
    agent, store = worker
    store.failing = {"kill_states"}
    agent._exited = [exited(1, ended(0))]
    agent._flush()
    assert store.finished == [] and len(agent._exited) == 1
    store.failing = {"finish"}
    agent._flush()
    assert store.finished == [] and agent._exited == []  # decided, kept for the next report
    store.failing = set()
    agent._flush()
    assert [(f.job_id, f.state) for f in store.finished] == [(1, JobState.COMPLETED)]


def test_a_started_job_knows_whether_it_asked_for_requeue(worker: tuple[Worker, FakeStore]) -> None:
    agent, _ = worker
    agent._launching = {1: job_record(1, requeue=True), 2: job_record(2)}
    started, _ = agent._started(
        {1: Started(pid=os.getpid(), ticks=1, tag=0), 2: Started(pid=os.getpid(), ticks=1, tag=0)}
    )
    assert {job.job_id: job.requeue for job in started} == {1: True, 2: False}
