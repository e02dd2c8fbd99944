from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conductor.domain.dependency import (
    MAX_REFS,
    Dependency,
    DependencyResult,
    DependencyTerm,
    JobRef,
    JobStatus,
    aggregate_array_status,
    corresponding_refs,
    describe_dependency,
    evaluate_dependency,
    format_dependency,
    parse_dependency,
)
from conductor.domain.errors import SpecError

SAT = DependencyResult.SATISFIED
WAIT = DependencyResult.WAITING
NEVER = DependencyResult.NEVER
NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
FAILURE_STATES = ["FAILED", "TIMEOUT", "CANCELLED", "NODE_FAIL", "OUT_OF_MEMORY"]
TERMINAL_STATES = ["COMPLETED", *FAILURE_STATES]


def term(kind: str, *refs: JobRef | int, delay: int = 0) -> DependencyTerm:
    return DependencyTerm(
        kind, tuple(r if isinstance(r, JobRef) else JobRef(r) for r in refs), delay
    )


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("after:123", Dependency(True, (term("after", 123),))),
        ("afterok:1:2", Dependency(True, (term("afterok", 1, 2),))),
        ("afterany:1,afterok:2", Dependency(True, (term("afterany", 1), term("afterok", 2)))),
        ("afterok:1?afternotok:2", Dependency(False, (term("afterok", 1), term("afternotok", 2)))),
        ("after:5+10", Dependency(True, (term("after", 5, delay=10),))),
        ("after:5+10:6+10", Dependency(True, (term("after", 5, 6, delay=10),))),
        (
            "after:5+10:6",
            Dependency(True, (term("after", 5, delay=10), term("after", 6))),
        ),
        ("afterany:7+3", Dependency(True, (term("afterany", 7, delay=3),))),
        ("singleton", Dependency(True, (DependencyTerm("singleton"),))),
        ("SINGLETON", Dependency(True, (DependencyTerm("singleton"),))),
        (
            "singleton,afterok:4",
            Dependency(True, (DependencyTerm("singleton"), term("afterok", 4))),
        ),
        ("AfterOK:1", Dependency(True, (term("afterok", 1),))),
        ("afterok:123_4", Dependency(True, (term("afterok", JobRef(123, 4)),))),
        ("afterok:123_*", Dependency(True, (term("afterok", JobRef(123)),))),
        (
            "afterok:7_[1-3]",
            Dependency(True, (term("afterok", JobRef(7, 1), JobRef(7, 2), JobRef(7, 3)),)),
        ),
        (
            "afterok:7_[1,3]?after:8",
            Dependency(False, (term("afterok", JobRef(7, 1), JobRef(7, 3)), term("after", 8))),
        ),
        (
            "afterany:9_[0-20:10]+2",
            Dependency(
                True, (term("afterany", JobRef(9, 0), JobRef(9, 10), JobRef(9, 20), delay=2),)
            ),
        ),
        ("123", Dependency(True, (term("afterany", 123),))),
        ("123,456", Dependency(True, (term("afterany", 123), term("afterany", 456)))),
        (" afterok:1 , afterok:2 ", Dependency(True, (term("afterok", 1), term("afterok", 2)))),
    ],
)
def test_parse_valid(text: str, expected: Dependency) -> None:
    assert parse_dependency(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty dependency"),
        ("  ", "empty dependency"),
        ("afterok", "bad term 'afterok'"),
        ("afterok:", "afterok needs at least one job id"),
        ("afterok:abc", "bad job id 'abc'"),
        ("afterok:1:", "bad job id ''"),
        ("afterok:-1", "bad job id '-1'"),
        ("afterok:0", "job id 0 does not exist"),
        ("after:1+0", "+time in '1+0' must be at least 1 minute"),
        ("after:1+x", "bad job id '1+x'"),
        ("afterok:1,afterok:2?afterok:3", "use either ',' (all must be satisfied) or '?'"),
        ("afterburstbuffer:1", "'afterburstbuffer' is not supported"),
        ("expand:1", "'expand' is not supported"),
        ("before:1", "unknown type 'before'"),
        ("singleton:1", "singleton takes no job ids"),
        ("afterok:1,,afterok:2", "empty term between separators"),
        ("afterok:1,", "empty term between separators"),
        ("afterok:7_[1-3", "'[' without ']'"),
        ("afterok:7_1-3]", "']' without '['"),
        ("afterok:7_[1-3%2]", "%N is not allowed"),
        ("afterok:7_[]", "empty array specification"),
        ("123:456", "unknown type '123'"),
        ("afterok:1_x", "bad job id '1_x'"),
    ],
)
def test_parse_errors(text: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_dependency(text)
    assert info.value.field == "dependency"
    assert fragment in info.value.message
    assert str(info.value).startswith("dependency: ")


def test_parse_uses_caller_field() -> None:
    with pytest.raises(SpecError) as info:
        parse_dependency("whenever", field="--dependency")
    assert info.value.field == "--dependency"
    assert str(info.value).startswith("--dependency: invalid dependency 'whenever'")


def test_spec_error_survives_pickling() -> None:
    with pytest.raises(SpecError) as info:
        parse_dependency("afterok:0")
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.field, copy.message, str(copy)) == (
        info.value.field,
        info.value.message,
        str(info.value),
    )


