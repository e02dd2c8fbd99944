"""Inputs a fuzzing review found accepted or answered with a 500: each is now a 4xx naming the
field and the rule, stores nothing, and leaves no traceback in the log. On SQLite and on
PostgreSQL, which refuses NUL in text where SQLite stores it."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import Api, ConductorProcess, up_on_each_database

SCRIPT = "#!/bin/bash\ntrue\n"
REST = "/slurm/v0.0.40"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorProcess]:
    yield from up_on_each_database(request, tmp_path_factory, "inputs")


@pytest.fixture
def api(server: ConductorProcess) -> Iterator[Api]:
    client = Api(server.url)
    yield client
    client.close()


def job_count(api: Api) -> int:
    response = api.http.get("/jobs", params={"limit": 1})
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


def held(tmp_path: Path, **job: Any) -> dict[str, Any]:
    """A submission body whose job would never run."""
    return {"script": SCRIPT, "job": {"current_working_directory": str(tmp_path), "hold": True, **job}}


def refused(response: httpx.Response, status: int, field: str) -> str:
    """The refusal's text, once checked that it has `status` and names `field`."""
    assert response.status_code == status, response.text
    text = response.text
    assert field in text, text
    return text


def server_log(server: ConductorProcess) -> str:
    return server.log_path.read_text(errors="replace")


# ------------------------------------------------------------------ 1. slurmrestd maximum_nodes
@pytest.mark.parametrize("value", ["abc", {"number": "2"}, [1], 1.5, True, -1, 2**40, float("inf"), float("nan")])
def test_slurmrestd_maximum_nodes_is_validated(api: Api, tmp_path: Path, value: Any) -> None:
    before = job_count(api)
    # json.dumps writes inf and nan as Infinity and NaN, as the fuzzer sent them.
    body = json.dumps(held(tmp_path, maximum_nodes=value))
    response = api.http.post(f"{REST}/job/submit", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    (error,) = response.json()["errors"]
    assert error["source"] == "job.maximum_nodes" and error["description"].startswith("maximum_nodes: "), error
    assert job_count(api) == before


def test_slurmrestd_maximum_nodes_takes_counts_and_wrapped_numbers(api: Api, tmp_path: Path) -> None:
    for value in (1, 2, {"set": True, "infinite": False, "number": 3}, {"number": 2}, {"infinite": True}):
        response = api.http.post(f"{REST}/job/submit", json=held(tmp_path, maximum_nodes=value))
        assert response.status_code == 200, (value, response.text)
    below = api.http.post(f"{REST}/job/submit", json=held(tmp_path, minimum_nodes=2, maximum_nodes=1))
    assert below.status_code == 400, below.text
    assert below.json()["errors"][0]["description"] == "maximum_nodes: 1 is below the minimum node count 2"


# ------------------------------------------------------------------ 2. free text of accounting, NUL in the dashboard
@pytest.mark.parametrize("text", ["a\u0000b", "\u001b]0;pwned\u0007", "tab\there"])
def test_accounting_free_text_refuses_control_characters(api: Api, text: str) -> None:
    name = f"acct{uuid.uuid4().hex[:8]}"
    for field in ("description", "organization"):
        response = api.http.post("/accounting/accounts", json={"accounts": [{"name": name, field: text}]})
        refused(response, 422, f"accounts.0.{field}")
        assert "control characters" in response.json()["detail"]
    qos = api.http.post("/accounting/qos", json={"qos": [{"name": name, "description": text}]})
    refused(qos, 422, "qos.0.description")
    listed = api.http.get("/accounting/accounts").json()["accounts"]
    assert name not in {a["name"] for a in listed}
    assert name not in {q["name"] for q in api.http.get("/accounting/qos").json()["qos"]}
    # A change is refused the same way, and the stored text stays.
    added = api.http.post("/accounting/accounts", json={"accounts": [{"name": name, "description": "kept"}]})
    assert added.status_code == 201, added.text
    for field in ("description", "organization"):
        refused(api.http.patch(f"/accounting/accounts/{name}", json={field: text}), 422, field)
    refused(api.http.patch("/accounting/qos/normal", json={"description": text}), 422, "description")
    (account,) = [a for a in api.http.get("/accounting/accounts").json()["accounts"] if a["name"] == name]
    assert account["description"] == "kept" and account["organization"] == ""


def test_a_value_of_the_wrong_type_is_named_by_its_field(api: Api, tmp_path: Path) -> None:
    """A union's members were each reported under their type: `job.nodes.int: ...; job.nodes.str:
    ...`. Both APIs now name the field itself."""
    for extra, field, message in (
        ({"nodes": [1]}, "job.nodes", "expected an integer or a string"),
        ({"environment": [1]}, "job.environment.0", "Input should be a valid string"),
        ({"environment": "A=1"}, "job.environment", "expected an object or a list"),
    ):
        body = {"job": {"current_working_directory": str(tmp_path), **extra}, "script": SCRIPT}
        native = api.http.post("/jobs/submit", json=body)
        assert native.status_code == 422 and native.json()["errors"] == [{"field": field, "message": message}], native.text
        rest = api.http.post(f"{REST}/job/submit", json=body)
        assert rest.status_code == 400 and rest.json()["errors"][0]["source"] == field, rest.text


def test_a_submit_directory_must_be_absolute(api: Api, tmp_path: Path) -> None:
    body = {"job": {"current_working_directory": str(tmp_path), "submit_directory": "rel/dir"}, "script": SCRIPT}
    refused(api.http.post("/jobs/submit", json=body), 400, "submit_directory")


def test_a_command_is_shown_text(api: Api, tmp_path: Path) -> None:
    body = {"job": {"current_working_directory": str(tmp_path), "command": "/x/run.sh\n   Command=/y"}, "script": SCRIPT}
    assert "command" in api.http.post("/jobs/submit", json=body).text
    body["job"]["command"] = "/x/" + "a" * 5000
    assert api.http.post("/jobs/submit", json=body).status_code in (400, 422)


def test_accounting_names_are_lower_case(api: Api) -> None:
    """sacctmgr lowercases every name: `ROOT` or `Alice` stored through the API could never be
    named from the command line, and `sacctmgr delete user Alice` acted on `alice`."""
    for path, body, field in (
        ("/accounting/accounts", {"accounts": [{"name": "ROOT"}]}, "name"),
        ("/accounting/accounts", {"accounts": [{"name": "physicsx", "parent": "Root"}]}, "parent"),
        ("/accounting/qos", {"qos": [{"name": "Normal"}]}, "name"),
        ("/accounting/users", {"users": ["Alice"], "accounts": ["root"]}, "users"),
    ):
        response = api.http.post(path, json=body)
        refused(response, 400, field)
        assert "names are lower case" in response.json()["detail"], response.text
    assert "physicsx" not in {a["name"] for a in api.http.get("/accounting/accounts").json()["accounts"]}
    assert "Normal" not in {q["name"] for q in api.http.get("/accounting/qos").json()["qos"]}


def test_dashboard_queue_filters_refuse_nul(server: ConductorProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as browser:
        signed = browser.post("/ui/login", data={"token": server.token, "next": "/ui/queue"})
        assert signed.status_code == 303, signed.text
        for field in ("user", "partition"):
            response = browser.get("/ui/queue", params={field: "a\u0000"})
            assert response.status_code == 400, response.text
            assert f"{field}: must not contain NUL characters" in response.text
        assert browser.get("/ui/queue", params={"user": "nobody"}).status_code == 200


# ------------------------------------------------------------------ 3. a client that leaves mid-body
def _leave_mid_body(server: ConductorProcess, path: str, content_type: str) -> None:
    with socket.create_connection(("127.0.0.1", int(server.port or 0))) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.token}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: 100\r\n\r\n"
        )
        sock.sendall(head.encode() + b"token=abc")
        time.sleep(0.2)


