"""Chaos: bursts of jobs while the server, the launcher and the worker are killed with SIGKILL at
random moments, in SQLite mode (`conductor up`) and PostgreSQL mode (`conductor server` and
`conductor worker`).

Invariants, checked once everything is up again and every job has ended:
- every acknowledged job (a 201 with its id) exists;
- no job ran more than once, and every COMPLETED job ran exactly once, to its end;
- no CPU stays allocated;
- no process of any job is left.

Bounded for CI (CONDUCTOR_CHAOS_ROUNDS faults, default 6); longer on demand. The seed is printed
and named in every failure; CONDUCTOR_CHAOS_SEED=N replays one.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from support import TERMINAL, Api, ConductorProcess, PostgresCluster, free_port, launchers

ROUNDS = int(os.environ.get("CONDUCTOR_CHAOS_ROUNDS", "6"))


@dataclass
class Rig:
    """The processes of one mode, each of which can be killed and started again."""

    start: Callable[..., ConductorProcess]
    tmp: Path
    mode: str
    url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    server: ConductorProcess | None = None
    worker: ConductorProcess | None = None

    @property
    def worker_home(self) -> Path:
        return self.tmp / ("home" if self.mode == "sqlite" else "node")

    def start_server(self) -> None:
        if self.mode == "sqlite":
            self.server = self.start("--cpus", "4", home=self.tmp / "home", env=self.env, port=self.port)
        else:
            self.server = self.start(command="server", home=self.tmp / "server", env=self.env, port=self.port)

    def start_worker(self) -> None:
        if self.mode == "postgresql":
            self.worker = self.start(
                "--node-name", "c1", "--cpus", "4", command="worker", home=self.worker_home, env=self.env, wait=False
            )

    def faults(self) -> list[str]:
        return ["server", "launcher"] + (["worker"] if self.mode == "postgresql" else [])

    def inflict(self, fault: str, rng: random.Random) -> None:
        if fault == "launcher":
            for pid in launchers(self.worker_home):
                os.kill(pid, signal.SIGKILL)
            return
        process = self.server if fault == "server" else self.worker
        assert process is not None
        process.kill()
        time.sleep(rng.uniform(0, 0.5))
        if fault == "server":
            self.start_server()
        else:
            self.start_worker()


def _script(runs: Path, seconds: float) -> str:
    # Each run leaves its lines in a file of its own job: how many times it started, and ended.
    return (
        "#!/bin/bash\n"
        f'echo "start $$" >> {runs}/$SLURM_JOB_ID\n'
        f"sleep {seconds:.2f}\n"
        f'echo "end $$" >> {runs}/$SLURM_JOB_ID\n'
    )


def _job_processes(mark: str) -> list[int]:
    """Processes whose environment carries `mark`: a job's, or one it started."""
    found = []
    needle = f"CHAOS_MARK={mark}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture(params=["sqlite", "postgresql"])
def rig(request: pytest.FixtureRequest, start_conductor: Callable[..., ConductorProcess], tmp_path: Path) -> Rig:
    made = Rig(start_conductor, tmp_path, request.param)
    # Fast failure detection, so that faults are noticed within the test's time.
    made.env = {"CONDUCTOR_HEARTBEAT_TIMEOUT": "6", "CONDUCTOR_CHECK_INTERVAL": "0.5"}
    if request.param == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        made.env["CONDUCTOR_DATABASE_URL"] = cluster.create_database(f"chaos_{os.getpid()}_{free_port()}")
        made.env["CONDUCTOR_HEARTBEAT_INTERVAL"] = "0.5"
    return made


def test_chaos_kills_lose_no_job_and_run_none_twice(rig: Rig, tmp_path: Path) -> None:
    seed = int(os.environ.get("CONDUCTOR_CHAOS_SEED") or random.randrange(2**32))
    print(f"chaos seed {seed} ({rig.mode}); replay with CONDUCTOR_CHAOS_SEED={seed}")
    rng = random.Random(seed)
    runs = tmp_path / "runs"
    runs.mkdir()
    mark = str(tmp_path)
    rig.start_server()
    rig.start_worker()
    assert rig.server is not None
    url, token = rig.server.url, rig.server.token
    acknowledged: list[int] = []
    stop = threading.Event()
    # Each burst's durations drawn up front from the seed: a replay submits the same jobs.
    bursts = [[0.0 if rng.random() < 0.85 else rng.uniform(1, 3) for _ in range(rng.randint(3, 12))] for _ in range(200)]

    def submit_bursts() -> None:
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
        for burst in bursts:
            for seconds in burst:
                if stop.is_set():
                    client.close()
                    return
                body = {
                    "job": {"current_working_directory": str(tmp_path), "environment": {"CHAOS_MARK": mark}},
                    "script": _script(runs, seconds),
                }
                try:
                    answer = client.post("/jobs/submit", json=body)
                except httpx.HTTPError:
                    continue  # not acknowledged: the server was down
                if answer.status_code == 201:
                    acknowledged.append(int(answer.json()["job_id"]))
                else:
                    assert answer.status_code == 503, answer.text
            time.sleep(0.4)
        client.close()

    submitter = threading.Thread(target=submit_bursts)
    submitter.start()
    # Every kind of fault at least once, in a random order, then random ones.
    kinds = rig.faults()
    rng.shuffle(kinds)
    plan = kinds + [rng.choice(rig.faults()) for _ in range(max(0, ROUNDS - len(kinds)))]
    faults: list[str] = []
    try:
        for fault in plan:
            time.sleep(rng.uniform(0.5, 2.5))
            faults.append(fault)
            rig.inflict(fault, rng)
        time.sleep(1.0)
    finally:
        stop.set()
        submitter.join(30)
    context = f"seed {seed}, {rig.mode}, faults {faults}"
    assert acknowledged, context

    api = Api(rig.server.url, token)
    api.wait_all(acknowledged, TERMINAL, timeout=120)
    jobs = {job_id: api.job(job_id) for job_id in acknowledged}
    for job_id, job in jobs.items():
        path = runs / str(job_id)
        lines = path.read_text().splitlines() if path.exists() else []
        starts = [line for line in lines if line.startswith("start")]
        ends = [line for line in lines if line.startswith("end")]
        assert len(starts) <= 1, f"job {job_id} ran {len(starts)} times: {job} ({context})"
        if job["state"] == "COMPLETED":
            assert (len(starts), len(ends)) == (1, 1), f"job {job_id} COMPLETED but ran {lines}: {job} ({context})"
    deadline = time.monotonic() + 30
    while api.stats()["used_cpus"] != 0:
        assert time.monotonic() < deadline, f"CPUs still allocated: {api.stats()} ({context})"
        time.sleep(0.2)
    deadline = time.monotonic() + 15
    while left := _job_processes(mark):
        assert time.monotonic() < deadline, f"processes of jobs left: {left} ({context})"
        time.sleep(0.2)
    states = sorted({job["state"] for job in jobs.values()})
    print(f"chaos {rig.mode}: {len(acknowledged)} jobs acknowledged, faults {faults}, states {states}")
    api.close()
