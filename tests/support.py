"""Test helpers: real `conductor` processes on free ports, and a PostgreSQL cluster of our own."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"}

# url -> the admin token of the server started there, so `Api(server.url)` authenticates
# without every test passing the token along (ConductorProcess fills it in when healthy).
TOKENS: dict[str, str] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any CONDUCTOR_* settings of the developer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_") and k not in ("NODE_NAME", "TOTAL_CPUS")}
    env.update(extra)
    return env


class ConductorProcess:
    """One `conductor <command>` subprocess (up, server or worker)."""

    def __init__(
        self,
        home: Path,
        args: list[str],
        env: dict[str, str] | None = None,
        port: int | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.home = home
        # Descriptors the process inherits, as from whatever started it.
        self.pass_fds = pass_fds
        self.args = args
        self.port = port
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = home / f"conductor-{args[0]}-{port or 'x'}.log"
        self._token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """The environment the process runs in: another `conductor` command given it acts on the
        same home and database."""
        # The server records itself in its user's profile (XDG_CONFIG_HOME/conductor): one of the
        # test's own, not the developer's.
        return clean_env(**{"CONDUCTOR_HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / "xdg"), **self.extra_env})

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Another `conductor` command, beside this process (same home and settings)."""
        env = self.environment()
        if self.port is not None:
            env["CONDUCTOR_URL"] = self.url
        return subprocess.run([sys.executable, "-m", "conductor", *args], env=env, capture_output=True, text=True, timeout=120)

    def start(self, wait: bool = True) -> ConductorProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        argv = [sys.executable, "-m", "conductor", *self.args]
        if self.port is not None and "--port" not in self.args:
            argv += ["--port", str(self.port)]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(self.home), pass_fds=self.pass_fds
        )
        log.close()
        if wait and self.port is not None:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"conductor exited with {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    self._token = None
                    TOKENS[self.url] = self.token
                    return
            time.sleep(0.05)
        raise RuntimeError(f"conductor did not become healthy:\n{self.log()}")

    @property
    def token(self) -> str:
        """The admin token the server wrote to `<home>/token` (of the user running the tests)."""
        if self._token is None:
            self._token = (self.home / "token").read_text().strip()
        return self._token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


