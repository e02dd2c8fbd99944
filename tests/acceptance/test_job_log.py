"""The server's log: one INFO line per job transition (job, user, state, node, reason), JSON
lines when CONDUCTOR_LOG_FORMAT=json, and no token in any line."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from support import Api, ConductorProcess


def _transitions(server: ConductorProcess, job_id: int, final: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.strip()]
        found = [line for line in lines if line.get("job_id") == job_id]
        if any(line["state"] == final for line in found):
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {final} line for job {job_id}: {found}\n{server.log()}")


def test_json_log_has_one_line_per_transition_and_no_token(start_conductor: Callable[..., ConductorProcess]) -> None:
    server = start_conductor("--cpus", "2", env={"CONDUCTOR_LOG_FORMAT": "json"})
    api = Api(server.url)
    job = api.submit("#!/bin/bash\necho hello\n", name="logged")
    api.wait_state(job, "COMPLETED")
    # A wrong token and a right one, in the ways a client sends them.
    httpx.get(server.url + "/jobs", headers={"Authorization": "Bearer cond_not-a-real-token-at-all"}, timeout=5)
    httpx.get(server.url + "/jobs", headers={"X-SLURM-USER-TOKEN": server.token}, timeout=5)

    lines = _transitions(server, job, "COMPLETED")
    assert [(line["from_state"], line["state"]) for line in lines] == [
        (None, "PENDING"),
        ("PENDING", "RUNNING"),
        ("RUNNING", "COMPLETED"),
    ]
    assert all(line["level"] == "INFO" and line["logger"] == "conductor.jobs" for line in lines)
    assert {line["user"] for line in lines} == {api.job(job)["user"]}
    assert lines[1]["node"] == api.job(job)["node_list"]
    text = server.log_path.read_text()
    assert server.token not in text and "cond_not-a-real-token" not in text
    api.close()


def test_text_log_names_job_user_state_node(conductor_server: ConductorProcess, api: Api) -> None:
    job = api.submit("#!/bin/bash\nexit 3\n", name="failing")
    api.wait_state(job, "FAILED")
    record = api.job(job)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ended = [line for line in conductor_server.log().splitlines() if f"job {job} RUNNING -> FAILED" in line]
        if ended:
            break
        time.sleep(0.2)
    assert ended, conductor_server.log()
    assert " INFO conductor.jobs: " in ended[0]
    assert f"user={record['user']}" in ended[0] and f"reason={record['reason']}" in ended[0]
