"""Many nodes, run by hand: `python bench/nodes.py [--counts 10,25,50] [--database-url URL]`.

For each node count N: one `conductor server` and N `conductor worker`s of 4 CPUs each, all on
this machine, on a fresh database of one PostgreSQL (a throw-away cluster unless --database-url
names a server). Once every node is up, a burst of 4N one-CPU jobs (one per CPU) is submitted,
and printed are: how long the burst took to be placed and running (submit to start, p50 and
p95, from the jobs' own times), the mean scheduler pass time (from /metrics), how the jobs
spread over the nodes, and the PostgreSQL connections in use, in all and per process.
Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import run as common  # bench/run.py: the shared helpers

CPUS = 4


def _start(argv: list[str], home: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    home.mkdir(parents=True, exist_ok=True)
    log = open(home / "log", "wb")
    return subprocess.Popen(
        [sys.executable, "-m", "conductor", *argv, "--log-level", "WARNING"],
        env={**env, "CONDUCTOR_HOME": str(home)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )


@contextlib.contextmanager
def fleet(url: str, nodes: int) -> Iterator[tuple[str, dict[str, str]]]:
    root = Path(tempfile.mkdtemp(prefix="conductor-nodes-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    env.update({"CONDUCTOR_DATABASE_URL": url, "CONDUCTOR_ALLOW_ROOT_JOBS": "true", "CONDUCTOR_METRICS_PUBLIC": "true"})
    port = common.free_port()
    procs = [_start(["server", "--port", str(port)], root / "server", env)]
    procs += [
        _start(["worker", "--node-name", f"n{i:03d}", "--cpus", str(CPUS)], root / f"n{i:03d}", env)
        for i in range(nodes)
    ]
    server = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(server + "/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, (root / "server" / "log").read_text()
            time.sleep(0.2)
        yield server, common._token_headers(root / "server")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(root, ignore_errors=True)


def _pass_seconds(http: httpx.Client) -> tuple[float, float]:
    """(sum, count) of the scheduler pass histogram in /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    found = {
        sample.name: sample.value
        for family in text_string_to_metric_families(http.get("/metrics").text)
        for sample in family.samples
        if sample.name.startswith("conductor_scheduler_pass_seconds_")
    }
    return found["conductor_scheduler_pass_seconds_sum"], found["conductor_scheduler_pass_seconds_count"]


def measure(url: str, nodes: int) -> None:
    with fleet(url, nodes) as (server, headers):
        http = common.client(server, headers)
        began = time.monotonic()
        while True:
            states = [node["state"] for node in http.get("/nodes").json()["nodes"]]
            if len(states) == nodes and set(states) == {"IDLE"}:
                break
            assert time.monotonic() - began < 300, states
            time.sleep(0.5)
        up = time.monotonic() - began
        work = Path(tempfile.mkdtemp(prefix="conductor-nodes-work-"))
        job = {"current_working_directory": str(work), "standard_output": "/dev/null"}
        body = {"job": job, "script": "#!/bin/bash\nsleep 20\n"}
        before = _pass_seconds(http)
        ids = [int(http.post("/jobs/submit", json=body).json()["job_id"]) for _ in range(nodes * CPUS)]
        deadline = time.monotonic() + 120
        while http.get("/jobs/stats").json()["running_jobs"] < len(ids):
            assert time.monotonic() < deadline, http.get("/jobs/stats").json()
            time.sleep(0.2)
        after = _pass_seconds(http)
        jobs = common.all_jobs(http, state="RUNNING")
        waits = sorted(
            (datetime.fromisoformat(str(j["start_time"])) - datetime.fromisoformat(str(j["submit_time"]))).total_seconds()
            for j in jobs
        )
        spread = collections.Counter(str(j["node_list"]) for j in jobs)
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT application_name FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name LIKE 'conductor%'"
            ).fetchall()
        per_process = collections.Counter(name.rsplit(":", 1)[-1] for (name,) in rows)
        passes = after[1] - before[1]
        print(
            f"nodes {nodes:>3}: up in {up:5.1f} s; {len(ids)} jobs running, submit->start p50 "
            f"{statistics.median(waits) * 1000:6.0f} ms p95 {common.percentile(waits, 95) * 1000:6.0f} ms; "
            f"{passes:.0f} passes, mean {(after[0] - before[0]) / max(passes, 1) * 1000:5.1f} ms; "
            f"jobs per node {min(spread.values())}-{max(spread.values())}; "
            f"PostgreSQL connections {len(rows)} ({len(per_process)} processes, at most {max(per_process.values())} each)",
            flush=True,
        )
        for job_id in ids:
            http.post(f"/jobs/cancel/{job_id}")
        http.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="10,25,50", help="node counts, comma separated")
    parser.add_argument("--database-url", help="a PostgreSQL server (default: a throw-away cluster)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; {CPUS} declared CPUs per node")
    with contextlib.ExitStack() as stack:
        if args.database_url:
            server_url = args.database_url
        else:
            sys.path.insert(0, str(ROOT / "tests"))
            from support import postgres_cluster

            server_url = stack.enter_context(postgres_cluster()).url()
        for count in (int(c) for c in args.counts.split(",")):
            with common.scratch_database(server_url) as url:
                measure(url, count)


if __name__ == "__main__":
    main()
