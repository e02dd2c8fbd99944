"""Pages of `list_jobs` over several states: on PostgreSQL each state's jobs are read on their
own, in id order, and merged (store/jobs.py, _page_query); SQLite reads them in one. Whatever the page size, cursor, offset and
other filters, the pages are the matching jobs in id order, each once; a read of chosen
columns leaves the others unset."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from conductor.store import Store, schema
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


@pytest.mark.parametrize("states", [["PENDING", "RUNNING"], ["RUNNING", "COMPLETED", "FAILED"], STATES, ["FAILED"]])
@pytest.mark.parametrize("page", [1, 3, 7, 100])
def test_pages_follow_the_cursor_through_every_state(
    store: Store, jobs: list[tuple[int, str, str]], states: list[str], page: int
) -> None:
    expected = [i for i, state, _ in jobs if state in states]
    seen: list[int] = []
    after = None
    while True:
        found, total = store.list_jobs(states=states, after=after, limit=page)
        assert total == len(expected)
        seen += [job.id for job in found]
        if len(found) < page:
            break
        after = found[-1].id
    assert seen == expected


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