class Api:
    """A small typed client for the tests."""

    def __init__(self, url: str, token: str | None = None) -> None:
        token = token if token is not None else TOKENS.get(url)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url, timeout=30, headers=headers)

    def submit(self, script: str, **job: Any) -> int:
        response = self.http.post("/jobs/submit", json={"job": job, "script": script})
        assert response.status_code == 201, response.text
        return int(response.json()["job_id"])

    def job(self, job_id: int) -> dict[str, Any]:
        response = self.http.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def query(self, job_id: int) -> dict[str, Any]:
        response = self.http.get(f"/jobs/query/{job_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def stats(self) -> dict[str, int]:
        response = self.http.get("/jobs/stats")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def cancel(self, job_id: int) -> dict[str, Any]:
        response = self.http.post(f"/jobs/cancel/{job_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_state(self, job_id: int, states: Iterable[str] | str, timeout: float = 30.0) -> dict[str, Any]:
        wanted = {states} if isinstance(states, str) else set(states)
        deadline = time.monotonic() + timeout
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["state"] in wanted:
                return job
            time.sleep(0.02)
        raise AssertionError(f"job {job_id} did not reach {wanted}; last: {job}")

    def jobs(self, **params: Any) -> list[dict[str, Any]]:
        """Every job matching `params` (GET /jobs filters), following the pages."""
        found: list[dict[str, Any]] = []
        after = None
        while True:
            response = self.http.get("/jobs", params={**params, **({"after": after} if after is not None else {})})
            assert response.status_code == 200, response.text
            page = response.json()
            found.extend(page["jobs"])
            after = page["next_after"]
            if after is None:
                return found

    def wait_all(self, job_ids: Iterable[int], states: Iterable[str] = TERMINAL, timeout: float = 60.0) -> None:
        wanted = set(states)
        ids = set(job_ids)
        deadline = time.monotonic() + timeout
        while ids and time.monotonic() < deadline:
            rows = self.jobs()
            done = {r["job_id"] for r in rows if r["state"] in wanted}
            ids -= done
            if ids:
                time.sleep(0.1)
        assert not ids, f"jobs not in {wanted}: {sorted(ids)[:20]}"

    def close(self) -> None:
        self.http.close()


@contextlib.contextmanager
def running_up(home: Path, *args: str) -> Iterator[ConductorProcess]:
    """A `conductor up` shared by a whole test module (starting one costs seconds)."""
    process = ConductorProcess(home, ["up", *args], env={"CONDUCTOR_KILL_WAIT": "2"}, port=free_port())
    process.start()
    try:
        yield process
    finally:
        process.kill()


def up_on_each_database(request: Any, tmp_path_factory: Any, prefix: str) -> Iterator[ConductorProcess]:
    """For a module fixture parametrized ["sqlite", "postgresql"]: a `conductor up` on a SQLite
    home, or on a new database of the suite's PostgreSQL cluster (fixture `pg_cluster`)."""
    import uuid

    env = {"CONDUCTOR_KILL_WAIT": "2"}
    if request.param == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        env["CONDUCTOR_DATABASE_URL"] = cluster.create_database(f"{prefix}_{uuid.uuid4().hex[:12]}")
    process = ConductorProcess(tmp_path_factory.mktemp(prefix), ["up", "--cpus", "4"], env=env, port=free_port())
    process.start()
    try:
        yield process
    finally:
        process.stop()


def read_http_message(conn: socket.socket) -> bytes:
    """One HTTP message from `conn`, head and the Content-Length of body (what came, if the
    peer closed first)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = (value for name, _, value in (line.partition(b":") for line in head.split(b"\r\n"))
               if name.strip().lower() == b"content-length")
    length = int(next(lengths, b"0"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


# ------------------------------------------------------------------ PostgreSQL
class PostgresCluster:
    """A throw-away PostgreSQL cluster in a temporary directory, on a free port.

    Runs as the `postgres` system user when the tests run as root (initdb refuses root).
    """

    def __init__(self, max_connections: int = 300) -> None:
        self.max_connections = max_connections
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="conductor-pg-"))
        self.data = self.dir / "data"
        self.run_as = "postgres" if os.geteuid() == 0 else None
        self.bindir = _pg_bindir()

    def _cmd(self, *args: str) -> list[str]:
        exe = [str(self.bindir / args[0]), *args[1:]]
        if self.run_as:
            return ["runuser", "-u", self.run_as, "--", *exe]
        return exe

    def init(self) -> None:
        if self.run_as:
            shutil.chown(self.dir, self.run_as)
        subprocess.run(
            self._cmd("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"),
            check=True,
            capture_output=True,
        )
        # fsync off is safe here: the tests kill PostgreSQL, never the kernel, so what reached the
        # page cache survives. synchronous_commit stays on: with it off, an immediate stop (the
        # outage tests) forgets transactions already reported committed — no real server does.
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.dir}'\n"
                f"fsync = off\nfull_page_writes = off\nmax_connections = {self.max_connections}\n"
            )
        if self.run_as:
            shutil.chown(self.data / "postgresql.conf", self.run_as)

    def start(self) -> None:
        subprocess.run(
            self._cmd("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "60", "start"),
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            self._cmd("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop"), check=False, capture_output=True
        )

    def restart(self) -> None:
        self.stop("immediate")
        self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def _pg_bindir() -> Path:
    found = shutil.which("pg_ctl")
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    if found:
        return Path(found).parent
    raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) were not found; install postgresql")


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    cluster.init()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


def _is_launcher_of(cmdline: bytes, home: Path) -> bool:
    from conductor.worker.launcher_client import LAUNCHER

    # python -I -S .../launcher.py --serve HOME/run
    args = cmdline.split(b"\0")
    return LAUNCHER.encode() in args and str(home / "run").encode() in args


def launchers(home: Path) -> list[int]:
    """The pids of the job launchers serving the worker whose home is `home`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if not _is_launcher_of(cmdline, home):
                continue
            # Not a job between its fork and its exec, which has the same command line.
            try:
                parent = (Path(f"/proc/{ppid}/cmdline")).read_bytes()
            except OSError:
                parent = b""
            if not _is_launcher_of(parent, home) and is_live_process(int(entry.name)):
                found.append(int(entry.name))
    return found


def is_live_process(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False
