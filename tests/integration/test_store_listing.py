"""Pages of `list_jobs` over several states: a page's ids are found first, then its rows read
(store/jobs.py, _page_query); on PostgreSQL each state's ids are read on their own, in id order,
and merged. Whatever the page size, cursor, offset and other filters, the pages are the
matching jobs in id order, each once; a read of chosen columns leaves the others unset."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, update
from starlette.responses import Response

from conductor.store import Store, schema
from conductor.store import jobs as job_queries
from tests.integration.test_store_contract import job_row

STATES = ["PENDING", "RUNNING", "COMPLETED", "FAILED"]


@pytest.fixture
def jobs(store: Store) -> list[tuple[int, str, str]]:
    """40 jobs with their states and users interleaved: (id, state, user)."""
    ids = store.submit([job_row(user_name=f"u{n % 3}") for n in range(40)])
    made = [(i, STATES[(n * 7) % 4] if n % 5 else "PENDING", f"u{n % 3}") for n, i in enumerate(ids)]
    # Straight to the table: the states only matter here, not how jobs came to them.
    with store.engine.begin() as conn:
        for i, state, _ in made:
            conn.execute(update(schema.jobs).where(schema.jobs.c.id == i).values(state=state))
    return made


def _follow_the_cursor(store: Store, expected: list[int], page: int, **filters: Any) -> None:
    """Page after page from the cursor, every job `expected` once, in order, and each page's
    count the count of all."""
    seen: list[int] = []
    after = None
    while True:
        found, total = store.list_jobs(after=after, limit=page, **filters)
        assert total == len(expected)
        seen += [job.id for job in found]
        if len(found) < page:
            break
        after = found[-1].id
    assert seen == expected


@pytest.mark.parametrize("states", [["PENDING", "RUNNING"], ["RUNNING", "COMPLETED", "FAILED"], STATES, ["FAILED"]])
@pytest.mark.parametrize("page", [1, 3, 7, 100])
def test_pages_follow_the_cursor_through_every_state(
    store: Store, jobs: list[tuple[int, str, str]], states: list[str], page: int
) -> None:
    expected = [i for i, state, _ in jobs if state in states]
    _follow_the_cursor(store, expected, page, states=states)


def test_offsets_other_filters_and_chosen_columns(store: Store, jobs: list[tuple[int, str, str]]) -> None:
    states = ["PENDING", "COMPLETED", "PENDING"]  # a state named twice counts once
    expected = [i for i, state, user in jobs if state in states and user == "u1"]
    assert len(expected) > 6
    found, total = store.list_jobs(states=states, users=["u1"], offset=2, limit=4)
    assert total == len(expected)
    assert [job.id for job in found] == expected[2:6]
    found, _ = store.list_jobs(states=states, users=["u1"], limit=100, columns={"state", "user_name"})
    assert [(job.id, job.state, job.user_name) for job in found] == [
        (i, state, user) for i, state, user in jobs if i in expected
    ]
    with pytest.raises(AttributeError):
        _ = found[0].name  # not read


def test_states_are_written_into_the_statement(store: Store, jobs: list[tuple[int, str, str]]) -> None:
    """Not bound: a statement PostgreSQL has prepared would otherwise get one plan for any state
    (store/jobs.py, _state), which walked the whole history for a page of live jobs."""
    statements: list[tuple[str, object]] = []

    def seen(conn: object, cursor: object, statement: str, parameters: Any, context: object, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        for states in (["PENDING"], ["PENDING", "RUNNING"]):
            statements.clear()
            found, total = store.list_jobs(states=states, after=0, limit=5)
            assert total == sum(1 for _, state, _ in jobs if state in states) and found
            assert len(statements) == 2  # the page and its count
            for statement, parameters in statements:
                assert all(f"'{state}'" in statement for state in states), statement
                values = list(parameters.values() if isinstance(parameters, dict) else parameters)
                assert not any(state in values for state in states), parameters
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)


def test_a_page_of_several_states_is_never_a_sort_of_whole_rows(store: Store, jobs: list[tuple[int, str, str]]) -> None:
    """No index gives jobs of several states in id order. The page's ids are found first, and
    only then its rows read: PostgreSQL merges each state's ids, read in id order; SQLite sorts
    the ids it finds in the index on state and id, not whole rows, of which it would read every
    live job's for each page."""
    statements: list[tuple[str, Any]] = []

    def seen(conn: object, cursor: object, statement: str, parameters: Any, context: object, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "count(" not in statement:
            statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        found, _ = store.list_jobs(states=["PENDING", "RUNNING"], after=0, limit=5, columns={"name"})
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
    assert len(found) == 5
    [(statement, parameters)] = statements
    # The page's rows are read by their ids.
    assert "WHERE jobs.id IN (SELECT" in " ".join(statement.split()), statement
    if store.dialect == "postgresql":
        # One part a state, each reading ids alone, merged.
        parts = " ".join(statement.split()).split(" UNION ALL ")
        assert len(parts) == 2, statement
        assert all("SELECT jobs.id AS id FROM jobs WHERE jobs.state = " in part for part in parts), statement
        return
    with store.engine.connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
    # Rows: (id, parent, -, detail). Each sort is in a (sub)query that reads the index alone.
    sorts = [row[1] for row in plan if "TEMP B-TREE" in row[-1]]
    for parent in sorts:
        assert any("COVERING INDEX" in row[-1] for row in plan if row[1] == parent), plan


def _ended(store: Store, jobs: list[tuple[int, str, str]], now: datetime) -> dict[int, datetime | None]:
    """End times as the transitions set them: none for a live job, one for each ended job, some
    of them a minute ago and the others ten hours ago."""
    ends: dict[int, datetime | None] = {}
    with store.engine.begin() as conn:
        for n, (i, state, _) in enumerate(jobs):
            ends[i] = None if state in ("PENDING", "RUNNING") else now - timedelta(minutes=1 if n % 3 else 600)
            conn.execute(update(schema.jobs).where(schema.jobs.c.id == i).values(end_time=ends[i]))
    return ends


@pytest.mark.parametrize("states", [None, ["COMPLETED"], ["PENDING", "FAILED"], STATES, ["PENDING", "RUNNING"]])
@pytest.mark.parametrize("page", [1, 4, 100])
@pytest.mark.parametrize("cap", [5_000, 3])
def test_a_listing_bounded_by_a_time(
    store: Store, jobs: list[tuple[int, str, str]], monkeypatch: pytest.MonkeyPatch, states: list[str] | None,
    page: int, cap: int,
) -> None:
    """The jobs alive at any point after `since` (squeue's views of ended jobs: those that ended
    within MinJobAge), page after page and with other filters: the live ones read by state, the
    ended ones by the ids found first; and, with more of those than the cap (3 here), by the
    bound as one condition."""
    monkeypatch.setattr(job_queries, "_ENDED_SINCE_CAP", cap)
    now = datetime.now(UTC)
    ends = _ended(store, jobs, now)
    since = now - timedelta(minutes=5)
    expected = [
        i for i, state, _ in jobs
        if (states is None or state in states) and ((end := ends[i]) is None or end >= since)
    ]
    assert expected
    _follow_the_cursor(store, expected, page, states=states, since=since)
    users = {i: user for i, _, user in jobs}
    mine = [i for i in expected if users[i] == "u1"]
    found, total = store.list_jobs(states=states, users=["u1"], since=since, offset=1, limit=page)
    assert (total, [job.id for job in found]) == (len(mine), mine[1 : 1 + page])
    found, _ = store.list_jobs(states=states, since=since, offset=2, limit=page, columns={"state"})
    assert [job.id for job in found] == expected[2 : 2 + page]


def test_the_jobs_that_ended_since_come_from_the_index_on_end_time(
    store: Store, jobs: list[tuple[int, str, str]]
) -> None:
    """Not from a walk of the whole history: the page's ids come from the live jobs' states and
    from a read of the end times alone, and no statement holds the bound as one condition,
    which no index serves in id order. On PostgreSQL the time is written into that read (a plan
    made for any time expects a third of the table, and reads it whole)."""
    now = datetime.now(UTC)
    _ended(store, jobs, now)
    statements: list[tuple[str, Any]] = []

    def seen(conn: object, cursor: object, statement: str, parameters: Any, context: object, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "count(" not in statement:
            statements.append((" ".join(statement.split()), parameters))

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        found, _ = store.list_jobs(since=now - timedelta(minutes=5), limit=100, count=False)
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
    assert found
    assert not any("end_time IS NULL" in statement for statement, _ in statements), statements
    [(ended, parameters)] = [(s, p) for s, p in statements if "end_time >=" in s]
    assert " ORDER BY " not in ended and "jobs.state =" not in ended, ended
    if store.dialect == "postgresql":
        values = list(parameters.values() if isinstance(parameters, dict) else parameters)
        assert not any(isinstance(value, datetime) for value in values), parameters
        return
    with store.engine.connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + ended, parameters).all()
    assert any("ix_jobs_end_time" in row[-1] for row in plan), plan


def _vary(store: Store, jobs: list[tuple[int, str, str]]) -> None:
    """Times (some with microseconds), flags and texts set on some jobs and not on others."""
    started = datetime(2026, 3, 1, 12, 30, 5, 250_000, tzinfo=UTC)
    with store.engine.begin() as conn:
        for n, (i, _, _) in enumerate(jobs[:8]):
            conn.execute(
                update(schema.jobs)
                .where(schema.jobs.c.id == i)
                .values(
                    start_time=started + timedelta(minutes=n) if n % 2 else None,
                    end_time=started + timedelta(hours=1, microseconds=0) if n % 4 == 1 else None,
                    held=n % 3 == 0,
                    exclusive=n % 2 == 0,
                    node_list=f"n{n}" if n % 2 else None,
                    cpu_ids="0-3" if n % 2 else None,
                )
            )


def test_a_chosen_column_reads_as_the_whole_job_has_it(store: Store, jobs: list[tuple[int, str, str]]) -> None:
    """Chosen columns come from the driver's rows and are converted only when read: every
    field must still equal, with its type, the same field of the job read whole (times aware
    in UTC, flags booleans, missing values None), on each database."""
    _vary(store, jobs)
    whole, _ = store.list_jobs(limit=100)
    # A submission's Idempotency-Key and digest are no field of a job: its submitter's, never listed.
    private = schema.SUBMISSION_KEY_COLUMNS
    columns = [c.name for c in schema.jobs.c if c.name not in ("script", "environment", *private)]
    for column in private:
        partial, _ = store.list_jobs(limit=100, columns={column})
        assert not any(hasattr(job, column) for job in (*whole, *partial)), column
    for column in columns:
        partial, _ = store.list_jobs(limit=100, columns={column})
        assert len(partial) == len(whole)
        for full, chosen in zip(whole, partial, strict=True):
            value, expected = getattr(chosen, column), getattr(full, column)
            assert (value, type(value)) == (expected, type(expected)), (column, full.id)
            if isinstance(value, datetime):
                assert value.utcoffset() == timedelta(0)
    # Several columns at once, in any order of reading.
    partial, _ = store.list_jobs(limit=100, columns={"held", "start_time", "state", "node_list"})
    assert [(j.node_list, j.state, j.start_time, j.held) for j in partial] == [
        (j.node_list, j.state, j.start_time, j.held) for j in whole
    ]


def test_every_field_projected_from_chosen_columns_is_the_whole_jobs(
    store: Store, jobs: list[tuple[int, str, str]]
) -> None:
    """`GET /jobs?fields=` projects jobs read with chosen columns, taking the columns that
    need no conversion straight from the row: all fields at once, and each alone, must be what
    the whole job gives, on each database."""
    from conductor.api.job_records import FIELDS, columns_of, project, selected_fields

    _vary(store, jobs)
    now = datetime.now(UTC)
    whole, _ = store.list_jobs(limit=100)
    for selection in [",".join(FIELDS), *FIELDS]:
        names = selected_fields(selection)
        assert names is not None
        # Without multifactor weights a priority reads fewer columns (and none is computed).
        for multifactor in (True, False):
            chosen, _ = store.list_jobs(limit=100, columns=columns_of(names, multifactor=multifactor))
            assert [project(job, now, None, names) for job in chosen] == [
                project(job, now, None, names) for job in whole
            ]
    assert columns_of(("job_id", "scheduling_priority"), multifactor=False) == {"id", "state", "held", "priority", "nice"}


def test_a_page_of_rows_holds_what_a_page_of_objects_does(store: Store, jobs: list[tuple[int, str, str]]) -> None:
    """`layout=rows`: each job's values in the order of the page's `fields`, made from chosen
    columns as from whole jobs, are the objects' values; an empty page names its fields too."""
    from conductor.api.job_records import FIELDS, columns_of, job_page, selected_fields

    _vary(store, jobs)
    now = datetime.now(UTC)
    whole, _ = store.list_jobs(limit=100)

    def body(page: list[Any], names: tuple[str, ...], rows: bool) -> Any:
        response = job_page(page, now, names, lambda _: {}, total=len(page), next_after=7, rows=rows)
        assert isinstance(response, Response)
        return json.loads(bytes(response.body))

    for selection in [",".join(FIELDS), "state,user", "elapsed,scheduling_priority", "node_list"]:
        names = selected_fields(selection)
        assert names is not None
        chosen, _ = store.list_jobs(limit=100, columns=columns_of(names))
        objects = body(whole, names, rows=False)
        # Pages of jobs read one way or the other, or both (an archived listing merges them).
        for page in (chosen, whole, chosen[:20] + whole[20:]):
            document = body(page, names, rows=True)
            assert list(document) == ["next_after", "total", "fields", "rows"]
            assert sorted(document["fields"]) == sorted(names)
            assert [dict(zip(document["fields"], row, strict=True)) for row in document["rows"]] == objects["jobs"]
        assert body([], names, rows=True)["fields"] == document["fields"]
