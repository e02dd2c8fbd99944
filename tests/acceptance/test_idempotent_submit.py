"""Idempotent submission against a real server, on SQLite and on PostgreSQL: a client that lost
the answer to `POST /jobs/submit` sends it again with the same `Idempotency-Key` and gets the
first answer back (`Idempotent-Replayed: true`), and one job exists. On the fast path, on the
FastAPI route and on slurmrestd's route; and sbatch, whose connection is cut after the server
stored its job, retries and prints the one job id."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import Api, ConductorProcess, read_http_message, up_on_each_database

SCRIPT = "#!/bin/bash\ntrue\n"
REST = "/slurm/v0.0.40"
REPLAYED = "idempotent-replayed"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorProcess]:
    yield from up_on_each_database(request, tmp_path_factory, "keys")


@pytest.fixture
def api(server: ConductorProcess) -> Iterator[Api]:
    client = Api(server.url)
    yield client
    client.close()


def held(tmp_path: Path, name: str, **job: Any) -> dict[str, Any]:
    """A submission body whose job never runs."""
    return {"script": SCRIPT, "job": {"current_working_directory": str(tmp_path), "hold": True, "name": name, **job}}


def named(api: Api, name: str) -> list[int]:
    return [int(job["job_id"]) for job in api.jobs(name=name)]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def post(api: Api, body: Any, key: str | None, **headers: str) -> httpx.Response:
    extra = {"Content-Type": "application/json", **headers}
    if key is not None:
        extra["Idempotency-Key"] = key
    return api.http.post("/jobs/submit", content=body if isinstance(body, str) else json.dumps(body), headers=extra)


def whoami(api: Api, tmp_path: Path) -> str:
    answer = post(api, held(tmp_path, unique("me")), None)
    return str(api.job(int(answer.json()["job_id"]))["user"])


# ------------------------------------------------------------------ replays
@pytest.mark.parametrize("route", ["fast path", "FastAPI"])
def test_a_retry_answers_the_same_and_stores_nothing(api: Api, tmp_path: Path, route: str) -> None:
    # A header of slurmrestd's (the caller's own name) takes the request past the fast path.
    headers = {} if route == "fast path" else {"X-SLURM-USER-NAME": whoami(api, tmp_path)}
    name, key = unique("retry"), str(uuid.uuid4())
    body = held(tmp_path, name, time_limit="5")
    first = post(api, body, key, **headers)
    assert first.status_code == 201, first.text
    assert REPLAYED not in first.headers
    # The same request written otherwise (key order, white space, a default made explicit).
    again = post(api, json.dumps({"job": {**body["job"], "ntasks": 1}, "script": SCRIPT}, indent=2), key, **headers)
    assert again.status_code == 201, again.text
    assert again.headers[REPLAYED] == "true"
    assert again.content == first.content
    assert named(api, name) == [int(first.json()["job_id"])]


def test_an_array_is_answered_again_with_its_tasks(api: Api, tmp_path: Path) -> None:
    name, key = unique("array"), str(uuid.uuid4())
    first = post(api, held(tmp_path, name, array="0-4"), key)
    again = post(api, held(tmp_path, name, array="0-4"), key)
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.headers[REPLAYED] == "true" and again.json() == first.json()
    assert len(first.json()["array_task_ids"]) == 5
    assert sorted(named(api, name)) == sorted(int(i) for i in first.json()["array_task_ids"])


def test_another_request_with_the_key_is_refused_naming_the_header(api: Api, tmp_path: Path) -> None:
    name, key = unique("other"), str(uuid.uuid4())
    assert post(api, held(tmp_path, name), key).status_code == 201
    for changed in (held(tmp_path, name, time_limit="7"), {**held(tmp_path, name), "script": "#!/bin/bash\nfalse\n"}):
        refused = post(api, changed, key)
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "Idempotency-Key"
        assert refused.json()["detail"].startswith("Idempotency-Key: this key was already used for another request")
    assert len(named(api, name)) == 1


def test_keys_are_per_user(api: Api, tmp_path: Path) -> None:
    # An administrator's token acting for another user: the same key is that user's own.
    name, key = unique("users"), str(uuid.uuid4())
    mine = post(api, held(tmp_path, name), key)
    theirs = post(api, held(tmp_path, name), key, **{"X-SLURM-USER-NAME": "nobody"})
    assert mine.status_code == theirs.status_code == 201, (mine.text, theirs.text)
    assert REPLAYED not in theirs.headers and mine.json()["job_id"] != theirs.json()["job_id"]
    again = post(api, held(tmp_path, name), key, **{"X-SLURM-USER-NAME": "nobody"})
    assert again.headers[REPLAYED] == "true" and again.json() == theirs.json()
    assert len(named(api, name)) == 2


def test_test_only_ignores_the_key(api: Api, tmp_path: Path) -> None:
    name, key = unique("probe"), str(uuid.uuid4())
    probe = post(api, held(tmp_path, name, test_only=True), key)
    assert probe.status_code == 200 and probe.json()["job_id"] is None, probe.text
    assert named(api, name) == []
    stored = post(api, held(tmp_path, name), key)  # the key was not taken by the probe
    assert stored.status_code == 201 and REPLAYED not in stored.headers


# ------------------------------------------------------------------ bad keys
@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "must not be empty"),
        ("x" * 256, "is 256 characters long"),
        ("two words", "character 4 is a space"),
        ("caf\u00e9", "character 4 is U+00C3"),  # its UTF-8 bytes, read as Latin-1
    ],
)
@pytest.mark.parametrize("route", ["native", "slurmrestd"])
def test_a_bad_key_is_a_400_naming_the_header(api: Api, tmp_path: Path, value: str, why: str, route: str) -> None:
    name = unique("bad")
    headers = [(b"Content-Type", b"application/json"), (b"Idempotency-Key", value.encode())]
    body = json.dumps(held(tmp_path, name))
    if route == "native":
        refused = api.http.post("/jobs/submit", content=body, headers=headers)
        assert refused.status_code == 400, refused.text
        assert refused.json()["field"] == "Idempotency-Key" and why in refused.json()["detail"]
    else:
        refused = api.http.post(f"{REST}/job/submit", content=body, headers=headers)
        assert refused.status_code == 400, refused.text
        (error,) = refused.json()["errors"]
        assert error["source"] == "Idempotency-Key" and why in error["description"]
    assert named(api, name) == []


def test_a_repeated_header_is_a_400(api: Api, tmp_path: Path) -> None:
    name = unique("twice")
    for path in ("/jobs/submit", f"{REST}/job/submit"):
        refused = api.http.post(
            path,
            content=json.dumps(held(tmp_path, name)),
            headers=[("Content-Type", "application/json"), ("Idempotency-Key", "k"), ("Idempotency-Key", "k")],
        )
        assert refused.status_code == 400, refused.text
        assert "Idempotency-Key: the header is given more than once" in refused.text
    assert named(api, name) == []


# ------------------------------------------------------------------ slurmrestd
def test_slurmrestd_takes_the_key_too(api: Api, tmp_path: Path) -> None:
    name, key = unique("rest"), str(uuid.uuid4())
    body = held(tmp_path, name)
    first = api.http.post(f"{REST}/job/submit", json=body, headers={"Idempotency-Key": key})
    again = api.http.post(f"{REST}/job/submit", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert REPLAYED not in first.headers and again.headers[REPLAYED] == "true"
    assert again.json()["job_id"] == first.json()["job_id"]
    assert named(api, name) == [first.json()["job_id"]]
    other = api.http.post(f"{REST}/job/submit", json=held(tmp_path, name, time_limit=3), headers={"Idempotency-Key": key})
    assert other.status_code == 422, other.text
    assert other.json()["errors"][0]["source"] == "Idempotency-Key"


# ------------------------------------------------------------------ concurrency
def test_many_concurrent_retries_make_one_job(server: ConductorProcess, tmp_path: Path) -> None:
    name, key = unique("storm"), str(uuid.uuid4())
    body = json.dumps(held(tmp_path, name))
    clients = [httpx.Client(base_url=server.url, headers=server.headers(), timeout=60) for _ in range(24)]
    start = threading.Barrier(len(clients))

    def send(client: httpx.Client) -> httpx.Response:
        start.wait()
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        return client.post("/jobs/submit", content=body, headers=headers)

    try:
        with ThreadPoolExecutor(len(clients)) as pool:
            answers = list(pool.map(send, clients))
    finally:
        for client in clients:
            client.close()
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers if a.status_code != 201]
    assert len({a.content for a in answers}) == 1
    assert sum(1 for a in answers if REPLAYED not in a.headers) == 1
    api = Api(server.url)
    try:
        assert named(api, name) == [int(answers[0].json()["job_id"])]
    finally:
        api.close()


# ------------------------------------------------------------------ sbatch over a cut connection
class CuttingProxy:
    """A TCP proxy in front of the server that passes the first `cuts` requests on, waits for
    the server's whole answer (the job is stored then) and closes the client's connection
    without it; later ones go both ways. It records the requests it saw."""

    def __init__(self, target: int, cuts: int) -> None:
        self.target = target
        self.cuts = cuts
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(client,), daemon=True).start()

    def _one(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.target)) as upstream:
            request = read_http_message(client)
            if not request:
                return
            self.requests.append(request)
            upstream.sendall(request)
            response = read_http_message(upstream)
            if self.cuts > 0:
                self.cuts -= 1
                client.shutdown(socket.SHUT_RDWR)  # the answer is lost on the way back
                return
            client.sendall(response)

    def close(self) -> None:
        self.listener.close()


def test_sbatch_retries_a_cut_submission_and_prints_the_one_job(server: ConductorProcess, tmp_path: Path) -> None:
    # Three cuts: the connection's own immediate retry, then one retry after a pause.
    proxy = CuttingProxy(server.port or 0, cuts=3)
    name = unique("sbatch")
    env = {**server.environment(), "CONDUCTOR_URL": f"http://127.0.0.1:{proxy.port}"}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "conductor", "sbatch", "--parsable", "-H", "-J", name, "-D", str(tmp_path), "--wrap", "true"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=os.fspath(tmp_path),
        )
    finally:
        proxy.close()
    assert result.returncode == 0, result.stderr
    api = Api(server.url)
    try:
        (job_id,) = named(api, name)
    finally:
        api.close()
    assert result.stdout == f"{job_id}\n"  # --parsable: the id alone, as ever
    assert "sending the same submission again" in result.stderr and "attempt 2 of 4" in result.stderr
    assert len(proxy.requests) == 4
    keys = {line for r in proxy.requests for line in r.split(b"\r\n") if line.lower().startswith(b"idempotency-key:")}
    assert len(keys) == 1, keys
