"""What the Slurm commands ask the server for: no more than the view shows."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from conductor.cli.common import ACTIVE_STATES
from conductor.cli.jobsel import fetch_jobs


class RecordingClient:
    """The one method fetch_jobs calls, answering with what a server would hold."""

    def __init__(self, jobs: list[dict[str, Any]]) -> None:
        self.jobs = jobs
        self.queries: list[dict[str, Any]] = []

    def list_jobs(self, *, each_page: Callable[[list[dict[str, Any]]], object] | None = None, **query: Any) -> list[dict[str, Any]]:
        self.queries.append(query)
        wanted = set(query["state"].split(",")) if "state" in query else None
        found = [j for j in self.jobs if wanted is None or j["state"] in wanted]
        if each_page is not None and found:
            each_page(found)  # one page
        return found


JOBS = [
    {"job_id": 1, "state": "CANCELLED", "user": "a", "name": "x", "partition": "p"},
    {"job_id": 2, "state": "RUNNING", "user": "a", "name": "x", "partition": "p"},
    {"job_id": 3, "state": "PENDING", "user": "a", "name": "x", "partition": "p"},
]


def test_squeues_default_states_reach_the_server_as_the_states_jobs_can_have() -> None:
    client = RecordingClient(JOBS)
    found = fetch_jobs(client, None, states=list(ACTIVE_STATES), since="2026-01-01T00:00:00+00:00")  # type: ignore[arg-type]
    assert client.queries == [{"state": "PENDING,RUNNING", "since": "2026-01-01T00:00:00+00:00"}]
    assert [j["job_id"] for j in found] == [2, 3]


def test_states_no_job_here_can_have_ask_nothing() -> None:
    client = RecordingClient(JOBS)
    assert fetch_jobs(client, None, states=["SUSPENDED", "CONFIGURING"]) == []  # type: ignore[arg-type]
    assert client.queries == []


def test_without_states_every_job_is_asked_for() -> None:
    client = RecordingClient(JOBS)
    assert [j["job_id"] for j in fetch_jobs(client, None)] == [1, 2, 3]  # type: ignore[arg-type]
    assert client.queries == [{}]


def test_a_job_list_that_names_no_job_is_refused_and_selects_nothing() -> None:
    """`scontrol hold ''`, `scontrol update JobId= ...`: read as no selection, an empty list
    acted on every job of the cluster. It is refused, and an empty selection fetches none."""
    import pytest

    from conductor.cli.common import UsageError
    from conductor.cli.jobsel import parse_job_specs

    for values in ([""], [" , "], [",", ""], ["  "]):
        with pytest.raises(UsageError, match="Invalid job id specified"):
            parse_job_specs(values)
    assert parse_job_specs([]) == []
    assert [spec.base for spec in parse_job_specs(["", "7"])] == [7]
    client = RecordingClient(JOBS)
    assert fetch_jobs(client, []) == [] and client.queries == []  # type: ignore[arg-type]


def _ended(job_id: int, seconds_ago: float) -> dict[str, Any]:
    end = datetime.fromtimestamp(time.time() - seconds_ago, tz=UTC).isoformat()
    return {"job_id": job_id, "state": "COMPLETED", "user": "a", "name": "x", "partition": "p", "end_time": end}


class ClosableClient(RecordingClient):
    def close(self) -> None:
        pass


def test_scancel_with_filters_asks_for_live_jobs_only(monkeypatch: Any) -> None:
    # `scancel -u a` read every ended job of the user's history to cancel none of them.
    from conductor.cli import scancel

    client = ClosableClient([_ended(1, 10)])
    monkeypatch.setattr(scancel, "Client", lambda: client)
    assert scancel.main(["-n", "nothing-has-this-name"]) == 0
    [query] = client.queries
    assert query["state"] == "PENDING,RUNNING" and query["name"] == "nothing-has-this-name"


def test_scontrol_show_job_shows_what_slurmctld_holds(monkeypatch: Any, capsys: Any) -> None:
    # Live jobs and those ended within MinJobAge, as squeue shows them; the history is sacct's.
    from conductor.cli import scontrol

    monkeypatch.setenv("CONDUCTOR_MIN_JOB_AGE", "300")
    client = ClosableClient([_ended(1, 3600), _ended(4, 10), *JOBS[1:]])
    monkeypatch.setattr(scontrol, "Client", lambda: client)
    assert scontrol.main(["show", "job"]) == 0
    shown = capsys.readouterr().out
    assert [line.split()[0] for line in shown.splitlines() if line.startswith("JobId=")] == [
        "JobId=2", "JobId=3", "JobId=4"
    ]
    assert "since" in client.queries[0]  # the server is asked for no job ended before
    assert scontrol.main(["show", "job", "1"]) == 1  # ended an hour ago: slurmctld has let it go
    assert capsys.readouterr().err == "slurm_load_jobs error: Invalid job id specified\n"
    assert scontrol.main(["show", "job", "4"]) == 0
    assert "JobId=4 " in capsys.readouterr().out
