"""Resources running out, nothing lost: a full file system under the database, no file
descriptors left, PostgreSQL out of connections. Real resources: a small tmpfs, `ulimit -n`, a
PostgreSQL cluster started with a low `max_connections`."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import Api, ConductorProcess, PostgresCluster

WAIT_FOR_GO = "end=$((SECONDS + 60)); while [ ! -e go ] && [ $SECONDS -lt $end ]; do sleep 0.05; done\n"
ENDED = {"COMPLETED", "FAILED", "NODE_FAIL", "CANCELLED", "TIMEOUT"}


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs of our own (the suite runs as root)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path) -> None:
    """Write `path` until the file system has no byte left."""
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as out:
        while True:
            try:
                out.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                if len(chunk) == 1:
                    return
                chunk = chunk[: len(chunk) // 2]


def test_full_disk_under_the_database_refuses_submissions_and_loses_nothing(
    start_conductor: Callable[..., ConductorProcess], small_fs: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"  # the jobs' own files are elsewhere: only the database's disk fills
    work.mkdir()
    server = start_conductor("--cpus", "2", home=small_fs / "home")
    api = Api(server.url)
    running = api.submit("#!/bin/bash\n" + WAIT_FOR_GO + "echo finished\n", current_working_directory=str(work))
    api.wait_state(running, "RUNNING")
    time.sleep(0.5)  # launched, its status file in place

    _fill(small_fs / "filler")
    # Both ways in: the fast path (a plain bearer JSON submission) and the framework's (the
    # slurmrestd route), each a 503 that says why, never a 500.
    body = {"job": {"current_working_directory": str(work)}, "script": "#!/bin/bash\ntrue\n"}
    for _ in range(3):
        answer = api.http.post("/jobs/submit", json=body)
        assert answer.status_code == 503, answer.text
        assert "file system is full" in answer.json()["detail"], answer.text
    slurm = api.http.post(
        "/slurm/v0.0.40/job/submit",
        json={"job": {"current_working_directory": str(work), "environment": ["A=1"]}, "script": "#!/bin/bash\ntrue\n"},
    )
    assert slurm.status_code == 503, slurm.text
    sbatch = server.run("sbatch", "--wrap", "true", "-D", str(work))
    assert sbatch.returncode != 0 and "file system is full" in sbatch.stderr, sbatch
    # Reads still answer, and the running job runs on to its end while nothing can be written.
    assert api.job(running)["state"] == "RUNNING"
    (work / "go").touch()
    deadline = time.monotonic() + 10
    while "finished" not in (work / f"slurm-{running}.out").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (work / f"slurm-{running}.out").read_text() == "finished\n"
    time.sleep(1.0)  # the worker tries to record the end, and cannot
    assert server.proc is not None and server.proc.poll() is None

    # Space returns: the end is recorded, once, and submissions work again.
    (small_fs / "filler").unlink()
    job = api.wait_state(running, ENDED, timeout=30)
    assert (job["state"], job["exit_code"]) == ("COMPLETED", "0:0"), job
    after = api.submit("#!/bin/bash\necho again\n", current_working_directory=str(work))
    assert api.wait_state(after, ENDED)["state"] == "COMPLETED"
    assert api.stats()["used_cpus"] == 0
    # Nothing of the refused submissions was stored; nothing else was lost.
    assert sorted(job["job_id"] for job in api.jobs()) == [running, after]
    with contextlib.closing(sqlite3.connect(small_fs / "home" / "conductor.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    api.close()


def _descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_no_file_descriptors_left_refuses_connections_cleanly_and_recovers(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path
) -> None:
    server = start_conductor(
        "--cpus", "2", env={"CONDUCTOR_REQUEST_TIMEOUT": "60", "CONDUCTOR_KEEP_ALIVE_TIMEOUT": "60"}
    )
    assert server.proc is not None and server.port is not None
    api = Api(server.url)
    first = api.submit("#!/bin/bash\ntrue\n", current_working_directory=str(tmp_path))
    api.wait_state(first, "COMPLETED")
    pid = server.proc.pid
    # A few descriptors to spare, far fewer than its bound on connections (1,024) assumes.
    _soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (_descriptors(pid) + 24, hard))
    socks: list[socket.socket] = []
    try:
        for _ in range(80):  # idle connections that never send a request
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=2)
            socks.append(sock)
        # Its descriptors are used up. A newcomer is answered, or refused with a 503, or let
        # go at once (its connection closed, as a client sees a full server): never held.
        for _ in range(3):
            started = time.monotonic()
            try:
                answer = httpx.post(
                    server.url + "/jobs/submit",
                    headers=server.headers(),
                    json={"job": {"current_working_directory": str(tmp_path)}, "script": "#!/bin/bash\ntrue\n"},
                    timeout=10,
                )
                assert answer.status_code in (201, 503), answer.text
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError):
                pass
            assert time.monotonic() - started < 5
        assert server.proc.poll() is None
    finally:
        for sock in socks:
            sock.close()
    # Recovered: served again, jobs run, nothing lost.
    deadline = time.monotonic() + 10
    while True:
        try:
            later = api.submit("#!/bin/bash\necho back\n", current_working_directory=str(tmp_path))
            break
        except (httpx.HTTPError, AssertionError):
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
    assert api.wait_state(later, ENDED, timeout=20)["state"] == "COMPLETED", server.log()
    assert api.stats()["used_cpus"] == 0
    api.close()


def _hog(url: str) -> list[Any]:
    """Every connection PostgreSQL will still give (it says "too many clients" after)."""
    import psycopg

    held: list[Any] = []
    while True:
        try:
            held.append(psycopg.connect(url, autocommit=True, connect_timeout=5))
        except psycopg.OperationalError as exc:
            assert "too many clients" in str(exc) or "reserved" in str(exc), exc
            return held


def test_postgresql_out_of_connections_servers_and_workers_wait_and_recover(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path
) -> None:
    cluster = PostgresCluster(max_connections=30)
    cluster.init()
    cluster.start()
    held: list[Any] = []
    try:
        url = cluster.create_database("conductor")
        env = {"CONDUCTOR_DATABASE_URL": url, "CONDUCTOR_HEARTBEAT_INTERVAL": "0.5"}
        server = start_conductor(command="server", home=tmp_path / "server", env=env)
        first = start_conductor("--node-name", "n1", "--cpus", "2", command="worker", home=tmp_path / "n1", env=env, wait=False)
        api = Api(server.url)
        deadline = time.monotonic() + 30
        while not api.http.get("/nodes").json()["nodes"]:
            assert time.monotonic() < deadline, first.log()
            time.sleep(0.1)
        held = _hog(url)
        # No connection left: a new server and a new worker wait, saying why, and do not exit.
        late_env = {**env, "CONDUCTOR_HEARTBEAT_INTERVAL": "0.5"}
        late_server = start_conductor(command="server", home=tmp_path / "late", env=late_env, wait=False)
        late_worker = start_conductor("--node-name", "n2", "--cpus", "2", command="worker", home=tmp_path / "n2", env=late_env, wait=False)
        for process in (late_server, late_worker):
            deadline = time.monotonic() + 30  # a Python start alone takes seconds on a busy machine
            while "too many clients" not in process.log() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert process.proc is not None and process.proc.poll() is None, process.log()
            assert "too many clients" in process.log() and "retrying" in process.log(), process.log()
        # The running server answers what it can with the connections it holds, and what it
        # cannot with a 503 that says why: never a 500.
        accepted = []
        for _ in range(5):
            answer = api.http.post(
                "/jobs/submit", json={"job": {"current_working_directory": str(tmp_path)}, "script": "#!/bin/bash\ntrue\n"}
            )
            assert answer.status_code in (201, 503), answer.text
            if answer.status_code == 201:
                accepted.append(int(answer.json()["job_id"]))
        for connection in held:
            connection.close()
        held = []
        # Connections return: everyone recovers, the late ones start and a job runs on each node.
        late_server.wait_healthy()
        deadline = time.monotonic() + 30
        # Both up: n1 may have been judged silent meanwhile (its heartbeats wanted connections
        # too, on a busy machine past the timeout) and comes back at its next heartbeat.
        up = ("IDLE", "MIXED", "ALLOCATED")
        while sum(n["state"] in up for n in api.http.get("/nodes").json()["nodes"]) < 2:
            assert time.monotonic() < deadline, (first.log(), late_worker.log())
            time.sleep(0.1)
        # The jobs accepted during the outage end first: n1 runs them, and its worker records
        # their ends only once it has connections again (with a backoff), holding its CPUs
        # until then; jobs submitted meanwhile would all go to n2.
        api.wait_all(accepted, timeout=60)
        jobs = [api.submit("#!/bin/bash\nsleep 0.5\n", current_working_directory=str(tmp_path)) for _ in range(4)]
        api.wait_all(jobs, timeout=60)
        ended = [api.job(job_id) for job_id in jobs]
        assert all(job["state"] == "COMPLETED" for job in ended), ended
        assert {job["node_list"] for job in ended} == {"n1", "n2"}, ended
        api.close()
    finally:
        for connection in held:
            connection.close()
        cluster.destroy()