# --- formatting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("AFTEROK:1:2", "afterok:1:2"),
        ("after:5+10:6", "after:5+10,after:6"),
        ("after:5+10:6+10", "after:5+10:6+10"),
        ("afterok:7_[1-2]?singleton", "afterok:7_1:7_2?singleton"),
        ("123,456", "afterany:123,afterany:456"),
        ("afternotok:3_*", "afternotok:3"),
    ],
)
def test_format_canonical(text: str, canonical: str) -> None:
    assert format_dependency(parse_dependency(text)) == canonical
    assert str(parse_dependency(text)) == canonical


_refs = st.builds(
    JobRef,
    job_id=st.integers(min_value=1, max_value=10**7),
    task_id=st.one_of(st.none(), st.integers(min_value=0, max_value=1000)),
)
_job_terms = st.builds(
    DependencyTerm,
    type=st.sampled_from(["after", "afterany", "afterok", "afternotok"]),
    job_ids=st.lists(_refs, min_size=1, max_size=4, unique=True).map(tuple),  # one condition per job
    delay_minutes=st.one_of(st.just(0), st.integers(min_value=1, max_value=10_000)),
)
_terms = st.one_of(_job_terms, st.just(DependencyTerm("singleton")))


@st.composite
def _dependencies(draw: st.DrawFn) -> Dependency:
    terms = tuple(draw(st.lists(_terms, min_size=1, max_size=5)))
    # A single term has no separator, so it always reads back as kind_all.
    kind_all = True if len(terms) == 1 else draw(st.booleans())
    return Dependency(kind_all=kind_all, terms=terms)


@given(_dependencies())
def test_format_parse_round_trip(dep: Dependency) -> None:
    text = format_dependency(dep)
    assert parse_dependency(text) == dep
    assert format_dependency(parse_dependency(text)) == text


def test_a_job_named_twice_is_one_condition() -> None:
    dep = parse_dependency("afterok:5:5_1:5:5_[0-2]")
    assert dep.terms[0].job_ids == (JobRef(5), JobRef(5, 1), JobRef(5, 0), JobRef(5, 2))
    assert format_dependency(dep) == "afterok:5:5_1:5_0:5_2"


