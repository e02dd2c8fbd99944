"""Fifty nodes on one PostgreSQL and one scheduler: fifty `conductor worker`s of 4 CPUs each, as
real processes on this machine, and one `conductor server`.

Every job lands on a live node, the load is spread over all of them, a node that goes silent is
declared DOWN and its jobs end NODE_FAIL while the others run on, and the PostgreSQL
connections stay what one pool per process and a listener each should be.
"""

from __future__ import annotations

import collections
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from support import TERMINAL, Api, ConductorProcess, PostgresCluster, free_port

NODES = 50
CPUS = 4
ENV = {
    "CONDUCTOR_HEARTBEAT_INTERVAL": "1",
    "CONDUCTOR_HEARTBEAT_TIMEOUT": "8",
    "CONDUCTOR_CHECK_INTERVAL": "1",
    "CONDUCTOR_KILL_WAIT": "2",
    "CONDUCTOR_ALLOW_ROOT_JOBS": "true",
}
LIVE = {"IDLE", "MIXED", "ALLOCATED"}


class Fleet:
    def __init__(self, root: Path, url: str) -> None:
        self.root, self.url = root, url
        env = {"CONDUCTOR_DATABASE_URL": url, **ENV}
        self.server = ConductorProcess(root / "server", ["server"], env=env, port=free_port())
        self.workers = {
            f"n{i:02d}": ConductorProcess(
                root / f"n{i:02d}", ["worker", "--node-name", f"n{i:02d}", "--cpus", str(CPUS)], env=env
            )
            for i in range(1, NODES + 1)
        }

    def nodes(self, api: Api) -> dict[str, str]:
        return {node["name"]: node["state"] for node in api.http.get("/nodes").json()["nodes"]}


@pytest.fixture
def fleet(pg_cluster: PostgresCluster, tmp_path: Path) -> Iterator[Fleet]:
    made = Fleet(tmp_path, pg_cluster.create_database(f"fleet_{os.getpid()}_{free_port()}"))
    made.server.start(wait=False)
    for worker in made.workers.values():
        worker.start(wait=False)
    try:
        made.server.wait_healthy(120)
        yield made
    finally:
        for process in [made.server, *made.workers.values()]:
            process.kill()


def test_fifty_workers_one_scheduler(fleet: Fleet, tmp_path: Path) -> None:
    api = Api(fleet.server.url)
    began = time.monotonic()
    deadline = time.monotonic() + 180
    while set(fleet.nodes(api).values()) != {"IDLE"} or len(fleet.nodes(api)) < NODES:
        assert time.monotonic() < deadline, fleet.nodes(api)
        time.sleep(0.5)

    # As many one-CPU jobs as there are CPUs: spread placement puts four on every node. Each
    # looks for `go` once a second, not five times: 200 processes started a second, not 1,000,
    # beside the 50 workers on a machine of two cores.
    go = tmp_path / "go"
    script = f"#!/bin/bash\nend=$((SECONDS + 300)); while [ ! -e {go} ] && [ $SECONDS -lt $end ]; do sleep 1; done\n"
    jobs = [api.submit(script, current_working_directory=str(tmp_path)) for _ in range(NODES * CPUS)]
    print(f"{NODES} nodes live after {time.monotonic() - began:.1f} s")
    deadline = time.monotonic() + 120
    while len(api.jobs(state="RUNNING")) < len(jobs):
        assert time.monotonic() < deadline, api.stats()
        time.sleep(0.5)
    print(f"{len(jobs)} jobs running after {time.monotonic() - began:.1f} s")
    placed = collections.Counter(api.job(job_id)["node_list"] for job_id in jobs)
    assert set(placed) == set(fleet.workers) and set(placed.values()) == {CPUS}, placed
    assert set(fleet.nodes(api).values()) == {"ALLOCATED"}
    assert api.stats()["used_cpus"] == NODES * CPUS

    # One node goes silent: it is declared DOWN and its jobs end NODE_FAIL; the others run on.
    victim = "n17"
    fleet.workers[victim].stop(signal.SIGKILL)
    on_victim = [job_id for job_id in jobs if api.job(job_id)["node_list"] == victim]
    for job_id in on_victim:
        assert api.wait_state(job_id, TERMINAL, timeout=60)["state"] == "NODE_FAIL"
    assert fleet.nodes(api)[victim] == "DOWN"
    others = [job_id for job_id in jobs if job_id not in on_victim]
    assert {api.job(job_id)["state"] for job_id in others} == {"RUNNING"}
    # Work submitted now goes to live nodes only, as CPUs free up.
    go.touch()
    more = [api.submit("#!/bin/bash\ntrue\n", current_working_directory=str(tmp_path)) for _ in range(100)]
    api.wait_all([*others, *more], timeout=120)
    ended = [api.job(job_id) for job_id in [*others, *more]]
    assert {job["state"] for job in ended} == {"COMPLETED"}
    assert victim not in {job["node_list"] for job in ended}
    assert api.stats()["used_cpus"] == 0
    print(f"done after {time.monotonic() - began:.1f} s")

    # Connections: one pool per process, one listener per process, one lock holder.
    with psycopg.connect(fleet.url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name LIKE 'conductor%%' GROUP BY application_name"
        ).fetchall()
    per_process: collections.Counter[str] = collections.Counter()
    for name, count in rows:
        per_process[name.rsplit(":", 1)[-1]] += count
    total = sum(per_process.values())
    print(f"PostgreSQL connections of {NODES - 1} workers and 1 server: {total}, per process max {max(per_process.values())}")
    assert len(per_process) <= NODES + 1  # the killed worker's are gone
    assert max(per_process.values()) <= 12, rows
    api.close()
