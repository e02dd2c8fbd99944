"""Views over a long history, run by hand: `python bench/history.py [--ended N] [--database-url URL | --own-postgres]`.

Loads N ended jobs (default 1,000,000, spread over 30 days and 100 users), 10,000 pending and
1,000 running ones (on 100 nodes of 10 CPUs, all busy) straight into a fresh database, starts a
`conductor server` on it, and times what users and the scheduler do over it: the default
`squeue`, its views of ended jobs (`-t all`, `-t CD`), `squeue -u`, `sacct` for one user over
one day, `sacct -j`, `GET /jobs` pages, `/jobs/stats`, the dashboard's queue page, a scheduler
pass, and REST submissions per second
against the same on a database holding the same live jobs but no history. Prints figures
(medians of several runs); asserts nothing about time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # bench/run.py: the shared helpers

USERS = 100
NODES = 100
CPUS_PER_NODE = 10


def load(database_url: str, ended: int, pending: int = 10_000, running: int = 1_000) -> None:
    from sqlalchemy import insert

    from conductor.store import Store
    from conductor.store.schema import job_events, jobs

    store = Store(database_url)
    store.migrate()
    now = datetime.now(UTC)
    for n in range(NODES):
        store.register_node(
            name=f"n{n:03d}", cpus=CPUS_PER_NODE, cpu_ids=list(range(CPUS_PER_NODE)), cpu_binding=False,
            memory_mb=64_000, partitions=["debug"], instance=f"bench:{n}", hostname="bench", stale_before=None,
        )
    rng = random.Random(1)
    base = {
        "partition": "debug", "cpus_per_task": 1, "ntasks": 1, "work_dir": "/tmp", "script": "#!/bin/bash\ntrue\n",
        "environment": "{}", "reason": "None", "time_limit": 3600,
    }
    states = ["COMPLETED"] * 8 + ["FAILED", "CANCELLED"]
    started = time.perf_counter()
    chunk = 10_000
    next_id = 1
    with store.engine.begin() as conn:
        for first in range(0, ended, chunk):
            rows = []
            events = []
            for _ in range(min(chunk, ended - first)):
                end = now - timedelta(seconds=rng.uniform(600, 30 * 86400))
                start = end - timedelta(seconds=rng.uniform(1, 3600))
                state = rng.choice(states)
                rows.append({
                    **base, "id": next_id, "name": f"job{next_id % 1000}", "user_name": f"user{rng.randrange(USERS)}",
                    "state": state, "submit_time": start - timedelta(seconds=rng.uniform(0, 600)), "start_time": start,
                    "end_time": end, "exit_code": "0:0" if state == "COMPLETED" else "1:0", "launched": True,
                    "node_list": f"n{rng.randrange(NODES):03d}", "allocated_cpus": 0,
                })
                events.append({"job_id": next_id, "time": end, "from_state": "RUNNING", "to_state": state})
                next_id += 1
            conn.execute(insert(jobs), rows)
            conn.execute(insert(job_events), events)
        live: list[dict[str, object]] = []
        for i in range(running):
            node = i // CPUS_PER_NODE
            live.append({
                **base, "id": next_id, "name": "run", "user_name": f"user{i % USERS}", "state": "RUNNING",
                "submit_time": now - timedelta(minutes=5), "start_time": now - timedelta(minutes=4), "launched": True,
                "node_list": f"n{node:03d}", "cpu_ids": str(i % CPUS_PER_NODE), "allocated_cpus": 1,
                "allocated_memory_mb": 0,
            })
            next_id += 1
        conn.execute(insert(jobs), live)
        live = []
        for i in range(pending):
            live.append({
                **base, "id": next_id, "name": "wait", "user_name": f"user{i % USERS}", "state": "PENDING",
                "submit_time": now - timedelta(seconds=pending - i), "eligible_time": now, "reason": "Resources",
            })
            next_id += 1
        conn.execute(insert(jobs), live)
    if store.dialect == "postgresql":
        # Rows were inserted with their ids: the sequences must start after them, or the
        # first submission collides with a loaded job.
        from sqlalchemy import text

        with store.engine.begin() as conn:
            for table in ("jobs", "job_events"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
        # A history of a million jobs builds up over weeks, and autovacuum visits the table
        # meanwhile; one loaded a second ago has no planner statistics and no visibility map
        # yet. Measured here without this: the count of a state's jobs 200 ms instead of 21, a
        # page deep in 60 ms instead of 0.3 (a plan chosen blind).
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in ("jobs", "job_events"):
                conn.execute(text(f"VACUUM ANALYZE {table}"))
    print(
        f"history: loaded {ended:,} ended, {pending:,} pending, {running:,} running jobs into {store.dialect} "
        f"in {time.perf_counter() - started:.0f} s"
    )
    store.close()


def end_recently(database_url: str, ended: int, count: int = 2_000) -> None:
    """Make the last `count` loaded ended jobs end a minute ago: what squeue's views of ended
    jobs (`-t all`, `-t CD`) show, those that ended within MinJobAge (five minutes)."""
    from sqlalchemy import update

    from conductor.store import Store
    from conductor.store.schema import jobs

    store = Store(database_url)
    with store.engine.begin() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id > ended - count, jobs.c.id <= ended)
            .values(end_time=datetime.now(UTC) - timedelta(minutes=1))
        )
    store.close()


@contextlib.contextmanager
def server(home: Path, database_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    port = common.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    env.update({
        "CONDUCTOR_HOME": str(home), "CONDUCTOR_DATABASE_URL": database_url,
        # The nodes are rows only: no worker heartbeats them, and none may be judged dead.
        "CONDUCTOR_HEARTBEAT_TIMEOUT": "86400",
        "CONDUCTOR_ALLOW_ROOT_JOBS": "true",
    })
    home.mkdir(parents=True, exist_ok=True)
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "conductor", "server", "--port", str(port), "--log-level", "WARNING"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError((home / "server.log").read_text())
        yield url, common._token_headers(home)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def median_ms(action: Callable[[], object], runs: int = 5) -> float:
    action()  # warm: the first read of a cold page cache is not what users see twice
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        action()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def cli(url: str, home: Path, *args: str) -> Callable[[], object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    env.update({"CONDUCTOR_URL": url, "CONDUCTOR_HOME": str(home)})

    def run() -> object:
        result = subprocess.run([sys.executable, "-m", "conductor", *args], capture_output=True, env=env, check=False)
        if result.returncode != 0:
            raise RuntimeError(result.stderr.decode())
        return result.stdout

    return run


def submissions_per_second(url: str, headers: dict[str, str], count: int = 2000, clients: int = 8) -> float:
    body = (
        b'{"job": {"current_working_directory": "/tmp", "begin_time": "now+1day", "name": "later"}, '
        b'"script": "#!/bin/bash\\ntrue\\n"}'
    )
    errors = []

    def work(n: int) -> None:
        c = common.RawHttp(url, headers)
        request = c.encode("POST", "/jobs/submit", body)
        for _ in range(n):
            status, answer = c.send(request)
            if status != 201:
                errors.append(answer)
        c.close()

    threads = [threading.Thread(target=work, args=(count // clients,)) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(errors[0])
    return count / (time.perf_counter() - t0)


def scheduler_pass_ms(database_url: str) -> tuple[float, float, float]:
    """(the first pass over the loaded backlog, the next one, a restarted scheduler's first).

    The first writes a reason into nearly every loaded pending job (they are loaded with one
    reason for all); a scheduler started again over a backlog it decided before (a restart, a
    standby taking over) finds them right and writes nothing."""
    from conductor.bus import Bus
    from conductor.scheduler.loop import Scheduler
    from conductor.store import Store

    store = Store(database_url)
    scheduler = Scheduler(store, Bus(), heartbeat_timeout=86400)
    t0 = time.perf_counter()
    scheduler.run_pass()
    first = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    scheduler.run_pass()
    steady = (time.perf_counter() - t0) * 1000
    restarted = Scheduler(store, Bus(), heartbeat_timeout=86400)
    t0 = time.perf_counter()
    restarted.run_pass()
    again = (time.perf_counter() - t0) * 1000
    store.close()
    return first, steady, again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ended", type=int, default=1_000_000, help="ended jobs to load (default 1,000,000)")
    parser.add_argument("--database-url", help="a PostgreSQL server (a scratch database is made on it)")
    parser.add_argument("--own-postgres", action="store_true", help="as --database-url, on a throw-away cluster")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    root = Path(tempfile.mkdtemp(prefix="conductor-history-"))
    scratch = contextlib.ExitStack()
    try:
        server_url = args.database_url
        if args.own_postgres:
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
            from support import postgres_cluster

            server_url = scratch.enter_context(postgres_cluster()).url()

        def database(name: str) -> str:
            if server_url is None:
                return "sqlite:///" + str(root / name / "conductor.db")
            return scratch.enter_context(common.scratch_database(server_url))

        (root / "empty").mkdir()
        (root / "full").mkdir()
        # The same live jobs and nodes without the history: what the history alone costs.
        empty_url = database("empty")
        load(empty_url, 0)
        with server(root / "empty", empty_url) as (url, headers):
            empty_rate = submissions_per_second(url, headers)
        full_url = database("full")
        load(full_url, args.ended)
        first, steady, again = scheduler_pass_ms(full_url)
        recent = min(2_000, args.ended)
        end_recently(full_url, args.ended, recent)
        home = root / "full"
        with server(home, full_url) as (url, headers):
            http = httpx.Client(base_url=url, headers=headers, timeout=120)
            day_start = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT00:00:00")
            day_end = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT00:00:00")
            some_id = args.ended // 2

            def get(path: str, **params: object) -> Callable[[], object]:
                def run() -> object:
                    response = http.get(path, params=params)
                    response.raise_for_status()
                    return response

                return run

            # The dashboard, signed in with the same token as a browser would be.
            browser = httpx.Client(base_url=url, timeout=120)
            token = headers["Authorization"].removeprefix("Bearer ")
            if browser.post("/ui/login", data={"token": token}).status_code != 303:
                raise RuntimeError("the dashboard refused the token")

            def page(path: str) -> Callable[[], object]:
                def run() -> object:
                    response = browser.get(path)
                    response.raise_for_status()
                    return response

                return run

            figures = [
                ("squeue (default view)", median_ms(cli(url, home, "squeue"))),
                # Within the five minutes those jobs count as recently ended.
                (f"squeue -t all ({recent:,} ended within MinJobAge)", median_ms(cli(url, home, "squeue", "-t", "all"))),
                ("squeue -t CD", median_ms(cli(url, home, "squeue", "-t", "CD"))),
                ("squeue -u user7", median_ms(cli(url, home, "squeue", "-u", "user7"))),
                ("sacct -u user7, one day", median_ms(cli(url, home, "sacct", "-u", "user7", "-S", day_start, "-E", day_end))),
                (f"sacct -j {some_id}", median_ms(cli(url, home, "sacct", "-j", str(some_id)))),
                ("GET /jobs?state=PENDING,RUNNING (first page)", median_ms(get("/jobs", state="PENDING,RUNNING"))),
                ("GET /jobs?state=COMPLETED&limit=100 (first page)", median_ms(get("/jobs", state="COMPLETED", limit=100))),
                ("GET /jobs?state=COMPLETED&limit=100 (a page deep in)",
                 median_ms(get("/jobs", state="COMPLETED", limit=100, after=some_id))),
                ("GET /jobs/stats", median_ms(get("/jobs/stats"))),
                ("dashboard queue (live jobs, first page)", median_ms(page("/ui/queue"))),
                ("dashboard queue (every state, first page)", median_ms(page("/ui/queue?state=all"))),
                ("dashboard queue (user7's completed jobs)", median_ms(page("/ui/queue?state=COMPLETED&user=user7"))),
                ("a command's own start (squeue --version)", median_ms(cli(url, home, "squeue", "--version"))),
            ]
            full_rate = submissions_per_second(url, headers)
            http.close()
            browser.close()
        dialect = "sqlite" if server_url is None else "postgresql"
        print(f"history: {args.ended:,} ended jobs on {dialect}, medians of 5:")
        for name, ms in figures:
            print(f"  {name:<52} {ms:8.1f} ms")
        print(f"  {'scheduler pass (first / nothing changed)':<52} {first:8.1f} / {steady:.1f} ms")
        print(f"  {'scheduler pass (restarted scheduler, first)':<52} {again:8.1f} ms")
        print(
            f"  {'REST submissions/s (8 clients), no history -> history':<52} {empty_rate:8.0f} -> {full_rate:.0f} "
            f"({(full_rate / empty_rate - 1) * 100:+.0f}%)"
        )
    finally:
        scratch.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