def test_a_client_leaving_mid_body_leaves_no_traceback(server: ConductorProcess, api: Api) -> None:
    before = job_count(api)
    form = "application/x-www-form-urlencoded"
    for path, content_type in (
        ("/ui/login", form),
        ("/ui/jobs/1/cancel", form),
        ("/ui/logout", form),
        (f"{REST}/job/submit", "application/json"),
        ("/jobs/submit", "application/json"),
    ):
        _leave_mid_body(server, path, content_type)
    assert api.http.get("/health").status_code == 200  # every request before it was handled
    time.sleep(0.3)
    log = server_log(server)
    assert "ClientDisconnect" not in log and "Exception in ASGI application" not in log, log[-3000:]
    assert job_count(api) == before


# ------------------------------------------------------------------ 4. booleans are not numbers
@pytest.mark.parametrize(
    "field",
    ["time_limit", "memory_per_node", "memory_per_cpu", "nodes", "ntasks", "ntasks_per_node", "cpus_per_task", "nice",
     "priority"],
)
def test_submission_refuses_booleans_as_numbers(api: Api, tmp_path: Path, field: str) -> None:
    before = job_count(api)
    for value in (True, False):
        response = api.http.post("/jobs/submit", json=held(tmp_path, **{field: value}))
        refused(response, 422, f"job.{field}")
        assert "not true or false" in response.text
    assert job_count(api) == before


