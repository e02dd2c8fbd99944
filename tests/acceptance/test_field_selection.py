"""`GET /jobs?fields=...`: each job holds only the fields asked for, read from only the
columns they come from (api/job_records.py), and each equals the same field of the whole
record. squeue asks for the fields its format reads and prints what whole records print."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import Api, ConductorProcess, clean_env, running_up

from conductor.api.job_records import FIELDS
from conductor.api.models import JobRecord
from conductor.cli.dependency_states import DESCRIPTION, DependencyStates
from conductor.cli.squeue_format import collapse_pending_arrays, default_sort, parse_format, render


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorProcess]:
    with running_up(tmp_path_factory.mktemp("fields") / "home", "--cpus", "2") as process:
        yield process


@pytest.fixture(scope="module")
def api(server: ConductorProcess) -> Iterator[Api]:
    client = Api(server.url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def jobs(api: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    """Jobs in every situation a view shows: ended well and badly, running, pending behind a
    dependency, a held array, with output patterns, a comment and limits."""
    work = tmp_path_factory.mktemp("work")
    done = api.submit("#!/bin/bash\necho hi\n", current_working_directory=str(work), name="done",
                      standard_output=str(work / "%x-%j.out"), comment="a comment", time_limit=30)
    failed = api.submit("#!/bin/bash\nexit 3\n", current_working_directory=str(work), name="failed",
                        standard_error=str(work / "%j.err"), memory_per_cpu=100)
    unusable = api.submit("#!/bin/bash\ntrue\n", current_working_directory=str(work / "missing"), name="nodir")
    api.wait_all([done, failed, unusable])
    running = api.submit("#!/bin/bash\nsleep 300\n", current_working_directory=str(work), name="sleeper",
                         cpus_per_task=1, exclusive="user")
    api.wait_state(running, "RUNNING")
    waiting = api.submit("#!/bin/bash\ntrue\n", current_working_directory=str(work), name="after",
                         dependency=f"afterok:{running}", nice=10)
    response = api.http.post("/jobs/submit", json={
        "job": {"current_working_directory": str(work), "array": "1-6%2", "hold": True, "name": "held"},
        "script": "#!/bin/bash\ntrue\n",
    })
    assert response.status_code == 201, response.text
    yield [done, failed, unusable, running, waiting, int(response.json()["job_id"])]
    api.cancel(running)  # jobs outlive the server that started them
    api.wait_state(running, "CANCELLED")


def _selected(api: Api, fields: str, **params: Any) -> list[dict[str, Any]]:
    return api.jobs(fields=fields, limit=3, **params)  # small pages: the cursor is followed too


def test_every_field_selected_alone_equals_the_whole_records(api: Api, jobs: list[int]) -> None:
    assert set(FIELDS) == set(JobRecord.model_fields)
    whole = {j["job_id"]: j for j in api.jobs()}
    assert {"COMPLETED", "FAILED", "RUNNING", "PENDING"} <= {j["state"] for j in whole.values()}
    for name in FIELDS:
        selected = _selected(api, name)
        assert [j["job_id"] for j in selected] == sorted(whole)  # every job, once, in id order
        for job in selected:
            assert set(job) == {"job_id", name}
            expected = whole[job["job_id"]][name]
            if name == "elapsed" and job["job_id"] == jobs[3]:
                assert abs(job[name] - expected) <= 5  # it runs: a later request counts later
            else:
                assert job[name] == expected, (name, job)


def test_fields_combine_and_filter_like_whole_records(api: Api, jobs: list[int]) -> None:
    selected = _selected(api, "state,user,standard_output,scheduling_priority,usage", state="PENDING,RUNNING")
    whole = api.jobs(state="PENDING,RUNNING")
    keys = ("job_id", "state", "user", "standard_output", "scheduling_priority", "usage")
    assert selected == [{k: j[k] for k in keys} for j in whole]


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ("bogus", "'bogus' is not a field of a job record"),
        ("", "name at least one field"),
        (" , ", "name at least one"),
        ("state," + "x" * 5000, "'" + "x" * 40 + "' is not a field"),  # the name is cut in the message
    ],
)
def test_a_bad_selection_is_a_400_naming_the_parameter(api: Api, fields: str, rule: str) -> None:
    response = api.http.get("/jobs", params={"fields": fields})
    assert response.status_code == 400, response.text  # as every other bad value of a query
    assert response.json()["field"] == "fields"
    assert rule in response.json()["detail"]


def test_squeue_prints_from_its_fields_what_whole_records_print(
    api: Api, jobs: list[int], server: ConductorProcess, tmp_path: Path
) -> None:
    # Every code but those counting from now (a later second would differ).
    fmt = "|".join(f"%{code}" for code in "aABcCdDeEFgGhHiIjJkKlmnNoOpPqQrRsStTuUvVwWxXyYzZ")
    result = subprocess.run(
        [sys.executable, "-m", "conductor", "squeue", "-t", "all", "-o", fmt], capture_output=True, text=True,
        cwd=tmp_path, env=clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_TOKEN=server.token), timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    records = api.jobs()

    class Server:  # what the views ask besides the records: how each dependency stands
        def get(self, path: str, **params: Any) -> Any:
            return api.http.get(path, params=params).json()

    DependencyStates(Server()).describe(records)
    assert any(str(record.get(DESCRIPTION)).endswith("(unfulfilled)") for record in records)
    whole = default_sort(collapse_pending_arrays(records))
    assert result.stdout == render(parse_format(fmt), whole, header=True)
    assert len(result.stdout.splitlines()) == 1 + 5 + 1  # header, five jobs, the held array as one line


def test_bytes_that_are_not_text_in_the_selection_are_a_400(api: Api) -> None:
    response = api.http.get("/jobs?fields=state,%FF%ED%B3%BF")
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "fields"
