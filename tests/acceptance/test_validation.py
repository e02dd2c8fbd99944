"""Every bad input gets a 4xx naming the field and the rule; nothing stored is harmed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import Api, ConductorProcess, running_up


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One server for the many refusals: none of them may change what it holds."""
    with running_up(tmp_path_factory.mktemp("validation"), "--cpus", "4") as server:
        client = Api(server.url)
        yield client
        client.close()


def submit_raw(api: Api, job: dict[str, Any], script: str = "#!/bin/bash\ntrue\n") -> tuple[int, dict[str, Any]]:
    response = api.http.post("/jobs/submit", json={"job": job, "script": script})
    return response.status_code, response.json()


@pytest.mark.parametrize(
    ("job", "field", "words"),
    [
        ({"time_limit": "1:2:3:4"}, "time_limit", "MM:SS"),
        ({"time_limit": "abc"}, "time_limit", "UNLIMITED"),
        ({"time_limit": "-5"}, "time_limit", ""),
        ({"memory_per_node": "12Q"}, "memory_per_node", ""),
        ({"memory_per_node": "-1G"}, "memory_per_node", ""),
        ({"memory_per_cpu": "lots"}, "memory_per_cpu", ""),
        ({"cpus_per_task": 0}, "cpus_per_task", "greater than or equal to 1"),
        ({"cpus_per_task": "four"}, "cpus_per_task", "integer"),
        ({"ntasks": -2}, "ntasks", ""),
        ({"nice": 10**9}, "nice", ""),
        ({"array": "5-1"}, "array", ""),
        ({"array": "0-9999999"}, "array", ""),
        ({"dependency": "afterok:"}, "dependency", ""),
        ({"begin_time": "yesterday-ish"}, "begin", ""),
        ({"open_mode": "overwrite"}, "open_mode", ""),
        ({"environment": {"A=B": "x"}}, "environment", "must not contain '='"),
        ({"environment": {"A\tB": "x"}}, "environment", "control characters"),
        ({"current_working_directory": "relative/dir"}, "current_working_directory", "absolute"),
        ({"partition": "nope"}, "partition", "Invalid partition"),
        ({"no_such_field": 1}, "no_such_field", ""),
        ({"name": "a\nb"}, "name", "control characters"),
        ({"signal": "B:@@"}, "signal", ""),
    ],
)
def test_bad_field_is_named(shared: Api, tmp_path: Path, job: dict[str, Any], field: str, words: str) -> None:
    before = shared.stats()
    status, body = submit_raw(shared, {"current_working_directory": str(tmp_path), **job})
    assert 400 <= status < 500, body
    assert field in body["detail"], body
    assert words in body["detail"], body
    assert shared.stats() == before


def test_request_no_node_can_satisfy(shared: Api, tmp_path: Path) -> None:
    for job in ({"cpus_per_task": 5}, {"ntasks": 3, "cpus_per_task": 2}, {"memory_per_node": "100T"}, {"nodes": 2}):
        status, body = submit_raw(shared, {"current_working_directory": str(tmp_path), **job})
        assert status == 400, body
        assert "Requested node configuration is not available" in body["detail"]


def test_script_and_environment_limits(start_conductor: Any, tmp_path: Path) -> None:
    server: ConductorProcess = start_conductor(
        "--cpus", "1", env={"CONDUCTOR_MAX_SCRIPT_BYTES": "2048", "CONDUCTOR_MAX_ENVIRONMENT_BYTES": "1024"}
    )
    api = Api(server.url)
    status, body = submit_raw(api, {"current_working_directory": str(tmp_path)}, "#!/bin/bash\n" + "#" * 4000)
    assert status in (400, 413) and "script" in body["detail"] and "2048" in body["detail"]
    status, body = submit_raw(api, {"current_working_directory": str(tmp_path), "environment": {"X": "y" * 2000}})
    assert status in (400, 413) and "environment" in body["detail"] and "1024" in body["detail"]
    status, body = submit_raw(api, {"current_working_directory": str(tmp_path)}, "   \n")
    assert status == 400 and "script" in body["detail"]