def test_slurmrestd_refuses_booleans_as_numbers(api: Api, tmp_path: Path) -> None:
    for field, ours in (("tasks", "ntasks"), ("cpus_per_task", "cpus_per_task"), ("nice", "nice")):
        response = api.http.post(f"{REST}/job/submit", json=held(tmp_path, **{field: True}))
        assert response.status_code == 400, response.text
        assert response.json()["errors"][0]["source"] == f"job.{ours}"


def test_changes_refuse_booleans_as_numbers(api: Api, tmp_path: Path) -> None:
    job_id = api.submit(SCRIPT, current_working_directory=str(tmp_path), hold=True, time_limit="10:00")
    for field in ("time_limit", "priority", "nice"):
        refused(api.http.patch(f"/jobs/{job_id}", json={field: False}), 422, field)
    assert api.job(job_id)["time_limit"] == 600  # not UNLIMITED
    refused(api.http.post(f"/jobs/{job_id}/signal", json={"signal": True}), 422, "signal")
    name = f"acct{uuid.uuid4().hex[:8]}"
    for limits, field in (({"grp_tres": {"cpu": True}}, "grp_tres"), ({"fairshare": True}, "fairshare")):
        refused(api.http.post("/accounting/accounts", json={"accounts": [{"name": name, **limits}]}), 400 if field == "grp_tres" else 422, field)
    assert name not in {a["name"] for a in api.http.get("/accounting/accounts").json()["accounts"]}
    refused(api.http.patch("/accounting/qos/normal", json={"max_tres_per_user": {"mem": False}}), 400, "max_tres_per_user")
    refused(api.http.patch("/accounting/qos/normal", json={"priority": True}), 422, "priority")


def test_numbers_of_thousands_of_digits_are_refused_by_their_rule(
    api: Api, server: ConductorProcess, tmp_path: Path
) -> None:
    # int() refuses over 4,300 digits with a ValueError of its own: each was a 500.
    digits = "1" * 5000
    before = job_count(api)
    for field in ("time_limit", "memory_per_node", "memory_per_cpu"):
        for path in ("/jobs/submit", "/jobs/submit?x=1"):  # the fast path, and FastAPI's
            refused(api.http.post(path, json=held(tmp_path, **{field: digits})), 400, field)
    assert job_count(api) == before
    job_id = api.submit(SCRIPT, current_working_directory=str(tmp_path), hold=True)
    refused(api.http.patch(f"/jobs/{job_id}", json={"time_limit": digits}), 400, "time_limit")
    refused(api.http.post(f"/jobs/{job_id}/signal", json={"signal": digits}), 400, "signal")
    response = api.http.delete(f"{REST}/job/{job_id}", params={"signal": digits})
    assert response.status_code == 400, response.text
    assert "Traceback" not in server_log(server)


# ------------------------------------------------------------------ 5. environment names
def test_environment_names_with_a_final_newline_are_refused(api: Api, tmp_path: Path) -> None:
    before = job_count(api)
    for environment in ({"FOO\n": "x"}, ["FOO\n=x"]):
        text = refused(api.http.post("/jobs/submit", json=held(tmp_path, environment=environment)), 400, "environment")
        assert "variable name" in text
    assert job_count(api) == before


# ------------------------------------------------------------------ 6. job ids in a path
@pytest.mark.parametrize("job_id", ["%D9%A1", "%EF%BC%91", "1%0A", "1_%D9%A1", "1%09"])
def test_job_ids_take_ascii_digits_only(api: Api, tmp_path: Path, job_id: str) -> None:
    api.submit(SCRIPT, current_working_directory=str(tmp_path), hold=True)  # job 1 exists
    for path in (f"/jobs/{job_id}", f"/jobs/query/{job_id}", f"{REST}/job/{job_id}"):
        response = api.http.get(path)
        assert response.status_code == 400, (path, response.text)
        assert "is not a job id" in response.text
    refused(api.http.post(f"/jobs/cancel/{job_id}"), 400, "job_id")
    assert api.http.get("/jobs/%201%20").status_code == 200  # spaces around an id are forgiven


@pytest.mark.parametrize("value", ["1%0A", "%0A1", "1,2%09", "1%0D%0A"])
def test_list_filters_refuse_control_characters_around_their_items(api: Api, tmp_path: Path, value: str) -> None:
    # Stripped as white space, `job_id=1%0A` was taken for job 1.
    api.submit(SCRIPT, current_working_directory=str(tmp_path), hold=True)
    refused(api.http.get(f"/jobs?job_id={value}"), 400, "job_id")
    refused(api.http.get(f"/jobs?user=root{value}"), 400, "user")
    refused(api.http.get(f"/priority?jobs={value}"), 400, "jobs")
    refused(api.http.get(f"/priority?users=root{value}"), 400, "users")
    assert api.http.get("/jobs?job_id=1,%202&user=root,%20nobody").status_code == 200  # spaces are forgiven


