"""Time limits, kills and signals: when the worker sends SIGTERM, SIGKILL and --signal's warning,
decided on made-up clocks and acted out on a fake store and signaller."""

from __future__ import annotations

import signal
from datetime import UTC, datetime

from worker_fakes import FakeSignaller, FakeStore, running_row

from conductor.domain.states import JobState
from conductor.worker.enforcement import (
    BATCH,
    FULL,
    NOTHING,
    STEPS,
    SignalRequest,
    Step,
    decide,
    enforce,
    next_due,
    requested_signals,
    warn_time,
)
from conductor.worker.running import RunningJob

START = datetime(2026, 1, 1, tzinfo=UTC)
T0 = START.timestamp()  # wall clock at the job's start
KILL_WAIT = 30.0
PID = 4000
CONT, TERM, KILL = int(signal.SIGCONT), int(signal.SIGTERM), int(signal.SIGKILL)
USR1, USR2 = int(signal.SIGUSR1), int(signal.SIGUSR2)


def job(job_id: int = 1, *, limit: int | None = 600, kill_state: str | None = None, spec: str | None = None) -> RunningJob:
    return RunningJob(job_id, PID + job_id, f"/x/job_{job_id}.status", START, limit, ticks=77,
                      kill_state=kill_state, signal_spec=spec)


def run(jobs: list[RunningJob], store: FakeStore, at: float, mono: float, rows: list[dict] | None = None) -> FakeSignaller:
    signaller = FakeSignaller()
    enforce({j.job_id: j for j in jobs}, rows, "n1", store, signaller, KILL_WAIT, T0 + at, mono)
    return signaller


# -------------------------------------------------------------- decisions
def test_nothing_before_the_limit_nor_without_one() -> None:
    assert decide(job(), T0 + 599.9, 0.0, KILL_WAIT) is NOTHING
    assert decide(job(limit=None), T0 + 10**9, 0.0, KILL_WAIT) is NOTHING


def test_the_limit_reached_times_out_and_terminates() -> None:
    assert decide(job(), T0 + 600, 0.0, KILL_WAIT) == Step(time_out=True, terminate=True)


def test_a_kill_asked_for_terminates_without_a_timeout() -> None:
    for state in (JobState.CANCELLED.value, JobState.PENDING.value):
        assert decide(job(kill_state=state), T0, 0.0, KILL_WAIT) == Step(terminate=True)


def test_sigkill_once_the_kill_wait_has_passed_and_only_once() -> None:
    j = job(kill_state=JobState.CANCELLED.value)
    j.term_sent = 100.0
    assert decide(j, T0, 100.0 + KILL_WAIT - 0.01, KILL_WAIT) is NOTHING
    assert decide(j, T0, 100.0 + KILL_WAIT, KILL_WAIT) == Step(kill=True)
    j.kill_sent = True
    assert decide(j, T0, 10**6, KILL_WAIT) is NOTHING


def test_the_signal_warning_comes_its_time_before_the_limit() -> None:
    j = job(spec="B:USR1@60")
    assert warn_time(j) == T0 + 540
    assert decide(j, T0 + 539.9, 0.0, KILL_WAIT) is NOTHING
    assert decide(j, T0 + 540, 0.0, KILL_WAIT) == Step(warn=SignalRequest(USR1, BATCH))
    j.warned = True
    assert warn_time(j) is None and decide(j, T0 + 541, 0.0, KILL_WAIT) is NOTHING
    # Without B: it goes to the job's steps alone, never its batch shell (job_mgr.c).
    assert decide(job(spec="USR2@10"), T0 + 590, 0.0, KILL_WAIT) == Step(warn=SignalRequest(USR2, STEPS))


def test_no_warning_without_a_limit_after_a_kill_or_with_a_bad_spec() -> None:
    assert warn_time(job(limit=None, spec="USR1@60")) is None
    assert decide(job(kill_state=JobState.CANCELLED.value, spec="USR1@60"), T0 + 550, 0.0, KILL_WAIT) == Step(
        terminate=True
    )
    assert warn_time(job(spec="NOSUCHSIG@60")) is None
    assert decide(job(spec="NOSUCHSIG@60"), T0 + 599, 0.0, KILL_WAIT) is NOTHING


def test_a_warning_due_at_the_limit_comes_before_the_sigterm() -> None:
    assert decide(job(spec="USR1@60"), T0 + 700, 0.0, KILL_WAIT) == Step(
        warn=SignalRequest(USR1, STEPS), time_out=True, terminate=True
    )


