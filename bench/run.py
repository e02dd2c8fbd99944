"""Benchmarks of the core, run by hand: `make bench` or `python bench/run.py [names...]`.

Prints figures; asserts nothing about time. Each benchmark starts its own `conductor up` in a
temporary home on a free port.

  latency     submit -> first line of the job, p50/p95 over 100 sequential jobs (idle system)
  throughput  end-to-end drain of 2,000 `true` jobs on 64 declared CPUs
  submit      REST submissions per second (jobs held back by --begin so nothing runs)
  submit-keyed  the same, each submission with an Idempotency-Key of its own (a UUID)

The load of `throughput` and `submit` comes from a bare-socket HTTP client (RawHttp), as a
load generator such as wrk would send it: the client runs on the same two cores as the server
and must not be what is measured.
  pass        one scheduler pass (the pure policy, with backfill) over 10,000 and 100,000 pending
              jobs, 1,000 running with time limits on 100 nodes (see also bench/simulate.py)
  loop        one full scheduler pass through the store (load + decide + apply) over 10,000
  dependencies  the dependency resolution of one pass: a 10,000-task array depending on another
              (afterok on the whole array, aftercorr task by task)

With --containment MODE the workers contain jobs as told (CONDUCTOR_CONTAINMENT: auto, cgroup-v2,
cgroup-v1, none); by default they choose (auto: cgroups where they can). With --job-starter
python the workers' launchers fork each job instead of spawning the C job starter
(CONDUCTOR_JOB_STARTER).

With --database-url URL (a PostgreSQL server; each benchmark gets a scratch database on it) or
--own-postgres (a throw-away cluster, as the tests start), the system under test is instead a
`conductor server` and two `conductor worker`s sharing the CPUs, talking through PostgreSQL.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def client(url: str, headers: dict[str, str], timeout: float = 60) -> httpx.Client:
    """An HTTP client with Nagle's algorithm off.

    httpx writes a request's headers and body in two sends; with Nagle on, the body waits for
    the ACK of the headers, which the server delays by 40 ms: every POST would take 40 ms
    whatever the server does. Real clients (our CLI sends one buffer) do not pay this.
    """
    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    return httpx.Client(base_url=url, headers=headers, timeout=timeout, transport=transport)


def all_jobs(http: httpx.Client, **params: object) -> list[dict[str, object]]:
    """Every job matching `params`, following GET /jobs's pages."""
    found: list[dict[str, object]] = []
    after = None
    while True:
        page = http.get("/jobs", params={**params, **({"after": after} if after is not None else {})}).json()
        found.extend(page["jobs"])
        after = page.get("next_after")
        if after is None:
            return found


class RawHttp:
    """A keep-alive HTTP/1.1 client on a bare socket, for load generation.

    A load generator must cost less than the server it loads: with both on two cores, httpx
    (about 0.4 ms of CPU per request, all clients sharing one GIL) tops out below what the
    server can take, and the figure measured would be the client's. This one sends a
    pre-encoded request in one write and parses only the status line and Content-Length,
    like wrk or ab would.
    """

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.head = f"Host: {host}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.buffer = b""

    def encode(self, method: str, path: str, body: bytes = b"") -> bytes:
        extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n" if body else ""
        return f"{method} {path} HTTP/1.1\r\n{self.head}{extra}\r\n".encode() + body

    def send(self, request: bytes) -> tuple[int, bytes]:
        """Send one pre-encoded request; (status, body) of its response."""
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        if match is None:
            raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
        length = int(match.group(1))
        while len(rest) < length:
            self.buffer = head + b"\r\n\r\n" + rest
            self._fill()
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
        self.buffer = rest[length:]
        return int(head[9:12]), rest[:length]

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


# The processes the running benchmark started (`conductor up`, or a server and its workers).
STARTED: list[int] = []
# The postmaster of --own-postgres's cluster: its processes' CPU is the database's share.
DATABASE_PID: int | None = None