def test_a_dependency_names_a_bounded_number_of_jobs() -> None:
    # Task lists expand: a few of 100,000 tasks would cost a submission minutes and each of
    # its jobs megabytes of stored text (an array's id alone names all of its tasks).
    assert len(parse_dependency(f"afterok:6_[1-{MAX_REFS}]").terms[0].job_ids) == MAX_REFS
    for text, rule in [
        ("afterok:6_[0-99999]", f"more than the maximum of {MAX_REFS} tasks"),
        (f"afterok:6_[1-{MAX_REFS}]:7", f"names more than {MAX_REFS} jobs and array tasks"),
        ("afterok:" + ":".join(f"{n}_[0-999]" for n in range(1, 300)), f"names more than {MAX_REFS} jobs"),
        ("afterok:6_[1-600]?afternotok:7_[1-600]", f"names more than {MAX_REFS} jobs"),
    ]:
        with pytest.raises(SpecError, match=re.escape(rule)) as caught:
            parse_dependency(text)
        assert caught.value.field == "dependency"
    # The same task named again in another term counts once.
    assert len(parse_dependency(f"afterok:6_[1-{MAX_REFS}],afternotok:6_[1-{MAX_REFS}]").terms) == 2


@given(st.text(max_size=25))
def test_parse_only_raises_spec_error(text: str) -> None:
    try:
        dep = parse_dependency(text)
    except SpecError as err:
        assert err.field == "dependency"
    else:
        assert dep.terms


# --- evaluation ------------------------------------------------------------------------------


def status(state: str, started_ago: int | None = None, ended_ago: int | None = None) -> JobStatus:
    start = NOW - timedelta(minutes=started_ago) if started_ago is not None else None
    end = NOW - timedelta(minutes=ended_ago) if ended_ago is not None else None
    return JobStatus(state, start, end)


def evaluate(
    text: str,
    states: Mapping[int, JobStatus] | Mapping[JobRef, JobStatus],
    *,
    blocked: bool = False,
) -> DependencyResult:
    mapping = {k if isinstance(k, JobRef) else JobRef(k): v for k, v in states.items()}
    return evaluate_dependency(
        parse_dependency(text), mapping, now=NOW, user_singleton_blocked=blocked
    )


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        (status("PENDING"), WAIT),
        (status("RUNNING", started_ago=1), SAT),
        (status("COMPLETED", started_ago=5, ended_ago=1), SAT),
        (status("CANCELLED", ended_ago=1), SAT),  # cancelled before it ever started
        (status("FAILED", started_ago=2, ended_ago=1), SAT),
    ],
)
def test_after(job: JobStatus, expected: DependencyResult) -> None:
    assert evaluate("after:1", {1: job}) is expected


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        (status("RUNNING", started_ago=5), WAIT),
        (status("RUNNING", started_ago=10), SAT),
        (status("RUNNING", started_ago=11), SAT),
        (status("CANCELLED", ended_ago=3), WAIT),
        (status("CANCELLED", ended_ago=10), SAT),
        (status("RUNNING"), SAT),  # no start time known: the delay is not applied
        (status("PENDING"), WAIT),
    ],
)
def test_after_with_delay(job: JobStatus, expected: DependencyResult) -> None:
    assert evaluate("after:1+10", {1: job}) is expected


@pytest.mark.parametrize(
    ("state", "afterany", "afterok", "afternotok"),
    [
        ("PENDING", WAIT, WAIT, WAIT),
        ("RUNNING", WAIT, WAIT, WAIT),
        ("COMPLETED", SAT, SAT, NEVER),
        ("FAILED", SAT, NEVER, SAT),
        ("TIMEOUT", SAT, NEVER, SAT),
        ("CANCELLED", SAT, NEVER, SAT),
        ("NODE_FAIL", SAT, NEVER, SAT),
        ("OUT_OF_MEMORY", SAT, NEVER, SAT),
        ("completed", SAT, SAT, NEVER),
    ],
)
def test_end_based_types(
    state: str,
    afterany: DependencyResult,
    afterok: DependencyResult,
    afternotok: DependencyResult,
) -> None:
    job = status(state, started_ago=10, ended_ago=1)
    assert evaluate("afterany:1", {1: job}) is afterany
    assert evaluate("afterok:1", {1: job}) is afterok
    assert evaluate("afternotok:1", {1: job}) is afternotok


