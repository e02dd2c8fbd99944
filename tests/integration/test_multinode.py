"""Many nodes on one PostgreSQL: two `conductor server`s and three `conductor worker`s (2, 3 and
4 declared CPUs, each in its own CONDUCTOR_HOME) as real processes on this machine. Faults are
real: kill -9 of a server or a worker, a PostgreSQL stopped and started again. After each fault
the CPU accounting of /jobs/stats is compared with the jobs table, queried directly.

Each worker also serves a partition named after its node, so a test can aim a job at one node.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from support import TERMINAL, Api, ConductorProcess, PostgresCluster, free_port

NODES = {"node-a": 2, "node-b": 3, "node-c": 4}
# Short, yet long enough for a killed worker to be restarted within it on a busy 2-core machine
# (a Python start alone can take two seconds there).
HEARTBEAT_TIMEOUT = 5.0
ENV = {
    "CONDUCTOR_HEARTBEAT_INTERVAL": "0.5",
    "CONDUCTOR_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
    "CONDUCTOR_CHECK_INTERVAL": "1",
    "CONDUCTOR_KILL_WAIT": "2",
    "CONDUCTOR_ALLOW_ROOT_JOBS": "true",
}
LIVE = {"IDLE", "MIXED", "ALLOCATED"}


class Cluster:
    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url
        self.work = root / "work"
        self.work.mkdir(parents=True)
        self.ports = [free_port(), free_port()]
        self.servers: list[ConductorProcess | None] = [None, None]
        self.workers: dict[str, ConductorProcess] = {}
        self.db = psycopg.connect(url, autocommit=True)

    # --------------------------------------------------------------- processes
    def _env(self) -> dict[str, str]:
        return {"CONDUCTOR_DATABASE_URL": self.url, **ENV}

    def start_server(self, index: int, wait: bool = True) -> ConductorProcess:
        process = ConductorProcess(self.root / f"server{index}", ["server"], env=self._env(), port=self.ports[index])
        self.servers[index] = process.start(wait=wait)
        return process

    def start_worker(self, name: str, home: Path | None = None) -> ConductorProcess:
        args = ["worker", "--node-name", name, "--cpus", str(NODES.get(name, 1)), "--partition", f"debug,{name}"]
        process = ConductorProcess(home or self.root / name, args, env=self._env()).start(wait=False)
        if home is None:
            self.workers[name] = process
        return process

    def ensure_running(self) -> None:
        """Restart whatever a previous test killed, in parallel, and wait until all serve."""
        for index, server in enumerate(self.servers):
            if server is None or server.proc is None or server.proc.poll() is not None:
                self.start_server(index, wait=False)
        for name in NODES:
            worker = self.workers.get(name)
            if worker is None or worker.proc is None or worker.proc.poll() is not None:
                self.start_worker(name)
        for server in self.servers:
            assert server is not None
            server.wait_healthy(60)
        self.wait_nodes(LIVE, set(NODES), timeout=60)

    def api(self, index: int = 0) -> Api:
        server = self.servers[index]
        assert server is not None
        return Api(server.url)

    def leader(self) -> int:
        """Index of the server holding the scheduler lock, found from PostgreSQL itself."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            row = self.db.execute(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objid = 727002"
            ).fetchone()
            if row:
                pid = int(row[0].rsplit(":", 1)[1])
                for index, server in enumerate(self.servers):
                    if server is not None and server.proc is not None and server.proc.pid == pid:
                        return index
            time.sleep(0.1)
        raise AssertionError("no server holds the scheduler lock")

    # ------------------------------------------------------------------- state
    def nodes(self) -> dict[str, dict[str, Any]]:
        with self.api() as api:
            return {n["name"]: n for n in api.http.get("/nodes").json()["nodes"]}

    def wait_nodes(self, states: set[str], names: set[str], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        seen: dict[str, Any] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                seen = self.nodes()
                if all(name in seen and seen[name]["state"] in states for name in names):
                    return
            time.sleep(0.1)
        raise AssertionError(f"nodes {names} not in {states}: {seen}")

    def assert_accounting(self) -> None:
        """/jobs/stats says what the jobs table says, and no node holds more than it has."""
        last: tuple[Any, ...] = ()
        for _ in range(60):
            with self.api() as api:
                stats = api.stats()
            used, running = self.db.execute(
                "SELECT SUM(allocated_cpus) as total_used_cpus, COUNT(*) as running_count FROM jobs WHERE state = 'RUNNING';"
            ).fetchone()
            last = (stats, used, running)
            if (stats["used_cpus"], stats["running_jobs"]) == (int(used or 0), running):
                break
            time.sleep(0.1)  # a job changed state between the two reads
        else:
            raise AssertionError(f"/jobs/stats disagrees with the jobs table: {last}")
        assert stats["used_cpus"] + stats["available_cpus"] == stats["total_cpus"] or stats["available_cpus"] == 0
        per_node: dict[str, list[int]] = {}
        for node, cpu_ids, allocated in self.db.execute(
            "SELECT node_list, cpu_ids, allocated_cpus FROM jobs WHERE state = 'RUNNING'"
        ).fetchall():
            ids = _cpu_ids(cpu_ids)
            assert len(ids) == allocated
            per_node.setdefault(node, []).extend(ids)
        for node, ids in per_node.items():
            assert len(ids) == len(set(ids)), f"CPUs of {node} given twice: {sorted(ids)}"
            assert len(ids) <= NODES.get(node, 1)

    def cancel_everything(self) -> None:
        with self.api() as api:
            rows = api.jobs(state="PENDING,RUNNING")
            for row in rows:
                api.cancel(row["job_id"])
            api.wait_all([r["job_id"] for r in rows], TERMINAL, timeout=30)

    def close(self) -> None:
        for process in [*self.workers.values(), *self.servers]:
            if process is not None:
                process.kill()
        self.db.close()


def _cpu_ids(text: str) -> list[int]:
    ids: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        ids.extend(range(int(low), int(high or low) + 1))
    return ids


def _alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except FileNotFoundError:
        return False


def _wait_file(path: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            text = path.read_text()
            if text.endswith("\n"):
                return text
        time.sleep(0.02)
    raise AssertionError(f"{path} was not written")


@pytest.fixture(scope="module")
def cluster(pg_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    url = pg_cluster.create_database(f"multinode_{os.getpid()}")
    c = Cluster(tmp_path_factory.mktemp("multinode"), url)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def running(cluster: Cluster) -> Iterator[Cluster]:
    """The whole cluster up; whatever a test leaves running is cancelled after it."""
    cluster.ensure_running()
    yield cluster
    with contextlib.suppress(Exception):
        cluster.ensure_running()
        cluster.cancel_everything()


Api.__enter__ = lambda self: self  # type: ignore[attr-defined]
Api.__exit__ = lambda self, *_: self.close()  # type: ignore[attr-defined]


# ----------------------------------------------------------------------- tests
def test_placement_spreads_load_and_cancels_reach_the_owner(running: Cluster) -> None:
    api, standby_api = running.api(0), running.api(1)
    script = "#!/bin/bash\nsleep 60\n"
    first = [api.submit(script, current_working_directory=str(running.work)) for _ in range(3)]
    # Least-loaded first: three jobs on an idle cluster land on three different nodes.
    assert {api.wait_state(j, "RUNNING")["node_list"] for j in first} == set(NODES)
    rest = [api.submit(script, current_working_directory=str(running.work)) for _ in range(6)]
    for job_id in rest:
        api.wait_state(job_id, "RUNNING")
    extra = api.submit(script, current_working_directory=str(running.work))
    time.sleep(0.3)
    assert api.job(extra)["state"] == "PENDING" and api.job(extra)["reason"] == "Resources"
    assert api.stats() == {"total_cpus": 9, "used_cpus": 9, "available_cpus": 0, "running_jobs": 9, "pending_jobs": 1}
    nodes = running.nodes()
    assert {n: (nodes[n]["alloc_cpus"], nodes[n]["state"]) for n in NODES} == {
        n: (cpus, "ALLOCATED") for n, cpus in NODES.items()
    }
    running.assert_accounting()

    # Cancels go through the standby server; each owner worker hears of it through NOTIFY.
    latencies = []
    for job_id in first + rest:
        t0 = time.monotonic()
        standby_api.cancel(job_id)
        assert standby_api.wait_state(job_id, "CANCELLED", timeout=10)["exit_code"] == "0:15"
        latencies.append(time.monotonic() - t0)
    # The fallback tick is 1 s: a median well under it shows the wake-up came by NOTIFY.
    assert statistics.median(latencies) < 0.5, latencies
    api.wait_state(extra, "RUNNING", timeout=10)
    api.cancel(extra)
    api.wait_state(extra, "CANCELLED")
    running.assert_accounting()
    assert api.stats()["used_cpus"] == 0


def test_nodelist_and_exclude_choose_among_the_live_nodes(running: Cluster) -> None:
    """sbatch --nodelist and --exclude: on an idle cluster the first node by name (node-a) would
    take a job; these land where they are told, and a name no node has is refused."""
    api, script, work = running.api(0), "#!/bin/bash\ntrue\n", str(running.work)
    named = api.submit(script, current_working_directory=work, required_nodes="node-b")
    kept_off = api.submit(script, current_working_directory=work, excluded_nodes=["node-a", "node-c"])
    listed = api.submit(script, current_working_directory=work, excluded_nodes="node-a,node-b")
    placed = {job_id: api.wait_state(job_id, TERMINAL)["node_list"] for job_id in (named, kept_off, listed)}
    assert placed == {named: "node-b", kept_off: "node-b", listed: "node-c"}
    assert api.job(named)["required_nodes"] == "node-b" and api.job(listed)["excluded_nodes"] == "node-a,node-b"
    refused = api.http.post(
        "/jobs/submit", json={"job": {"current_working_directory": work, "required_nodes": "node-z"}, "script": script}
    )
    assert refused.status_code == 400 and "required_nodes" in refused.text and "node-z" in refused.text
    running.assert_accounting()


def test_pack_policy_is_best_fit() -> None:
    from conductor.scheduler.policy import NodeView, PendingJob, schedule

    def views() -> list[NodeView]:
        return [
            NodeView(name, tuple(range(cpus)), list(range(cpus)), 1000, 1000, frozenset({"debug"}))
            for name, cpus in NODES.items()
        ]

    jobs = [PendingJob(id=i, cpus=1) for i in range(3)]
    spread = schedule(jobs, views(), 0.0, policy="spread")
    pack = schedule(jobs, views(), 0.0, policy="pack")
    assert [p.node for p in spread.placements] == ["node-a", "node-b", "node-c"]
    assert [p.node for p in pack.placements] == ["node-a", "node-a", "node-b"]


def test_second_worker_with_a_live_name_is_refused(running: Cluster) -> None:
    intruder = running.start_worker("node-b", home=running.root / "intruder")
    assert intruder.proc is not None
    assert intruder.proc.wait(30) == 1
    assert "already served by a live worker" in intruder.log()
    node = running.nodes()["node-b"]
    assert node["cpus"] == 3 and node["state"] in LIVE
    time.sleep(1.5)  # the real node-b goes on heartbeating: nothing was merged or taken over
    assert running.nodes()["node-b"]["state"] in LIVE


def test_standby_server_takes_over_scheduling(running: Cluster) -> None:
    active = running.leader()
    standby = 1 - active
    server = running.servers[active]
    assert server is not None
    server.kill()
    t0 = time.monotonic()
    api = running.api(standby)
    job_id = api.submit("#!/bin/bash\necho ran\n", current_working_directory=str(running.work))
    job = api.wait_state(job_id, "COMPLETED", timeout=15)
    takeover = time.monotonic() - t0
    assert takeover < 6, f"took {takeover:.1f}s"
    assert running.leader() == standby
    assert job["exit_code"] == "0:0"

    # The restarted server stands by and serves the API; the other one goes on scheduling.
    running.start_server(active)
    time.sleep(1)
    assert running.leader() == standby
    job_id = running.api(active).submit("#!/bin/bash\ntrue\n", current_working_directory=str(running.work))
    running.api(active).wait_state(job_id, "COMPLETED", timeout=10)
    running.assert_accounting()


def test_worker_silent_past_timeout_node_fail_requeue_and_orphans_killed(running: Cluster) -> None:
    api = running.api(0)
    work = running.work / "dead"
    work.mkdir()
    script = "#!/bin/bash\necho $$ > pid.$SLURM_JOB_ID.$SLURM_RESTART_COUNT\nsleep 60\n"

    def submit(**job: Any) -> int:
        return api.submit(script, current_working_directory=str(work), **job)

    # Load node-a to a half and node-b to a third, so spread sends the next debug job to node-c.
    load_a = submit(partition="node-a")
    load_b = submit(partition="node-b", cpus_per_task=2)
    plain = submit(partition="node-c")
    for job_id in (load_a, load_b, plain):
        api.wait_state(job_id, "RUNNING")
    requeue = submit(requeue=True)
    assert api.wait_state(requeue, "RUNNING")["node_list"] == "node-c"
    pids = {j: int(_wait_file(work / f"pid.{j}.0")) for j in (plain, requeue)}

    worker = running.workers["node-c"]
    worker.kill()
    t_kill = time.monotonic()
    # Placed on node-c while its worker is down but not yet declared dead.
    handoff = submit(partition="node-c")
    api.wait_state(handoff, "RUNNING")

    # The job processes outlive their worker for a while (a worker restarted at once takes them
    # back), but not until their node is declared dead: its launcher kills them first, so the
    # requeued job never runs beside its earlier run (they used to run on until the node came
    # back: for ever, when it did not).
    # Dead before the node can be declared dead: its last heartbeat came before the kill, so
    # that is at least the timeout less an interval (0.5 s here) after it.
    deadline = t_kill + HEARTBEAT_TIMEOUT - 0.5
    while any(_alive(pid) for pid in pids.values()):
        assert time.monotonic() < deadline, "the jobs of the dead worker live on"
        time.sleep(0.02)
    killed_after = time.monotonic() - t_kill
    assert killed_after >= 2.0, killed_after  # not at once: a worker restarted at once takes them back
    failed = api.wait_state(plain, "NODE_FAIL", timeout=15)
    waited = time.monotonic() - t_kill
    assert HEARTBEAT_TIMEOUT - 0.6 <= waited < HEARTBEAT_TIMEOUT + 6, waited
    assert failed["reason"] == "NodeDown" and "node-c" in failed["error_msg"]
    again = api.wait_state(requeue, "RUNNING", timeout=10)
    assert again["node_list"] == "node-a" and again["restart_count"] == 1
    assert _wait_file(work / f"pid.{requeue}.1")  # SLURM_RESTART_COUNT=1 in the new run
    new_run = int(_wait_file(work / f"pid.{requeue}.1"))
    assert _alive(new_run) and not any(_alive(pid) for pid in pids.values())
    events = api.http.get(f"/jobs/{requeue}/events").json()["events"]
    assert [e["to_state"] for e in events] == ["PENDING", "RUNNING", "PENDING", "RUNNING"]
    # Never launched: back to pending, no restart counted; it waits for its node.
    hand = api.wait_state(handoff, "PENDING", timeout=5)
    assert hand["restart_count"] == 0
    running.wait_nodes({"DOWN"}, {"node-c"})
    assert api.stats()["total_cpus"] == 5
    running.assert_accounting()

    # The node comes back and takes new work.
    running.start_worker("node-c")
    running.wait_nodes(LIVE, {"node-c"})
    assert api.wait_state(handoff, "RUNNING", timeout=10)["node_list"] == "node-c"
    assert api.job(requeue)["state"] == "RUNNING"  # its new run on node-a is untouched
    assert api.job(plain)["state"] == "NODE_FAIL"
    running.assert_accounting()


def test_worker_back_within_timeout_readopts_its_jobs(running: Cluster) -> None:
    api = running.api(1)
    work = running.work / "readopt"
    work.mkdir()

    def submit(script: str, **job: Any) -> int:
        return api.submit(script, current_working_directory=str(work), partition="node-c", **job)

    # These two end once `go` exists, which is made while their worker is down.
    ok = submit("#!/bin/bash\nwhile [ ! -e go ]; do sleep 0.02; done\necho ok\n")
    bad = submit("#!/bin/bash\nwhile [ ! -e go ]; do sleep 0.02; done\nexit 3\n")
    to_cancel = submit("#!/bin/bash\nsleep 60\n")
    limited = submit("#!/bin/bash\nsleep 60\n", time_limit="0:05")
    for job_id in (ok, bad, to_cancel, limited):
        api.wait_state(job_id, "RUNNING")
    running.workers["node-c"].kill()
    t_kill = time.monotonic()
    handoff = submit("#!/bin/bash\necho handed over\n")  # placed while the worker is away
    (work / "go").touch()
    running.start_worker("node-c")
    running.wait_nodes(LIVE, {"node-c"})
    assert time.monotonic() - t_kill < HEARTBEAT_TIMEOUT

    assert api.wait_state(ok, "COMPLETED", timeout=10)["exit_code"] == "0:0"
    failed = api.wait_state(bad, "FAILED", timeout=10)
    assert failed["exit_code"] == "3:0" and failed["reason"] == "NonZeroExitCode"
    assert api.wait_state(handoff, "COMPLETED", timeout=10)["node_list"] == "node-c"
    assert (work / f"slurm-{handoff}.out").read_text() == "handed over\n"
    assert api.job(to_cancel)["state"] == "RUNNING"
    api.cancel(to_cancel)
    assert api.wait_state(to_cancel, "CANCELLED", timeout=10)["exit_code"] == "0:15"
    timed_out = api.wait_state(limited, "TIMEOUT", timeout=15)
    assert timed_out["reason"] == "TimeLimit" and 4.5 <= timed_out["elapsed"] <= 10
    for job_id in (ok, bad, to_cancel, limited, handoff):
        assert api.job(job_id)["restart_count"] == 0
    running.assert_accounting()


def test_postgres_outage_loses_nothing_and_runs_nothing_twice(
    running: Cluster, pg_cluster: PostgresCluster
) -> None:
    api = running.api(0)
    work = running.work / "outage"
    work.mkdir()
    # Each run appends to its own file: a job run twice would show two "start" lines.
    ids = [
        api.submit(
            f"#!/bin/bash\necho start >> run.$SLURM_JOB_ID\nsleep {delay}\necho end >> run.$SLURM_JOB_ID\n",
            current_working_directory=str(work),
        )
        for delay in (0.5, 1, 1, 2, 2, 8, 8)
    ]
    for job_id in ids:
        api.wait_state(job_id, {"RUNNING", "COMPLETED"})

    # Down for longer than the heartbeat timeout: nobody could heartbeat, nobody may be reaped.
    pg_cluster.stop("immediate")
    started = time.monotonic()
    time.sleep(1.5)  # past the server's memory of the token: checking it reads the database
    # A submission is answered 503 naming the cause, as every route then: it was a bare 500 (the
    # token's check, on the submission's fast path, raised where nothing answered for it).
    for _ in range(2):
        refused = api.http.post("/jobs/submit", json={"job": {"current_working_directory": str(work)},
                                                      "script": "#!/bin/bash\ntrue\n"})
        assert refused.status_code == 503 and "the database is unavailable" in refused.json()["detail"], refused.text
    assert api.http.get("/jobs/stats").status_code == 503
    api.close()
    time.sleep(max(0.0, HEARTBEAT_TIMEOUT + 1.5 - (time.monotonic() - started)))
    pg_cluster.start()
    running.db = psycopg.connect(running.url, autocommit=True)
    for server in running.servers:
        assert server is not None
        server.wait_healthy(30)
    api = running.api(0)
    late = api.submit("#!/bin/bash\necho late\n", current_working_directory=str(work))
    api.wait_all([*ids, late], TERMINAL, timeout=30)
    for job_id in ids:
        job = api.job(job_id)
        assert (job["state"], job["exit_code"], job["restart_count"]) == ("COMPLETED", "0:0", 0), job
        assert (work / f"run.{job_id}").read_text() == "start\nend\n"
        transitions = [e["to_state"] for e in api.http.get(f"/jobs/{job_id}/events").json()["events"]]
        assert transitions == ["PENDING", "RUNNING", "COMPLETED"]
    assert api.job(late)["state"] == "COMPLETED"
    running.wait_nodes(LIVE, set(NODES))
    running.assert_accounting()
    assert api.stats()["total_cpus"] == 9

    # A quick restart (PostgresCluster.restart) as well: the cluster goes on working.
    pg_cluster.restart()
    running.db = psycopg.connect(running.url, autocommit=True)
    running.servers[0].wait_healthy(30)  # type: ignore[union-attr]
    after = running.api(0).submit("#!/bin/bash\ntrue\n", current_working_directory=str(work))
    assert running.api(0).wait_state(after, "COMPLETED", timeout=20)["exit_code"] == "0:0"
    running.assert_accounting()


def test_killing_a_job_process_group_is_never_needed_twice(running: Cluster) -> None:
    """A signal-sent job ends once: the state machine guards every end (CANCELLED here)."""
    api = running.api(0)
    job_id = api.submit("#!/bin/bash\ntrap '' TERM\necho ready\nsleep 60\n", current_working_directory=str(running.work))
    api.wait_state(job_id, "RUNNING")
    # Cancel only once the trap is set: before it, SIGTERM alone would end the job (0:15).
    output = running.work / f"slurm-{job_id}.out"
    deadline = time.monotonic() + 15
    while (not output.exists() or "ready" not in output.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    api.cancel(job_id)
    api.cancel(job_id)
    job = api.wait_state(job_id, "CANCELLED", timeout=15)
    assert job["exit_code"] == f"0:{signal.SIGKILL.value}"
    events = [e["to_state"] for e in api.http.get(f"/jobs/{job_id}/events").json()["events"]]
    assert events.count("CANCELLED") == 1
    running.assert_accounting()


def test_server_and_worker_share_a_sqlite_file(start_conductor: Any, tmp_path: Path) -> None:
    """Without PostgreSQL the two commands still work together on one machine: no NOTIFY, so
    the worker finds its jobs at its fallback tick."""
    env = {"CONDUCTOR_DATABASE_URL": str(tmp_path / "shared.db"), **ENV}
    server: ConductorProcess = start_conductor(home=tmp_path / "server", env=env, command="server")
    start_conductor("--node-name", "solo", "--cpus", "2", home=tmp_path / "worker", env=env, command="worker")
    api = Api(server.url)
    deadline = time.monotonic() + 30
    while api.stats()["total_cpus"] != 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    job_id = api.submit("#!/bin/bash\necho $SLURMD_NODENAME\n", current_working_directory=str(tmp_path))
    assert api.wait_state(job_id, "COMPLETED", timeout=15)["node_list"] == "solo"
    assert (tmp_path / f"slurm-{job_id}.out").read_text() == "solo\n"
    # A second server on the same file stands by: the flock next to the database is taken.
    second: ConductorProcess = start_conductor(home=tmp_path / "server2", env=env, command="server")
    job_id = Api(second.url).submit("#!/bin/bash\ntrue\n", current_working_directory=str(tmp_path))
    assert api.wait_state(job_id, "COMPLETED", timeout=15)["exit_code"] == "0:0"
    assert "now the active scheduler" in server.log() and "now the active scheduler" not in second.log()


def _scrape(server: ConductorProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(server.url + "/metrics", headers=server.headers(), timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_each_server_counts_its_own_events_once(running: Cluster) -> None:
    """/metrics of two servers: a submission is counted by the server that took it, an end by
    the server that schedules (which also logs the transition), so sums over servers are right."""
    servers = [s for s in running.servers if s is not None]
    submitted, ended = ("conductor_jobs_submitted_total", ()), ("conductor_jobs_ended_total", (("state", "COMPLETED"),))
    before = [_scrape(s) for s in servers]
    work = running.work / "metrics"
    work.mkdir(exist_ok=True)
    ids = [running.api(i).submit("#!/bin/bash\ntrue\n", current_working_directory=str(work)) for i in (0, 0, 1)]
    running.api(0).wait_all(ids, {"COMPLETED"})
    leader = running.leader()
    deadline = time.monotonic() + 20  # the feed reads PostgreSQL's history two seconds behind
    after = [_scrape(s) for s in servers]
    while after[leader].get(ended, 0) - before[leader].get(ended, 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.3)
        after = [_scrape(s) for s in servers]
    assert [after[i].get(submitted, 0) - before[i].get(submitted, 0) for i in (0, 1)] == [2, 1]
    assert after[leader].get(ended, 0) - before[leader].get(ended, 0) == 3
    assert after[1 - leader].get(ended, 0) == before[1 - leader].get(ended, 0)
    line = f"job {ids[2]} RUNNING -> COMPLETED"
    assert line in servers[leader].log_path.read_text()
    assert line not in servers[1 - leader].log_path.read_text()
