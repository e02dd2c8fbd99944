"""The slurmrestd v0.0.40 subset: shapes of every endpoint, over a real `conductor up`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import Api, ConductorProcess, running_up

BASE = "/slurm/v0.0.40"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorProcess]:
    with running_up(tmp_path_factory.mktemp("home"), "--cpus", "4") as process:
        yield process


@pytest.fixture
def rest(server: ConductorProcess) -> Iterator[httpx.Client]:
    """A client authenticated as slurmrestd clients are: X-SLURM-USER-TOKEN."""
    client = httpx.Client(base_url=server.url + BASE, timeout=30, headers={"X-SLURM-USER-TOKEN": server.token})
    yield client
    client.close()


@pytest.fixture
def api(server: ConductorProcess) -> Iterator[Api]:
    client = Api(server.url)
    yield client
    client.close()


def is_number(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"set", "infinite", "number"}


def assert_envelope(body: dict[str, Any]) -> None:
    assert body["meta"]["plugin"]["data_parser"] == "data_parser/v0.0.40"
    assert set(body["meta"]["slurm"]["version"]) == {"major", "minor", "micro"}
    assert isinstance(body["errors"], list) and isinstance(body["warnings"], list)


def submit(rest: httpx.Client, tmp_path: Path, script: str = "#!/bin/bash\necho $GREETING\n", **job: Any) -> int:
    description = {"name": "rest", "current_working_directory": str(tmp_path), "environment": ["GREETING=hello"]}
    description.update(job)
    response = rest.post("/job/submit", json={"script": script, "job": description})
    assert response.status_code == 200, response.text
    return int(response.json()["job_id"])


def test_ping(rest: httpx.Client) -> None:
    body = rest.get("/ping").json()
    assert_envelope(body)
    (ping,) = body["pings"]
    assert ping["pinged"] == "UP" and ping["mode"] == "primary" and isinstance(ping["latency"], int)


def test_nodes(rest: httpx.Client) -> None:
    body = rest.get("/nodes").json()
    assert_envelope(body)
    assert is_number(body["last_update"])
    (node,) = body["nodes"]
    assert node["cpus"] == 4 and node["state"] == ["IDLE"] and isinstance(node["partitions"], list)
    assert node["alloc_cpus"] + node["alloc_idle_cpus"] == 4
    assert isinstance(node["real_memory"], int) and is_number(node["free_mem"])


def test_submit_get_and_list(rest: httpx.Client, api: Api, tmp_path: Path) -> None:
    response = rest.post(
        "/job/submit",
        json={
            "script": "#!/bin/bash\necho $GREETING from $SLURM_JOB_NAME\n",
            "job": {
                "name": "restful",
                "current_working_directory": str(tmp_path),
                "environment": ["GREETING=hello", "PATH=/bin:/usr/bin"],
                "time_limit": {"set": True, "infinite": False, "number": 5},
                "memory_per_node": {"set": True, "infinite": False, "number": 64},
                "tasks": 1,
                "cpus_per_task": 1,
                "standard_output": "rest-%j.out",
                "x11": ["FORWARD_ALL_NODES"],
            },
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert_envelope(body)
    assert isinstance(body["job_id"], int) and body["step_id"] == "batch" and body["errors"] == []
    assert body["result"]["job_id"] == body["job_id"] and body["result"]["error_code"] == 0
    assert [w["source"] for w in body["warnings"]] == ["job.x11"]
    job_id = body["job_id"]
    api.wait_state(job_id, "COMPLETED")
    assert (tmp_path / f"rest-{job_id}.out").read_text() == "hello from restful\n"

    info = rest.get(f"/job/{job_id}").json()
    assert_envelope(info)
    assert is_number(info["last_update"]) and is_number(info["last_backfill"])
    (job,) = info["jobs"]
    assert job["job_id"] == job_id and job["name"] == "restful"
    assert job["job_state"] == ["COMPLETED"]
    assert job["time_limit"] == {"set": True, "infinite": False, "number": 5}
    assert job["memory_per_node"] == {"set": True, "infinite": False, "number": 64}
    for key in ("submit_time", "start_time", "end_time", "eligible_time", "priority", "cpus", "tasks"):
        assert is_number(job[key]) and job[key]["set"], key
    assert job["exit_code"] == {
        "status": ["SUCCESS"],
        "return_code": {"set": True, "infinite": False, "number": 0},
        "signal": {"id": {"set": False, "infinite": False, "number": 0}, "name": ""},
    }
    assert job["standard_output"] == str(tmp_path / f"rest-{job_id}.out")
    assert job["current_working_directory"] == str(tmp_path)

    listed = rest.get("/jobs").json()
    assert_envelope(listed)
    assert job_id in [j["job_id"] for j in listed["jobs"]]


def test_exit_codes_unlimited_time_and_pending_state(rest: httpx.Client, api: Api, tmp_path: Path) -> None:
    failed = submit(rest, tmp_path, "#!/bin/bash\nexit 3\n", time_limit={"set": False, "infinite": True, "number": 0})
    api.wait_state(failed, "FAILED")
    (job,) = rest.get(f"/job/{failed}").json()["jobs"]
    assert job["exit_code"]["status"] == ["ERROR"] and job["exit_code"]["return_code"]["number"] == 3
    assert job["time_limit"] == {"set": False, "infinite": True, "number": 0}
    held = submit(rest, tmp_path, hold=True, priority={"set": True, "infinite": False, "number": 5})
    (job,) = rest.get(f"/job/{held}").json()["jobs"]
    assert job["job_state"] == ["PENDING"] and job["hold"] is True and job["priority"]["number"] == 5
    assert job["exit_code"]["status"] == ["PENDING"] and not job["start_time"]["set"]
    rest.delete(f"/job/{held}")


def test_delete_cancels_and_signals(rest: httpx.Client, api: Api, tmp_path: Path) -> None:
    log = tmp_path / "trap.txt"
    job_id = submit(rest, tmp_path, f"#!/bin/bash\ntrap 'echo usr1 >> {log}' USR1\necho up >> {log}\n"
                    "for i in $(seq 1 200); do sleep 0.05; done\n")
    api.wait_state(job_id, "RUNNING")
    deadline = time.monotonic() + 5
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    # slurmctld's flags: BATCH_JOB the batch shell (the default is the steps alone: none here).
    signalled = rest.delete(f"/job/{job_id}", params={"signal": "SIGUSR1", "flags": "BATCH_JOB"})
    assert signalled.status_code == 200, signalled.text
    while "usr1" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "usr1" in log.read_text() and api.job(job_id)["state"] == "RUNNING"
    deleted = rest.delete(f"/job/{job_id}")
    assert deleted.status_code == 200, deleted.text
    assert_envelope(deleted.json())
    assert deleted.json()["errors"] == []
    api.wait_state(job_id, "CANCELLED")
    again = rest.delete(f"/job/{job_id}")
    assert again.status_code == 409 and again.json()["errors"][0]["error_number"] == 2021
    missing = rest.delete("/job/987654")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["error_number"] == 2017
    assert missing.json()["errors"][0]["error"] == "Invalid job id specified"


def test_arrays_are_whole_under_their_id(rest: httpx.Client, api: Api, tmp_path: Path) -> None:
    array_id = submit(rest, tmp_path, "#!/bin/bash\nsleep 30\n", array="0-2")
    jobs = rest.get(f"/job/{array_id}").json()["jobs"]
    assert [j["array_task_id"]["number"] for j in jobs] == [0, 1, 2]
    assert {j["array_job_id"]["number"] for j in jobs} == {array_id}
    (task,) = rest.get(f"/job/{array_id}_2").json()["jobs"]
    assert task["array_task_id"]["number"] == 2
    assert rest.delete(f"/job/{array_id}").status_code == 200
    api.wait_all([j["job_id"] for j in jobs], {"CANCELLED"})


@pytest.mark.parametrize(
    ("body", "source"),
    [
        ({"job": {"name": "x"}}, "script"),
        ({"script": "#!/bin/bash\ntrue\n"}, "job"),
        ({"script": "#!/bin/bash\ntrue\n", "job": {"partition": "nope"}}, "job.partition"),
        ({"script": "#!/bin/bash\ntrue\n", "job": {"time_limit": "soon"}}, "job.time_limit"),
        ({"script": "#!/bin/bash\ntrue\n", "job": {"memory_per_node": {"set": True, "infinite": True}}}, "job.memory_per_node"),
        ({"script": "#!/bin/bash\ntrue\n", "job": {"cpus_per_task": 0}}, "job.cpus_per_task"),
        ({"script": "#!/bin/bash\ntrue\n", "job": {"dependency": "afterok:999999"}}, "job.dependency"),
        ({"script": "#!/bin/bash\ntrue\n", "job": {"cpus_per_task": 999}}, "job/submit"),
        ({"script": "#!/bin/bash\ntrue\n", "jobs": [{}, {}]}, "jobs"),
    ],
)
def test_submit_errors(rest: httpx.Client, tmp_path: Path, body: dict[str, Any], source: str) -> None:
    if "job" in body:
        body["job"].setdefault("current_working_directory", str(tmp_path))
    response = rest.post("/job/submit", json=body)
    assert 400 <= response.status_code < 500, response.text
    answer = response.json()
    assert_envelope(answer)
    (error,) = answer["errors"]
    assert set(error) == {"description", "error_number", "error", "source"}
    assert error["source"] == source, error
    assert isinstance(error["error_number"], int) and error["description"]


def test_submit_error_numbers(rest: httpx.Client, tmp_path: Path) -> None:
    cwd = str(tmp_path)
    dependency = rest.post("/job/submit", json={"script": "#!/bin/sh\nx", "job": {"dependency": "afterok:999999", "current_working_directory": cwd}})
    assert dependency.json()["errors"][0]["error_number"] == 2038
    too_big = rest.post("/job/submit", json={"script": "#!/bin/sh\nx", "job": {"cpus_per_task": 999, "current_working_directory": cwd}})
    assert too_big.json()["errors"][0]["error_number"] == 2014


def test_authentication_is_required(server: ConductorProcess) -> None:
    response = httpx.get(server.url + BASE + "/ping")
    assert response.status_code == 401


def test_one_node_and_its_drain(server: ConductorProcess, rest: httpx.Client) -> None:
    """`GET node/{name}` and `POST node/{name}` (`v0.0.40_update_node_msg`): an administrator's
    drain with a reason, shown in the node's state and reason, then RESUME; what the update
    cannot apply is refused with the field named, never ignored."""
    (listed,) = rest.get("/nodes").json()["nodes"]
    name = listed["name"]
    one = rest.get(f"/node/{name}")
    assert one.status_code == 200
    assert_envelope(one.json())
    assert [n["name"] for n in one.json()["nodes"]] == [name]
    missing = rest.get("/node/nosuch")
    assert missing.status_code == 404
    assert [(e["error_number"], e["source"]) for e in missing.json()["errors"]] == [(2018, "node/nosuch")]

    drained = rest.post(f"/node/{name}", json={"state": ["DRAIN"], "reason": "disk swap"})
    assert drained.status_code == 200, drained.text
    assert_envelope(drained.json())
    assert drained.json()["errors"] == []
    node = rest.get(f"/node/{name}").json()["nodes"][0]
    assert node["state"] == ["IDLE", "DRAIN"] and node["reason"] == "disk swap"
    assert node["reason_set_by_user"] and node["reason_changed_at"]["set"] is True

    for body, errno, source in (
        ({"state": ["DRAIN"]}, 2028, "reason"),  # a drain needs a reason
        ({"state": ["DOWN"], "reason": "x"}, 2028, "state"),
        ({"state": ["DRAIN", "RESUME"]}, 2028, "state"),
        ({}, 2028, "state"),
        ({"state": ["DRAIN"], "reason": "a\nb"}, 9001, "reason"),
        ({"state": ["DRAIN"], "reason": 5}, 9001, "reason"),
        ({"state": ["RESUME"], "weight": 5}, 9001, "weight"),
        ([], 9001, f"node/{name}"),
    ):
        bad = rest.post(f"/node/{name}", json=body)
        assert bad.status_code == 400, (body, bad.text)
        assert [(e["error_number"], e["source"]) for e in bad.json()["errors"]] == [(errno, source)], (body, bad.text)
    assert rest.post(f"/node/{name}", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    assert rest.post("/node/nosuch", json={"state": ["RESUME"]}).status_code == 404
    # Still drained, with its reason: nothing refused changed anything.
    assert rest.get(f"/node/{name}").json()["nodes"][0]["reason"] == "disk swap"

    made = server.run("token", "create", "--user", "nobody")
    assert made.returncode == 0, made.stderr
    user = httpx.Client(base_url=rest.base_url, timeout=30, headers={"X-SLURM-USER-TOKEN": made.stdout.strip().split()[-1]})
    try:
        denied = user.post(f"/node/{name}", json={"state": ["RESUME"]})
        assert denied.status_code == 403
        assert [e["error_number"] for e in denied.json()["errors"]] == [2002]
    finally:
        user.close()

    resumed = rest.post(f"/node/{name}", json={"state": ["RESUME"]})
    assert resumed.status_code == 200, resumed.text
    assert rest.get(f"/node/{name}").json()["nodes"][0]["state"] == ["IDLE"]
    again = rest.post(f"/node/{name}", json={"state": "RESUME"})  # nothing to resume
    assert again.status_code == 409 and again.json()["errors"][0]["error_number"] == 2028