def test_delay_on_end_based_types_counts_from_end() -> None:
    assert evaluate("afterok:1+5", {1: status("COMPLETED", 10, 3)}) is WAIT
    assert evaluate("afterok:1+5", {1: status("COMPLETED", 10, 5)}) is SAT
    assert evaluate("afternotok:1+5", {1: status("FAILED", 10, 6)}) is SAT
    assert evaluate("afterok:1+5", {1: status("FAILED", 10, 6)}) is NEVER
    assert evaluate("afterany:1+60", {1: status("TIMEOUT", 100, 59)}) is WAIT


@pytest.mark.parametrize("text", ["after:9", "afterany:9", "afterok:9", "afternotok:9"])
def test_missing_job_is_never(text: str) -> None:
    assert evaluate(text, {}) is NEVER


def test_task_refs_are_distinct_keys() -> None:
    states = {JobRef(5, 1): status("COMPLETED", 2, 1), JobRef(5): status("RUNNING", 2)}
    assert evaluate("afterok:5_1", states) is SAT
    assert evaluate("afterok:5", states) is WAIT
    assert evaluate("afterok:5_2", states) is NEVER


def test_singleton() -> None:
    assert evaluate("singleton", {}, blocked=False) is SAT
    assert evaluate("singleton", {}, blocked=True) is WAIT
    assert evaluate("singleton,afterok:1", {1: status("COMPLETED", 2, 1)}, blocked=True) is WAIT


def test_all_semantics() -> None:
    ok, running, failed = status("COMPLETED", 5, 1), status("RUNNING", 1), status("FAILED", 5, 1)
    assert evaluate("afterok:1,afterok:2", {1: ok, 2: ok}) is SAT
    assert evaluate("afterok:1,afterok:2", {1: ok, 2: running}) is WAIT
    assert evaluate("afterok:1,afterok:2", {1: running, 2: failed}) is NEVER
    # Job ids inside one term are ANDed like terms under ",".
    assert evaluate("afterok:1:2", {1: ok, 2: failed}) is NEVER


def test_any_semantics() -> None:
    ok, running, failed = status("COMPLETED", 5, 1), status("RUNNING", 1), status("FAILED", 5, 1)
    assert evaluate("afterok:1?afterok:2", {1: failed, 2: ok}) is SAT
    assert evaluate("afterok:1?afterok:2", {1: failed, 2: running}) is WAIT
    assert evaluate("afterok:1?afterok:2", {1: failed, 2: failed}) is NEVER
    assert evaluate("afterok:1?afterok:2", {1: failed}) is NEVER
    # Under "?" Slurm ORs every job id, including those sharing a term.
    assert evaluate("afterok:1:2?afterok:3", {1: failed, 2: ok, 3: failed}) is SAT
    assert evaluate("afterok:1?singleton", {1: failed}, blocked=True) is WAIT


def test_empty_dependency_is_satisfied() -> None:
    assert (
        evaluate_dependency(Dependency(True, ()), {}, now=NOW, user_singleton_blocked=True) is SAT
    )


def test_result_values_are_the_documented_strings() -> None:
    assert [r.value for r in DependencyResult] == ["satisfied", "waiting", "never"]