@pytest.mark.parametrize("value", ["%D9%A1", "%D9%A1%D9%A1", "1%EF%BC%91", "%D9%A1.5"])
def test_time_filters_take_ascii_digits_only(api: Api, value: str) -> None:
    # str.isdigit() takes Arabic-Indic and full-width digits: `since=١` was read as second 1.
    for name in ("since", "until"):
        refused(api.http.get(f"/jobs?{name}={value}"), 400, name)
    assert api.http.get("/jobs?since=1&until=2026-01-01T00:00:00Z").status_code == 200


@pytest.mark.parametrize("name", ["%00", "n1%0A", "%1B%5B2J"])
def test_a_node_name_with_control_characters_is_refused(api: Api, name: str) -> None:
    # PostgreSQL cannot even compare text with a NUL in it: that was a 500 there.
    refused(api.http.post(f"/nodes/{name}/state", json={"state": "DRAIN", "reason": "x"}), 400, "name")


# ------------------------------------------------------------------ 7. accepted silently
def test_node_range_with_its_maximum_below_its_minimum_is_refused(api: Api, tmp_path: Path) -> None:
    before = job_count(api)
    for nodes in ("3-2", "\u0661", "1" * 5000):
        refused(api.http.post("/jobs/submit", json=held(tmp_path, nodes=nodes)), 400, "nodes")
    assert job_count(api) == before
    for nodes in ("1-2", "1-0"):  # a maximum of 0 is none, as in Slurm
        assert api.http.post("/jobs/submit", json=held(tmp_path, nodes=nodes)).status_code == 201


@pytest.mark.parametrize(
    "headers",
    [
        [("Authorization", "Bearer {token}"), ("Authorization", "Bearer cond_someone_else")],
        [("Authorization", "Bearer {token}"), ("X-SLURM-USER-NAME", "root"), ("X-SLURM-USER-NAME", "nobody")],
        [("X-SLURM-USER-TOKEN", "{token}"), ("X-SLURM-USER-TOKEN", "cond_someone_else")],
    ],
)
def test_a_repeated_identity_header_is_refused(server: ConductorProcess, tmp_path: Path, headers: list[tuple[str, str]]) -> None:
    sent = [(name, value.format(token=server.token)) for name, value in headers]
    repeated = headers[-1][0]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for method, path, body in (
            ("GET", "/jobs/stats", None),
            ("GET", f"{REST}/ping", None),
            ("POST", "/jobs/submit", held(tmp_path)),  # the submission's fast path too
        ):
            response = client.request(method, path, headers=sent, json=body)
            assert response.status_code == 400, (path, response.text)
            assert response.json()["detail"].startswith(f"{repeated}: the header is given more than once")


def test_tres_named_twice_in_an_object_is_refused(api: Api) -> None:
    name = f"acct{uuid.uuid4().hex[:8]}"
    body = {"accounts": [{"name": name, "grp_tres": {"cpu": 1, "CPU": 2}}]}
    text = refused(api.http.post("/accounting/accounts", json=body), 400, "grp_tres")
    assert "'cpu' is given twice" in text
    assert name not in {a["name"] for a in api.http.get("/accounting/accounts").json()["accounts"]}


@pytest.mark.parametrize("tres", ["cpu=abc", "cpu=1_000", "cpu=2147483648", {"cpu": "x"}])
def test_a_tres_cpu_count_in_text_follows_the_configuration_files_rule(api: Api, tres: Any) -> None:
    name = f"acct{uuid.uuid4().hex[:8]}"
    text = refused(api.http.post("/accounting/accounts", json={"accounts": [{"name": name, "grp_tres": tres}]}), 400,
                   "grp_tres")
    assert "must be a whole number from 0 to 2147483647" in text
    made = api.http.post("/accounting/accounts", json={"accounts": [{"name": name, "grp_tres": "cpu=16"}]})
    assert made.status_code == 201, made.text


def test_a_user_named_twice_is_added_once(api: Api) -> None:
    # As sacctmgr's `add user bob,bob`: one user, and the answer names it once.
    account, user = f"acct{uuid.uuid4().hex[:8]}", f"u{uuid.uuid4().hex[:8]}"
    assert api.http.post("/accounting/accounts", json={"accounts": [{"name": account}]}).status_code == 201
    response = api.http.post("/accounting/users", json={"users": [user, user], "accounts": [account]})
    assert response.status_code == 201, response.text
    assert response.json()["message"] == f"added user(s) {user}"
    listed = [u for u in api.http.get("/accounting/users").json()["users"] if u["name"] == user]
    assert listed == [{"name": user, "default_account": account, "accounts": [account]}]