def test_malformed_bodies(shared: Api) -> None:
    api = shared
    response = api.http.post("/jobs/submit", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    response = api.http.post("/jobs/submit", json={"job": {}})
    assert response.status_code == 422 and "script" in response.json()["detail"]
    response = api.http.post("/jobs/submit", json=["a list"])
    assert response.status_code == 422


def test_bad_job_ids_in_paths(shared: Api) -> None:
    api = shared
    assert api.http.get("/jobs/query/abc").status_code == 400
    assert api.http.get("/jobs/query/99999").status_code == 404
    assert api.http.post("/jobs/cancel/-1").status_code in (400, 404)
    assert api.http.post("/jobs/cancel/424242").status_code == 404
    response = api.http.get("/jobs", params={"state": "SLEEPING"})
    assert response.status_code == 400 and "state" in response.json()["detail"]
    assert api.http.get("/jobs", params={"limit": 0}).status_code == 422


def test_seed_names_node_name_and_total_cpus(start_conductor: Any) -> None:
    server: ConductorProcess = start_conductor(env={"NODE_NAME": "worker-1", "TOTAL_CPUS": "3"})
    api = Api(server.url)
    nodes = api.http.get("/nodes").json()["nodes"]
    assert [(n["name"], n["cpus"]) for n in nodes] == [("worker-1", 3)]
    assert api.stats()["total_cpus"] == 3


def test_bad_command_line_flags_exit_non_zero(start_conductor: Any, tmp_path: Path) -> None:
    import subprocess
    import sys

    for args, words in (
        (["--cpus", "0"], "--cpus"),
        (["--cpus", "many"], "--cpus"),
        (["--memory", "12Q"], "--memory"),
        (["--port", "70000"], "--port"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "conductor", "up", *args],
            capture_output=True,
            text=True,
            env={"CONDUCTOR_HOME": str(tmp_path / "h"), "PATH": "/usr/bin:/bin"},
            timeout=60,
        )
        assert result.returncode != 0
        assert words in result.stderr


def test_fast_path_answers_as_the_framework_does(shared: Api, tmp_path: Path) -> None:
    """The ordinary submission takes api/fastpath.py; a slurmrestd header sends the same one
    through FastAPI. Both answer the same bytes' shape and store the same job."""
    body = {"job": {"current_working_directory": str(tmp_path), "name": "twin", "hold": True, "time_limit": "5"},
            "script": "#!/bin/bash\ntrue\n"}
    fast = shared.http.post("/jobs/submit", json=body)
    me = shared.job(int(fast.json()["job_id"]))["user"]
    framework = shared.http.post("/jobs/submit", json=body, headers={"X-SLURM-USER-NAME": me})
    assert fast.status_code == framework.status_code == 201
    assert fast.headers["content-type"] == framework.headers["content-type"] == "application/json"
    assert set(fast.json()) == set(framework.json()) == {"job_id", "array_task_ids", "message"}
    assert int(framework.json()["job_id"]) == int(fast.json()["job_id"]) + 1
    a, b = shared.job(int(fast.json()["job_id"])), shared.job(int(framework.json()["job_id"]))
    for key in ("job_id", "submit_time", "eligible_time", "elapsed", "standard_output", "standard_error"):
        a.pop(key), b.pop(key)
    assert a == b
    # test_only answers 200 through either path; refusals are the framework's own answers.
    probe = shared.http.post("/jobs/submit", json={**body, "job": {**body["job"], "test_only": True}})
    assert probe.status_code == 200 and probe.json()["job_id"] is None
    bad = shared.http.post("/jobs/submit", json={**body, "job": {**body["job"], "time_limit": "1:2:3:4"}})
    assert bad.status_code in (400, 422) and "time_limit" in bad.text
    text_plain = shared.http.post(
        "/jobs/submit", content=json.dumps(body), headers={"Content-Type": "text/plain"}
    )
    assert text_plain.status_code == 422, text_plain.text