_statuses = st.builds(
    JobStatus,
    state=st.sampled_from(["PENDING", "RUNNING", *TERMINAL_STATES]),
    start_time=st.one_of(st.none(), st.just(NOW - timedelta(minutes=30))),
    end_time=st.one_of(st.none(), st.just(NOW - timedelta(minutes=2))),
)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["after", "afterany", "afterok", "afternotok"]),
            st.integers(min_value=1, max_value=6),
            st.sampled_from([0, 1, 10]),
        ),
        min_size=1,
        max_size=6,
    ),
    st.dictionaries(st.integers(min_value=1, max_value=6), _statuses),
    st.booleans(),
)
def test_combination_is_fold_of_single_terms(
    atoms: list[tuple[str, int, int]], states: dict[int, JobStatus], kind_all: bool
) -> None:
    mapping = {JobRef(k): v for k, v in states.items()}
    terms = tuple(DependencyTerm(k, (JobRef(j),), d) for k, j, d in atoms)
    singles = [
        evaluate_dependency(Dependency(True, (t,)), mapping, now=NOW, user_singleton_blocked=False)
        for t in terms
    ]
    combined = evaluate_dependency(
        Dependency(kind_all, terms), mapping, now=NOW, user_singleton_blocked=False
    )
    if kind_all:
        expected = NEVER if NEVER in singles else SAT if all(s is SAT for s in singles) else WAIT
    else:
        expected = SAT if SAT in singles else NEVER if all(s is NEVER for s in singles) else WAIT
    assert combined is expected


# --- arrays ----------------------------------------------------------------------------------


def test_aggregate_array_status() -> None:
    t0, t1 = NOW - timedelta(minutes=30), NOW - timedelta(minutes=20)
    e0, e1 = NOW - timedelta(minutes=10), NOW - timedelta(minutes=5)
    done = [JobStatus("COMPLETED", t1, e0), JobStatus("COMPLETED", t0, e1)]
    assert aggregate_array_status(done) == JobStatus("COMPLETED", t0, e1)
    mixed = [JobStatus("COMPLETED", t0, e0), JobStatus("TIMEOUT", t1, e1)]
    assert aggregate_array_status(mixed) == JobStatus("TIMEOUT", t0, e1)
    running = [JobStatus("COMPLETED", t0, e0), JobStatus("RUNNING", t1)]
    assert aggregate_array_status(running) == JobStatus("RUNNING", t0, None)
    pending = [JobStatus("RUNNING", t1), JobStatus("PENDING")]
    assert aggregate_array_status(pending) == JobStatus("PENDING", t1, None)
    with pytest.raises(ValueError):
        aggregate_array_status([])


def test_whole_array_dependency_uses_aggregate() -> None:
    tasks = [status("COMPLETED", 9, 3), status("FAILED", 9, 2)]
    states = {JobRef(70): aggregate_array_status(tasks)}
    assert evaluate("afterok:70", states) is NEVER
    assert evaluate("afternotok:70", states) is SAT
    assert evaluate("afterany:70", states) is SAT
    one_pending = {JobRef(70): aggregate_array_status([status("RUNNING", 1), status("PENDING")])}
    assert evaluate("after:70", one_pending) is WAIT


# --- aftercorr -----------------------------------------------------------------------------------
def test_aftercorr_parses_and_formats() -> None:
    assert parse_dependency("AfterCorr:5:6_2") == Dependency(True, (term("aftercorr", 5, JobRef(6, 2)),))
    assert format_dependency(parse_dependency("aftercorr:5+3")) == "aftercorr:5+3"


@pytest.mark.parametrize(
    ("task_state", "expected"),
    [("PENDING", WAIT), ("RUNNING", WAIT), ("COMPLETED", SAT), *((s, NEVER) for s in FAILURE_STATES)],
)
def test_aftercorr_follows_the_task_of_the_same_index(task_state: str, expected: DependencyResult) -> None:
    # Array 5's task 3 decides for the dependent's task 3, whatever the array as a whole does.
    states = {
        JobRef(5): status("FAILED", 10, 1) if expected is SAT else status("COMPLETED", 10, 1),
        JobRef(5, 3): status(task_state, 10, 1),
    }
    dep = parse_dependency("aftercorr:5")
    assert evaluate_dependency(dep, states, now=NOW, user_singleton_blocked=False, array_task_id=3) is expected


