"""When a job's process group may be signalled: the decision, on made-up /proc records."""

from __future__ import annotations

from conductor.worker.identity import ProcessInfo, group_is_the_jobs

JOB, TICKS = 4242, 1000


def member(pid: int, *, pgid: int = JOB, sid: int = JOB, ticks: int = TICKS + 5, state: str = "S") -> ProcessInfo:
    return ProcessInfo(pid, state, pgid, sid, ticks)


def test_the_jobs_own_process_leads_its_group() -> None:
    assert group_is_the_jobs(JOB, TICKS, member(JOB, ticks=TICKS), [])
    # Not yet reaped: its pid and group are still its own.
    assert group_is_the_jobs(JOB, TICKS, member(JOB, ticks=TICKS, state="Z"), [])


def test_a_reused_pid_is_someone_else() -> None:
    # Whatever the group's members say: the pid went to another process, so the old group emptied.
    assert not group_is_the_jobs(JOB, TICKS, member(JOB, ticks=TICKS + 1), [member(5000)])
    assert not group_is_the_jobs(JOB, TICKS, member(JOB, ticks=TICKS - 1), [])


def test_without_its_process_the_group_is_the_jobs_while_its_members_live() -> None:
    assert group_is_the_jobs(JOB, TICKS, None, [member(5000)])
    assert not group_is_the_jobs(JOB, TICKS, None, [])
    assert not group_is_the_jobs(JOB, TICKS, None, [member(5000, state="Z")])


def test_members_that_cannot_be_the_jobs() -> None:
    # Another session, or older than the job itself.
    assert not group_is_the_jobs(JOB, TICKS, None, [member(5000, sid=77)])
    assert not group_is_the_jobs(JOB, TICKS, None, [member(5000, ticks=TICKS - 1)])
    assert not group_is_the_jobs(JOB, TICKS, None, [member(5000, pgid=77)])


def test_no_start_time_no_signal() -> None:
    assert not group_is_the_jobs(JOB, 0, member(JOB, ticks=0), [member(5000)])
