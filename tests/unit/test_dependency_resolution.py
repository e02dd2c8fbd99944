"""conductor.scheduler.dependencies: the pure evaluation, then resolution against a real (SQLite) store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conductor.domain.dependency import JobRef, JobStatus, parse_dependency
from conductor.domain.job import JobSummary
from conductor.domain.states import JobState
from conductor.errors import DependencyProblem
from conductor.scheduler.dependencies import (
    DependencyResolver,
    check_targets,
    describe_dependencies,
    evaluate_all,
    resolve_dependencies,
    statuses_for,
)
from conductor.scheduler.policy import DependencyStatus, PendingJob, schedule
from conductor.store import DependencyTarget, Finish, SingletonState, Store, utcnow

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def row(job_id: int, state: str, *, array: int | None = None, task: int | None = None, **extra: Any) -> JobSummary:
    values: dict[str, Any] = {
        "id": job_id, "state": state, "array_job_id": array, "array_task_id": task, "start_time": None,
        "end_time": None, "exit_code": None, "user_name": "u", "name": "n",
    }
    return JobSummary(**{**values, **extra})


# ------------------------------------------------------------------ pure
def test_statuses_for_plain_jobs_arrays_and_tasks() -> None:
    rows = [
        row(1, "COMPLETED"),
        row(10, "COMPLETED", array=10, task=0),
        row(11, "RUNNING", array=10, task=1),
        row(12, "COMPLETED", array=10, task=2),
    ]
    refs = [JobRef(1), JobRef(10), JobRef(10, 2), JobRef(11), JobRef(10, 7), JobRef(99)]
    found = statuses_for(refs, rows)
    assert found[JobRef(1)].state == "COMPLETED"
    assert found[JobRef(10)].state == "RUNNING"  # the array as a whole: a task still runs
    assert found[JobRef(10, 2)].state == "COMPLETED"
    assert found[JobRef(11)].state == "RUNNING"  # a task by its own job id
    assert JobRef(10, 7) not in found and JobRef(99) not in found


def test_naive_times_from_sqlite_are_taken_as_utc() -> None:
    ended = (NOW - timedelta(minutes=3)).replace(tzinfo=None)
    found = statuses_for([JobRef(1)], [row(1, "COMPLETED", end_time=ended)])
    result = evaluate_all({5: parse_dependency("afterok:1+2")}, found, now=NOW)
    assert result == {5: DependencyStatus.SATISFIED}


def test_evaluate_all_kinds() -> None:
    statuses = {
        JobRef(1): JobStatus("COMPLETED", NOW, NOW),
        JobRef(2): JobStatus("FAILED", NOW, NOW),
        JobRef(3): JobStatus("PENDING"),
        JobRef(4): JobStatus("RUNNING", NOW),
    }
    deps = {
        10: parse_dependency("afterok:1"),
        11: parse_dependency("afterok:2"),
        12: parse_dependency("afternotok:2"),
        13: parse_dependency("afterany:1:2"),
        14: parse_dependency("after:4"),
        15: parse_dependency("after:3"),
        16: parse_dependency("afterok:2?afterok:1"),
        17: parse_dependency("afterok:2?afternotok:1"),
        18: parse_dependency("afterok:1,afterok:3"),
        19: parse_dependency("afterok:404"),
    }
    assert evaluate_all(deps, statuses, now=NOW) == {
        10: DependencyStatus.SATISFIED,
        11: DependencyStatus.NEVER,
        12: DependencyStatus.SATISFIED,
        13: DependencyStatus.SATISFIED,
        14: DependencyStatus.SATISFIED,
        15: DependencyStatus.WAITING,
        16: DependencyStatus.SATISFIED,
        17: DependencyStatus.NEVER,
        18: DependencyStatus.WAITING,
        19: DependencyStatus.NEVER,
    }


def test_singleton_waits_for_running_and_earlier_pending_jobs_of_the_same_name() -> None:
    dep = parse_dependency("singleton")
    owners = {5: ("ann", "x"), 9: ("ann", "y"), 12: ("bob", "x")}
    singletons = {
        ("ann", "x"): SingletonState(running=False, first_pending_id=3),  # 3 < 5: wait
        ("ann", "y"): SingletonState(running=False, first_pending_id=9),  # itself first: go
        ("bob", "x"): SingletonState(running=True, first_pending_id=12),  # one runs: wait
    }
    result = evaluate_all({5: dep, 9: dep, 12: dep}, {}, now=NOW, owners=owners, singletons=singletons)
    assert result == {5: DependencyStatus.WAITING, 9: DependencyStatus.SATISFIED, 12: DependencyStatus.WAITING}


# ------------------------------------------------------- with a real store
@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store("sqlite:///" + str(tmp_path / "deps.db"))
    s.migrate()
    s.register_node(
        name="n1", cpus=4, cpu_ids=[0, 1, 2, 3], cpu_binding=False, memory_mb=4000, partitions=["debug"],
        instance="test:n1", hostname="h", stale_before=utcnow() - timedelta(seconds=30),
    )
    yield s
    s.close()


def add(store: Store, name: str = "job", **values: Any) -> int:
    base: dict[str, Any] = {"name": name, "user_name": "ann", "partition": "debug", "cpus_per_task": 1,
                            "work_dir": "/tmp", "script": "#!/bin/bash\ntrue\n", "environment": "{}"}
    base.update(values)
    return store.submit([base])[0]


def start_all(store: Store) -> list[int]:
    pending = store.pending_for_scheduling()
    resolve_dependencies(store, pending)
    decision = schedule(pending, store.node_views(), time.time(), presorted=True)
    return [p.job_id for p in store.apply_decision(decision.placements, decision.reasons)]


def end(store: Store, job_id: int, state: JobState = JobState.COMPLETED) -> None:
    assert store.finish([Finish(job_id, state, "0:0" if state is JobState.COMPLETED else "1:0")]) == [job_id]


def statuses(store: Store) -> dict[int, DependencyStatus]:
    pending = store.pending_for_scheduling()
    resolve_dependencies(store, pending)
    return {j.id: j.dependency for j in pending}


def test_resolution_follows_the_jobs_it_names(store: Store) -> None:
    first = add(store, begin_time=None)
    second = add(store, dependency=f"afterok:{first}")
    failed_dep = add(store, dependency=f"afternotok:{first}")
    assert statuses(store)[second] is DependencyStatus.WAITING
    assert start_all(store) == [first]
    end(store, first)
    found = statuses(store)
    assert found[second] is DependencyStatus.SATISFIED
    assert found[failed_dep] is DependencyStatus.NEVER


def test_singleton_against_the_store(store: Store) -> None:
    a = add(store, "same", dependency="singleton")
    b = add(store, "same", dependency="singleton")
    other = add(store, "other", dependency="singleton")
    found = statuses(store)
    assert (found[a], found[b], found[other]) == (
        DependencyStatus.SATISFIED, DependencyStatus.WAITING, DependencyStatus.SATISFIED
    )
    assert sorted(start_all(store)) == [a, other]
    assert statuses(store)[b] is DependencyStatus.WAITING  # a runs
    end(store, a)
    assert statuses(store)[b] is DependencyStatus.SATISFIED


def test_resolver_re_evaluates_jobs_it_already_satisfied(store: Store) -> None:
    blocker = add(store, "twin")
    waiter = add(store, "twin", dependency="singleton")
    resolver = DependencyResolver()
    pending = store.pending_for_scheduling()
    resolver(store, pending)
    cached = {j.id: j for j in pending}
    assert cached[waiter].dependency is DependencyStatus.WAITING  # blocker was submitted first
    store.cancel(blocker)
    resolver(store, [cached[waiter]])
    assert cached[waiter].dependency is DependencyStatus.SATISFIED
    # Same-named job started meanwhile: the cached, once satisfied job must wait again.
    third = add(store, "twin")
    pending = [j for j in store.pending_for_scheduling() if j.id == third]
    decision = schedule(pending, store.node_views(), time.time(), presorted=True)
    assert [p.job_id for p in store.apply_decision(decision.placements, decision.reasons)] == [third]
    resolver(store, [cached[waiter]])
    assert cached[waiter].dependency is DependencyStatus.WAITING


def test_a_backlog_without_dependencies_costs_no_query(store: Store) -> None:
    class Counting(Store):
        calls = 0

        def dependency_targets(self) -> dict[int, DependencyTarget]:
            Counting.calls += 1
            return super().dependency_targets()

    counting = Counting(store.url)
    add(store)
    DependencyResolver()(counting, counting.pending_for_scheduling())
    assert Counting.calls == 0
    counting.close()


def test_check_targets(store: Store) -> None:
    job = add(store)
    array_first = store.submit(
        [{"name": "a", "user_name": "ann", "partition": "debug", "cpus_per_task": 1, "work_dir": "/tmp",
          "script": "x", "environment": "{}", "array_task_id": t, "array_spec": "0-1"} for t in (0, 1)]
    )[0]
    check_targets(store, None)
    check_targets(store, f"afterok:{job}")
    check_targets(store, f"afterany:{array_first}_1,after:{array_first}")
    check_targets(store, "singleton")
    with pytest.raises(DependencyProblem, match="Job dependency problem: no job 424242 exists"):
        check_targets(store, f"afterok:{job}:424242")
    with pytest.raises(DependencyProblem, match=f"no job {array_first}_5 exists"):
        check_targets(store, f"afterok:{array_first}_5")
    missing_pending: list[PendingJob] = []
    resolve_dependencies(store, missing_pending)  # nothing to do, no error



def add_array(store: Store, tasks: range, **values: Any) -> list[int]:
    base: dict[str, Any] = {"name": "arr", "user_name": "ann", "partition": "debug", "cpus_per_task": 1,
                            "work_dir": "/tmp", "script": "#!/bin/bash\ntrue\n", "environment": "{}",
                            "array_spec": f"{tasks.start}-{tasks.stop - 1}"}
    return store.submit([{**base, **values, "array_task_id": t} for t in tasks])


def test_aftercorr_pairs_the_tasks_of_two_arrays(store: Store) -> None:
    first = add_array(store, range(3), begin_time=None)
    array_id = first[0]
    then = add_array(store, range(4), dependency=f"aftercorr:{array_id}")
    assert {statuses(store)[t] for t in then} == {DependencyStatus.WAITING}
    # Task 0 completes, task 1 fails, task 2 still runs: only the dependent task 0 may start,
    # the dependent task 1 never will, and task 3 (no task 3 in the first array) waits for the
    # whole first array to end, as afterok would.
    assert sorted(start_all(store)) == first
    end(store, first[0])
    end(store, first[1], JobState.FAILED)
    found = statuses(store)
    assert [found[t] for t in then] == [
        DependencyStatus.SATISFIED, DependencyStatus.NEVER, DependencyStatus.WAITING, DependencyStatus.WAITING,
    ]
    end(store, first[2])
    found = statuses(store)
    assert found[then[2]] is DependencyStatus.SATISFIED
    assert found[then[3]] is DependencyStatus.NEVER  # the array as a whole ended with a failure


def test_aftercorr_on_a_complete_array_lets_every_task_go(store: Store) -> None:
    first = add_array(store, range(2), begin_time=None)
    assert sorted(start_all(store)) == first
    for job_id in first:
        end(store, job_id)
    plain = add(store, dependency=f"aftercorr:{first[0]}")  # no array task: the whole array
    then = add_array(store, range(3), dependency=f"aftercorr:{first[0]}")
    found = statuses(store)
    assert {found[t] for t in [plain, *then]} == {DependencyStatus.SATISFIED}


def test_describe_dependencies_against_the_store(store: Store) -> None:
    first = add_array(store, range(2), begin_time=None)
    plain = add(store, begin_time=None)
    on_array = add(store, dependency=f"afterok:{first[0]}")
    on_both = add(store, dependency=f"afterok:{first[0]},afternotok:{plain}")
    then = add_array(store, range(2), dependency=f"aftercorr:{first[0]}")
    wanted = {job_id: target for job_id, target in store.dependencies_of([on_array, on_both, *then]).items() if target}
    assert len(wanted) == 4
    shown = describe_dependencies(store, wanted)
    assert shown[on_array] == f"afterok:{first[0]}_*(unfulfilled)"
    assert shown[on_both] == f"afterok:{first[0]}_*(unfulfilled),afternotok:{plain}(unfulfilled)"
    assert shown[then[0]] == f"aftercorr:{first[0]}_*(unfulfilled)"
    assert sorted(start_all(store)) == sorted([*first, plain])
    end(store, first[0])
    end(store, plain)
    shown = describe_dependencies(store, wanted)
    assert shown[then[0]] is None  # its task 0 completed
    assert shown[then[1]] == f"aftercorr:{first[0]}_*(unfulfilled)"
    assert shown[on_both] == f"afterok:{first[0]}_*(unfulfilled),afternotok:{plain}(failed)"
    assert describe_dependencies(store, {on_array: DependencyTarget("afterok:")}) == {on_array: "afterok:(failed)"}
    assert describe_dependencies(store, {}) == {}
    assert store.dependencies_of([on_array, first[0], then[1], 987654]) == {
        on_array: DependencyTarget(f"afterok:{first[0]}"), first[0]: None,
        then[1]: DependencyTarget(f"aftercorr:{first[0]}", 1),
    }