def test_aftercorr_falls_back_to_the_whole_job() -> None:
    dep = parse_dependency("aftercorr:5")
    whole = {JobRef(5): status("COMPLETED", 10, 1)}
    # No task 3 in job 5 (or job 5 is no array): the job as a whole, as afterok.
    assert evaluate_dependency(dep, whole, now=NOW, user_singleton_blocked=False, array_task_id=3) is SAT
    # The dependent is no array task: the same.
    assert evaluate_dependency(dep, whole, now=NOW, user_singleton_blocked=False) is SAT
    failed = {JobRef(5): status("TIMEOUT", 10, 1)}
    assert evaluate_dependency(dep, failed, now=NOW, user_singleton_blocked=False, array_task_id=3) is NEVER
    assert evaluate_dependency(dep, {}, now=NOW, user_singleton_blocked=False, array_task_id=3) is NEVER
    # A named task too gives way to the task of the dependent's own id, where there is one
    # (Slurm looks up the ref's job id and the dependent's task id first).
    named = parse_dependency("aftercorr:5_1")
    states = {JobRef(5, 1): status("COMPLETED", 10, 1), JobRef(5, 3): status("FAILED", 10, 1)}
    assert evaluate_dependency(named, states, now=NOW, user_singleton_blocked=False, array_task_id=3) is NEVER
    assert evaluate_dependency(named, states, now=NOW, user_singleton_blocked=False, array_task_id=2) is SAT
    assert evaluate_dependency(named, states, now=NOW, user_singleton_blocked=False) is SAT


def test_corresponding_refs() -> None:
    dep = parse_dependency("aftercorr:5:6_1,afterok:7")
    assert corresponding_refs(dep, 2) == {JobRef(5, 2), JobRef(6, 2)}
    assert corresponding_refs(dep, None) == set()


# --- as slurmctld shows it ---------------------------------------------------------------------
def describe(text: str, states: Mapping[int, JobStatus], *, blocked: bool = False,
             arrays: frozenset[int] = frozenset()) -> str | None:
    mapping = {JobRef(k): v for k, v in states.items()}
    return describe_dependency(parse_dependency(text), mapping, now=NOW, user_singleton_blocked=blocked, arrays=arrays)


@pytest.mark.parametrize(
    ("text", "states", "shown"),
    [
        # Each condition not fulfilled, with its state; a fulfilled one is dropped.
        ("afterok:1:2", {1: status("RUNNING", 5), 2: status("COMPLETED", 5, 1)}, "afterok:1(unfulfilled)"),
        ("afterok:1,afternotok:2", {1: status("PENDING"), 2: status("COMPLETED", 5, 1)},
         "afterok:1(unfulfilled),afternotok:2(failed)"),
        ("afterany:1+10", {1: status("FAILED", 5, 3)}, "afterany:1+10(unfulfilled)"),
        # Satisfied as a whole: nothing left to show (squeue prints "(null)").
        ("afterok:1", {1: status("COMPLETED", 5, 1)}, None),
        ("afterok:1?afterok:2", {1: status("FAILED", 5, 1), 2: status("COMPLETED", 5, 1)}, None),
        ("afterok:1?afterok:2", {1: status("FAILED", 5, 1), 2: status("RUNNING", 5)},
         "afterok:1(failed)?afterok:2(unfulfilled)"),
        ("after:1", {}, "after:1(failed)"),  # a job gone (purged): never
        ("singleton", {}, None),
    ],
)
def test_describe_as_slurmctld_writes_it(text: str, states: Mapping[int, JobStatus], shown: str | None) -> None:
    assert describe(text, states) == shown


def test_describe_names_a_whole_array_with_a_star_and_shows_singleton() -> None:
    states = {7: status("RUNNING", 5), 8: status("PENDING")}
    assert describe("afterok:7:8", states, arrays=frozenset({7})) == "afterok:7_*(unfulfilled),afterok:8(unfulfilled)"
    assert describe("singleton", {}, blocked=True) == "singleton(unfulfilled)"
    task = {JobRef(7, 2): status("RUNNING", 5)}
    assert describe_dependency(parse_dependency("afterok:7_2"), task, now=NOW, user_singleton_blocked=False,
                               arrays=frozenset({7})) == "afterok:7_2(unfulfilled)"