def test_next_due_is_the_nearest_of_limit_warning_and_kill_wait() -> None:
    assert next_due([job()], T0 + 100, 0.0, 5.0, KILL_WAIT) == 5.0  # the check interval
    assert next_due([job()], T0 + 598, 0.0, 5.0, KILL_WAIT) == 2.0
    assert next_due([job(spec="USR1@60")], T0 + 538, 0.0, 5.0, KILL_WAIT) == 2.0
    killed = job(kill_state=JobState.CANCELLED.value)
    killed.term_sent = 50.0
    assert next_due([killed], T0, 70.0, 60.0, KILL_WAIT) == 10.0
    assert next_due([job()], T0 + 900, 0.0, 5.0, KILL_WAIT) == 0.0  # overdue: at once, never negative
    assert next_due([], T0, 0.0, 5.0, KILL_WAIT) == 5.0


def test_signal_requests_as_the_store_keeps_them() -> None:
    assert requested_signals(["b:10", "12", "s:14", ":15", "x:16", "b:USR1", ""]) == [
        SignalRequest(10, BATCH), SignalRequest(12, FULL), SignalRequest(14, STEPS), SignalRequest(15, FULL)
    ]


# ------------------------------------------------------------------ acts
def test_a_timeout_is_recorded_then_sigcont_sigterm_then_sigkill() -> None:
    store, j = FakeStore(), job()
    store.rows = [running_row(1, time_limit=600)]
    assert run([j], store, 599, 0.0).sent == []
    sent = run([j], store, 600, 1000.0).sent
    assert store.called("set_kill") == [(1, JobState.TIMEOUT)]
    assert sent == [("group", PID + 1, CONT), ("group", PID + 1, TERM)]
    assert (j.kill_state, j.term_sent) == (JobState.TIMEOUT.value, 1000.0)
    assert run([j], store, 620, 1000.0 + KILL_WAIT - 1).sent == []
    assert run([j], store, 640, 1000.0 + KILL_WAIT).sent == [("group", PID + 1, KILL)]
    assert run([j], store, 700, 2000.0).sent == []
    assert len(store.called("set_kill")) == 1


def test_a_timeout_is_enforced_when_the_store_cannot_record_it() -> None:
    store, j = FakeStore(), job()
    store.failing = {"set_kill", "running_on_node"}
    assert run([j], store, 601, 5.0).sent == [("group", PID + 1, CONT), ("group", PID + 1, TERM)]
    assert j.kill_state == JobState.TIMEOUT.value


def test_a_cancel_in_the_database_terminates_and_overrides_a_requeue() -> None:
    store = FakeStore()
    requeued = job(2, kill_state=JobState.PENDING.value)
    requeued.term_sent = 0.0  # already being killed for the requeue
    plain = job(3)
    store.rows = [running_row(2, kill_state=JobState.CANCELLED.value, time_limit=600),
                  running_row(3, kill_state=JobState.CANCELLED.value, time_limit=600)]
    sent = run([requeued, plain], store, 10, 1.0).sent
    assert requeued.kill_state == JobState.CANCELLED.value and plain.kill_state == JobState.CANCELLED.value
    assert sent == [("group", PID + 3, CONT), ("group", PID + 3, TERM)]
    assert store.called("set_kill") == []


def test_a_limit_changed_by_scontrol_update_applies() -> None:
    store, j = FakeStore(), job(limit=600)
    store.rows = [running_row(1, time_limit=60)]
    assert run([j], store, 61, 0.0).sent[-1] == ("group", PID + 1, TERM)
    assert j.time_limit == 60


def test_the_warning_is_sent_once_to_the_batch_shell() -> None:
    store, j = FakeStore(), job()
    store.rows = [running_row(1, time_limit=600, signal_spec="B:USR1@60")]
    assert run([j], store, 545, 0.0).sent == [("batch", PID + 1, USR1)]
    assert j.warned
    assert run([j], store, 546, 0.0).sent == []


def test_scancel_signal_requests_are_delivered_once_each() -> None:
    store, j, other = FakeStore(), job(1), job(2)
    store.rows = [running_row(1, time_limit=600, pending_signal=True), running_row(2, time_limit=600)]
    store.signals = {1: ["b:10", "12", "s:14"], 9: ["15"]}  # job 9 is not here any more
    assert run([j, other], store, 1, 0.0).sent == [("batch", PID + 1, 10), ("full", PID + 1, 12), ("steps", PID + 1, 14)]
    assert run([j, other], store, 2, 0.0).sent == []  # taken already
    # Without a pending signal in any row, the store is not asked.
    store.rows = [running_row(1, time_limit=600)]
    run([j, other], store, 3, 0.0)
    assert len(store.called("take_signals")) == 2


def test_nothing_is_read_without_jobs() -> None:
    store = FakeStore()
    run([], store, 0, 0.0)
    assert store.calls == []