def _stat_times(pid: int) -> tuple[int, float, float]:
    """(parent pid, own CPU seconds of all its threads, CPU seconds of its reaped children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def cpu_split() -> dict[str, float]:
    """CPU seconds used so far by the system under test, by role: the conductor processes
    themselves, their launchers, and the jobs (children the launchers have reaped, the job
    starter included). Jobs still running and launchers that ended count nowhere but in the
    conductor process's reaped children ("ended"). With --own-postgres, the database's
    processes too."""
    split = {"conductor": 0.0, "launchers": 0.0, "jobs": 0.0, "ended": 0.0, "database": 0.0}
    for pid in STARTED:
        with contextlib.suppress(OSError):
            _, own, reaped = _stat_times(pid)
            split["conductor"] += own
            split["ended"] += reaped
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            pid = int(entry)
            if DATABASE_PID is not None and pid == DATABASE_PID:
                _, own, reaped = _stat_times(pid)
                split["database"] += own + reaped
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                launcher = b"launcher.py" in f.read()
            parent, own, reaped = _stat_times(pid)
            if launcher and parent in STARTED:
                split["launchers"] += own
                split["jobs"] += reaped
            elif DATABASE_PID is not None and parent == DATABASE_PID:
                split["database"] += own + reaped
    return split


def print_cpu_split(label: str, jobs: int, before: dict[str, float], after: dict[str, float], client: float) -> None:
    """Where the CPU went per job between two `cpu_split`s (`client`: the load generator's own
    CPU seconds meanwhile)."""
    per = {role: (after[role] - before[role]) * 1000 / jobs for role in after}
    total = sum(per.values()) + client * 1000 / jobs
    database = f" + database {per['database']:.2f}" if DATABASE_PID is not None else ""
    print(
        f"{label}: CPU per job {total:.2f} ms = jobs {per['jobs']:.2f} + conductor {per['conductor']:.2f} "
        f"+ launchers {per['launchers']:.2f} + ended launchers {per['ended']:.2f}{database} "
        f"+ load client {client * 1000 / jobs:.2f}"
    )


def _token_headers(home: Path) -> dict[str, str]:
    token_file = home / "token"
    if token_file.exists():
        return {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    return {}


# A PostgreSQL server: when set, benchmarks run on `conductor server` + two workers there.
DATABASE_URL: str | None = None
# How the workers contain jobs (CONDUCTOR_CONTAINMENT); None: as they choose.
CONTAINMENT: str | None = None
# How their launchers start jobs (CONDUCTOR_JOB_STARTER); None: as they choose.
JOB_STARTER: str | None = None


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A fresh database on the PostgreSQL server of `server_url`, dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(server_url).set(drivername="postgresql")
    name = f"conductor_bench_{os.getpid()}_{random.randrange(16**8):08x}"
    admin = base.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def many_nodes(cpus: int, extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """`conductor server` and two `conductor worker`s (half the CPUs each) on a scratch database."""
    assert DATABASE_URL is not None
    root = Path(tempfile.mkdtemp(prefix="conductor-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    with scratch_database(DATABASE_URL) as db_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
        env.update({"CONDUCTOR_DATABASE_URL": db_url, "CONDUCTOR_ALLOW_ROOT_JOBS": "true", **(extra_env or {})})

        def spawn(home: Path, *args: str) -> None:
            home.mkdir()
            with open(home / "conductor.log", "wb") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "conductor", *args, "--log-level", "WARNING"],
                        env={**env, "CONDUCTOR_HOME": str(home)},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
                STARTED.append(procs[-1].pid)

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        try:
            spawn(root / "server", "server", "--port", str(port))
            half = cpus // 2
            for index, node_cpus in enumerate((half, cpus - half), start=1):
                spawn(root / f"worker{index}", "worker", "--node-name", f"bench{index}", "--cpus", str(node_cpus))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    headers = _token_headers(root / "server")
                    if httpx.get(url + "/jobs/stats", headers=headers, timeout=1).json().get("total_cpus") == cpus:
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                time.sleep(0.1)
            else:
                raise RuntimeError((root / "server" / "conductor.log").read_text())
            yield url, root / "server", _token_headers(root / "server")
        finally:
            for proc in procs:
                STARTED.remove(proc.pid)
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
            shutil.rmtree(root, ignore_errors=True)


@contextmanager
def conductor(cpus: int, extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, Path, dict[str, str]]]:
    if CONTAINMENT is not None:
        extra_env = {"CONDUCTOR_CONTAINMENT": CONTAINMENT, **(extra_env or {})}
    if JOB_STARTER is not None:
        extra_env = {"CONDUCTOR_JOB_STARTER": JOB_STARTER, **(extra_env or {})}
    if DATABASE_URL is not None:
        with many_nodes(cpus, extra_env) as started:
            yield started
        return
    home = Path(tempfile.mkdtemp(prefix="conductor-bench-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    # XDG_CONFIG_HOME: `up` records itself in its user's profile; the bench's server is not the user's.
    env.update({"CONDUCTOR_HOME": str(home), "XDG_CONFIG_HOME": str(home / "xdg"), **(extra_env or {})})
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "conductor", "up", "--cpus", str(cpus), "--port", str(port), "--log-level", "WARNING"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    STARTED.append(proc.pid)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        else:
            raise RuntimeError((home / "server.log").read_text())
        yield url, home, _token_headers(home)
    finally:
        STARTED.remove(proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def bench_latency(count: int = 100) -> None:
    with conductor(cpus=2) as (url, home, headers):
        work = home / "work"
        work.mkdir()
        http = client(url, headers)
        # $EPOCHREALTIME is a bash builtin: the first line costs no extra process.
        script = "#!/bin/bash\necho $EPOCHREALTIME\n"
        latencies: list[float] = []
        for _ in range(count):
            t0 = time.time()
            r = http.post(
                "/jobs/submit", json={"job": {"current_working_directory": str(work)}, "script": script}
            )
            job_id = r.json()["job_id"]
            out = work / f"slurm-{job_id}.out"
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    text = out.read_text()
                except FileNotFoundError:
                    text = ""
                if text.endswith("\n"):
                    latencies.append(float(text.split()[0]) - t0)
                    break
                time.sleep(0.0005)
            # Wait until the job is over so every sample sees an idle system.
            while http.get(f"/jobs/{job_id}").json()["state"] == "RUNNING":
                time.sleep(0.001)
        ms = [x * 1000 for x in latencies]
        print(
            f"latency: submit -> first line over {len(ms)} jobs: p50 {percentile(ms, 50):.1f} ms, "
            f"p95 {percentile(ms, 95):.1f} ms, min {min(ms):.1f} ms, max {max(ms):.1f} ms"
        )


def bash_alone(script: Path, count: int = 500) -> float:
    """CPU seconds one run of `script` by bash costs on this machine, with nothing else: what a
    `true` job costs whoever runs it (a loop of bash forks and execs bash; the loop's own fork
    is in the figure, as the job starter's is in a job's)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(["/bin/bash", "-c", f"for ((i = 0; i < {count}; i++)); do /bin/bash {script}; done"], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / count


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_throughput(count: int = 2000, cpus: int = 64) -> None:
    with conductor(cpus=cpus) as (url, home, headers):
        work = home / "work"
        work.mkdir()
        script = "#!/bin/bash\ntrue\n"
        (work / "true.sh").write_text(script)
        alone = bash_alone(work / "true.sh")
        cores = os.cpu_count() or 1
        print(
            f"throughput: bash alone runs the `true` job in {alone * 1000:.2f} ms of CPU here: "
            f"{cores} cores could run at most {cores / alone:.0f} such jobs/s with nothing else"
        )
        http = client(url, headers)
        job = {"current_working_directory": str(work), "standard_output": "/dev/null"}
        cpu_before, client_before = cpu_split(), own_cpu()
        t0 = time.time()
        ids: list[int] = []
        lock = threading.Lock()

        def submit(n: int) -> None:
            c = RawHttp(url, headers)
            request = c.encode("POST", "/jobs/submit", json.dumps({"job": job, "script": script}).encode())
            for _ in range(n):
                status, body = c.send(request)
                assert status == 201, body
                with lock:
                    ids.append(int(json.loads(body)["job_id"]))
            c.close()

        threads = [threading.Thread(target=submit, args=(count // 4,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        t_submitted = time.time()
        while True:
            stats = http.get("/jobs/stats").json()
            if stats["pending_jobs"] == 0 and stats["running_jobs"] == 0:
                break
            time.sleep(0.05)
        t_done = time.time()
        cpu_after, client_after = cpu_split(), own_cpu()
        jobs = all_jobs(http, state="COMPLETED")
        print(
            f"throughput: {len(jobs)}/{count} `true` jobs COMPLETED on {cpus} declared CPUs in "
            f"{t_done - t0:.2f} s end to end = {count / (t_done - t0):.0f} jobs/s "
            f"(submission by 4 REST clients took {t_submitted - t0:.2f} s)"
        )
        print_cpu_split("throughput (REST)", count, cpu_before, cpu_after, client_after - client_before)
        # The same drain without the REST submission in the way: one array of `count` tasks.
        cpu_before, client_before = cpu_split(), own_cpu()
        t0 = time.time()
        r = http.post("/jobs/submit", json={"job": {**job, "array": f"0-{count - 1}"}, "script": script})
        assert r.status_code == 201, r.text
        while True:
            stats = http.get("/jobs/stats").json()
            if stats["pending_jobs"] == 0 and stats["running_jobs"] == 0:
                break
            time.sleep(0.05)
        elapsed = time.time() - t0
        cpu_after, client_after = cpu_split(), own_cpu()
        print(f"throughput: array of {count} `true` tasks drained in {elapsed:.2f} s = {count / elapsed:.0f} jobs/s")
        print_cpu_split("throughput (array)", count, cpu_before, cpu_after, client_after - client_before)


def bench_submit(count: int = 3000, clients: int = 8, keyed: bool = False) -> None:
    """`keyed`: each submission carries an Idempotency-Key of its own, as sbatch sends them (the
    requests are made before the clock starts: the client's work is not the server's)."""
    placeholder = "00000000-0000-4000-8000-000000000000"
    with conductor(cpus=2) as (url, home, headers):
        body = {
            "job": {"current_working_directory": str(home), "begin_time": "now+3600", "name": "held"},
            "script": "#!/bin/bash\ntrue\n",
        }
        errors: list[str] = []
        sent = {**headers, "Idempotency-Key": placeholder} if keyed else headers

        def worker(n: int, ready: threading.Barrier) -> None:
            c = RawHttp(url, sent)
            request = c.encode("POST", "/jobs/submit", json.dumps(body).encode())
            if keyed:
                import uuid

                requests = [request.replace(placeholder.encode(), str(uuid.uuid4()).encode()) for _ in range(n)]
            else:
                requests = [request] * n
            ready.wait()
            for one in requests:
                status, text = c.send(one)
                if status != 201:
                    errors.append(text.decode())
            c.close()

        per = count // clients
        ready = threading.Barrier(clients + 1)
        threads = [threading.Thread(target=worker, args=(per, ready)) for _ in range(clients)]
        for t in threads:
            t.start()
        ready.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        print(
            f"submit{' (each with an Idempotency-Key)' if keyed else ''}: {per * clients} REST submissions from "
            f"{clients} clients in {elapsed:.2f} s = {per * clients / elapsed:.0f}/s ({len(errors)} errors)"
        )


def bench_pass() -> None:
    """One backfill pass (EASY, the default settings) over a full cluster of 100 nodes x 64 CPUs
    with 1,000 running jobs of known time limits, and a backlog of mixed shapes and limits."""
    from conductor.scheduler.limits import Limits, PartitionLimit, QosLimit, Usage
    from conductor.scheduler.policy import Backfill, NodeView, PendingJob, Release, schedule

    # Limits as a configuration file gives them: 100 users, each at most 20 jobs and 128 CPUs.
    qos_limits = Limits(
        partitions={"debug": PartitionLimit(max_time=2 * 86400.0)},
        qos={"normal": QosLimit(max_jobs_per_user=20, max_cpus_per_user=128, max_submit_jobs_per_user=5000)},
    )
    usage = {(f"u{u:02d}", None): Usage(jobs=10, cpus=60) for u in range(100)}
    limits = (60.0, 300.0, 600.0, 1800.0, 3600.0, 4 * 3600.0, None)
    for count in (10_000, 100_000):
        rng = random.Random(1)
        pending = [
            PendingJob(
                id=i,
                cpus=rng.choice((1, 1, 2, 4, 8, 16, 64)),
                memory_mb=rng.choice((0, 1024)),
                priority=rng.choice((0, 0, 10)),
                submit_time=1_000_000.0 + i,
                time_limit=rng.choice(limits),
                user=f"u{i % 100:02d}",
            )
            for i in range(count)
        ]
        pending.sort(key=lambda j: (-j.priority, j.submit_time, j.id))
        now = 2_000_000.0
        for label, backfill, with_limits in (
            ("EASY", Backfill(depth=1), None),
            ("conservative, depth 100", Backfill(depth=100), None),
            ("EASY with QOS and partition limits", Backfill(depth=1), qos_limits),
        ):
            timings = []
            for _ in range(5):
                nodes = []
                for k in range(100):
                    # 10 running jobs per node, 6 CPUs each (4 CPUs free), ending over the next 4 hours.
                    releases = [Release(k * 10 + r, 6, 0, now + rng.uniform(60, 4 * 3600)) for r in range(10)]
                    nodes.append(
                        NodeView(
                            name=f"n{k:03d}",
                            cpu_ids=tuple(range(64)),
                            free_cpu_ids=list(range(60, 64)),
                            memory_mb=256_000,
                            free_memory_mb=256_000,
                            partitions=frozenset({"debug"}),
                            running_jobs=10,
                            releases=releases,
                        )
                    )
                t0 = time.perf_counter()
                decision = schedule(
                    pending, nodes, now, presorted=True, backfill=backfill, limits=with_limits, usage=usage
                )
                timings.append(time.perf_counter() - t0)
            print(
                f"pass: {count:>7,} pending, 1,000 running on 100 nodes x 64 CPUs, backfill {label} "
                f"(max_job_test {backfill.max_job_test}): median {statistics.median(timings) * 1000:.1f} ms "
                f"({len(decision.placements)} placed, {len(decision.estimates)} estimated, "
                f"{len(decision.commitments.reservations)} reserved)"
            )


def bench_loop(count: int = 10_000) -> None:
    from datetime import UTC, datetime

    from conductor.bus import Bus
    from conductor.scheduler.loop import Scheduler
    from conductor.store import Store

    home = Path(tempfile.mkdtemp(prefix="conductor-bench-"))
    scratch = contextlib.ExitStack()
    try:
        if DATABASE_URL is not None:
            store = Store(scratch.enter_context(scratch_database(DATABASE_URL)))
        else:
            store = Store("sqlite:///" + str(home / "db.sqlite"))
        store.migrate()
        now = datetime.now(UTC)
        row = {
            "name": "b",
            "user_name": "bench",
            "partition": "debug",
            "cpus_per_task": 1,
            "ntasks": 1,
            "work_dir": "/tmp",
            "script": "true",
            "environment": "{}",
            "array_task_id": 0,
            "submit_time": now,
        }
        rows = [{**row, "array_task_id": i} for i in range(count)]
        t0 = time.perf_counter()
        store.submit(rows)
        submit_s = time.perf_counter() - t0
        store.register_node(
            name="n1",
            cpus=64,
            cpu_ids=list(range(64)),
            cpu_binding=False,
            memory_mb=100_000,
            partitions=["debug"],
            instance="bench",
            hostname="bench",
            stale_before=None,
        )
        scheduler = Scheduler(store, Bus(), heartbeat_timeout=3600)
        t0 = time.perf_counter()
        first = scheduler.run_pass()
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        scheduler.run_pass()
        steady_s = time.perf_counter() - t0
        print(
            f"loop: {count:,} pending on {store.dialect}: insert {submit_s * 1000:.0f} ms; first pass (64 placed, "
            f"{len(first.reasons)} reasons written) {first_s * 1000:.0f} ms; next pass (nothing changes) "
            f"{steady_s * 1000:.0f} ms"
        )
        store.close()
    finally:
        scratch.close()
        shutil.rmtree(home, ignore_errors=True)


def bench_sharing(count: int = 100_000, accounts: bool = False) -> None:
    """A full scheduler pass on SQLite over `count` pending jobs of 100 users, with a cluster
    configuration file: multifactor priority (fair share from usage) and a per-user QOS limit;
    `accounts`: also 10 accounts under 2 parents, each user associated with one (MaxJobs=10 each,
    GrpTRES=cpu=48 on each parent), jobs charged to them: fair share over the tree."""
    from datetime import UTC, datetime, timedelta

    from conductor.bus import Bus
    from conductor.config.live import LiveConfig
    from conductor.domain.accounting import Account, Association, AssocLimits
    from conductor.scheduler.loop import Scheduler
    from conductor.store import Store

    home = Path(tempfile.mkdtemp(prefix="conductor-bench-"))
    try:
        config = home / "cluster.toml"
        config.write_text(
            '[partitions.debug]\nNodes = "ALL"\nDefault = true\nMaxTime = "1-0"\n'
            '[qos.normal]\nMaxJobsPerUser = 20\n'
            '[priority]\nPriorityWeightAge = 1000\nPriorityWeightFairshare = 10000\nPriorityWeightJobSize = 100\n'
        )
        store = Store("sqlite:///" + str(home / "db.sqlite"))
        store.migrate()
        now = datetime.now(UTC)
        row = {"name": "b", "partition": "debug", "ntasks": 1, "work_dir": "/tmp", "script": "true",
               "environment": "{}", "time_limit": 3600}
        rng = random.Random(1)
        rows = [{**row, "user_name": f"u{i % 100:02d}", "cpus_per_task": rng.choice((1, 2, 4)),
                 "submit_time": now - timedelta(seconds=rng.uniform(0, 86400)), "array_task_id": i,
                 "account": f"a{i % 100 % 10}" if accounts else None}
                for i in range(count)]
        if accounts:
            store.add_accounts([Account(f"p{p}", limits=AssocLimits(grp_cpus=48)) for p in range(2)]
                               + [Account(f"a{a}", f"p{a % 2}", shares=1 + a) for a in range(10)])
            store.add_associations([Association(f"u{u:02d}", f"a{u % 10}", limits=AssocLimits(max_jobs=10))
                                    for u in range(100)], None)
        store.submit(rows)
        store.register_node(name="n1", cpus=64, cpu_ids=list(range(64)), cpu_binding=False, memory_mb=100_000,
                            partitions=["debug"], instance="bench", hostname="bench", stale_before=None)
        scheduler = Scheduler(store, Bus(), heartbeat_timeout=3600, config=LiveConfig(config, store))
        t0 = time.perf_counter()
        first = scheduler.run_pass()
        first_s = time.perf_counter() - t0
        timings = []
        for _ in range(3):
            scheduler.invalidate()
            t0 = time.perf_counter()
            scheduler.run_pass()
            # The pass holds the cyclic collector back; what it would have done is done after
            # it, at the next collection of the youngest generation: counted here.
            gc.collect(0)
            timings.append(time.perf_counter() - t0)
        print(
            f"sharing{' with accounts' if accounts else ''}: {count:,} pending jobs of 100 users on sqlite, "
            "multifactor priority and MaxJobsPerUser"
            f"{' and association limits (MaxJobs, parents GrpTRES cpu)' if accounts else ''}: "
            f"first pass {first_s * 1000:.0f} ms ({len(first.placements)} placed, {len(first.reasons)} reasons "
            f"written); full pass (snapshot read, usage brought forward, priorities, order, policy, the garbage "
            "collection it deferred) median "
            f"{statistics.median(timings) * 1000:.0f} ms"
        )
        store.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def bench_priority(count: int = 100_000) -> None:
    """Multifactor priorities (age, fair share, job size, partition, QOS, nice) for a backlog of
    `count` pending jobs of 1,000 users, and the sort by them: what a full pass adds."""
    from conductor.domain.multifactor import Weights
    from conductor.scheduler.policy import PendingJob, order_key
    from conductor.scheduler.priority import Multifactor, PriorityConfig

    rng = random.Random(1)
    now = 2_000_000.0
    pending = [
        PendingJob(
            id=i, cpus=rng.choice((1, 2, 4, 16, 64)), partition=rng.choice(("debug", "long")),
            submit_time=now - rng.uniform(0, 14 * 86400), user=f"u{rng.randrange(1000):03d}",
            qos=rng.choice((None, "high")), nice=rng.choice((0, 0, 100)),
        )
        for i in range(count)
    ]
    for job in pending:
        job.eligible_time = job.submit_time
    config = PriorityConfig(
        weights=Weights(age=1000, fairshare=10000, job_size=500, partition=1000, qos=2000),
        partitions={"debug": 1.0, "long": 0.5}, qos={"normal": 0.0, "high": 1.0},
    )
    usage = {(f"u{u:03d}", ""): rng.uniform(0, 1e7) for u in range(1000)}
    timings = []
    for _ in range(5):
        t0 = time.perf_counter()
        multifactor = Multifactor(config, usage, cluster_cpus=6400, cluster_nodes=100)
        multifactor.assign(pending, now)
        pending.sort(key=order_key)
        timings.append(time.perf_counter() - t0)
    print(
        f"priority: {count:,} pending jobs of 1,000 users, every factor weighted: computed and sorted in "
        f"median {statistics.median(timings) * 1000:.0f} ms"
    )


def _count_statement(statements: list[str], conn: object, cursor: object, statement: str, *rest: object) -> None:
    statements.append(statement)


def bench_dependencies(tasks: int = 10_000) -> None:
    """Dependency resolution through the store, as each scheduler pass runs it: a pending array
    of `tasks` tasks depending on another array of as many (afterok on the whole array, then
    aftercorr task by task), on SQLite (or --database-url's scratch database)."""
    from sqlalchemy import event

    from conductor.scheduler.dependencies import resolve_dependencies
    from conductor.store import Store

    for kind in ("afterok", "aftercorr"):
        with contextlib.ExitStack() as stack:
            if DATABASE_URL is not None:
                url = stack.enter_context(scratch_database(DATABASE_URL))
            else:
                url = "sqlite:///" + str(Path(stack.enter_context(tempfile.TemporaryDirectory())) / "deps.db")
            store = Store(url)
            stack.callback(store.close)
            store.migrate()
            base = {"name": "arr", "user_name": "ann", "partition": "debug", "cpus_per_task": 1, "work_dir": "/tmp",
                    "script": "#!/bin/bash\ntrue\n", "environment": "{}", "array_spec": f"0-{tasks - 1}"}
            first = store.submit([{**base, "array_task_id": t} for t in range(tasks)])
            store.submit([{**base, "dependency": f"{kind}:{first[0]}", "array_task_id": t} for t in range(tasks)])
            pending = store.pending_for_scheduling()
            statements: list[str] = []
            event.listen(store.engine, "after_cursor_execute", functools.partial(_count_statement, statements))
            timings, counts = [], []
            for _ in range(5):
                statements.clear()
                t0 = time.perf_counter()
                resolve_dependencies(store, pending)
                timings.append(time.perf_counter() - t0)
                counts.append(len(statements))
            print(
                f"dependencies: {tasks:,} pending tasks {kind} on an array of {tasks:,}: median "
                f"{statistics.median(timings) * 1000:.0f} ms a pass, {max(counts)} queries"
            )


BENCHMARKS = {
    "latency": bench_latency,
    "throughput": bench_throughput,
    "submit": bench_submit,
    "submit-keyed": lambda: bench_submit(keyed=True),
    "pass": bench_pass,
    "priority": bench_priority,
    "sharing": bench_sharing,
    "sharing-accounts": lambda: bench_sharing(accounts=True),
    "loop": bench_loop,
    "dependencies": bench_dependencies,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--database-url", help="PostgreSQL server: run on `conductor server` + two workers there")
    parser.add_argument("--own-postgres", action="store_true", help="as --database-url, on a throw-away cluster")
    parser.add_argument(
        "--containment", choices=("auto", "cgroup-v2", "cgroup-v1", "none"), help="how workers contain jobs"
    )
    parser.add_argument(
        "--job-starter", choices=("auto", "python"), help="how launchers start jobs (the C job starter, or fork)"
    )
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    global DATABASE_URL, DATABASE_PID, CONTAINMENT, JOB_STARTER
    CONTAINMENT = args.containment
    if CONTAINMENT is not None:
        print(f"containment: {CONTAINMENT}")
    JOB_STARTER = args.job_starter
    if JOB_STARTER is not None:
        print(f"job starter: {JOB_STARTER}")
    with contextlib.ExitStack() as stack:
        if args.own_postgres:
            sys.path.insert(0, str(ROOT / "tests"))
            from support import postgres_cluster

            cluster = stack.enter_context(postgres_cluster())
            DATABASE_URL = cluster.url()
            DATABASE_PID = int((cluster.data / "postmaster.pid").read_text().split()[0])
        elif args.database_url:
            DATABASE_URL = args.database_url
        if DATABASE_URL is not None:
            print("system: conductor server + 2 conductor workers on PostgreSQL")
        for name in args.names or BENCHMARKS:
            BENCHMARKS[name]()


if __name__ == "__main__":
    main()
