"""Every shipped deployment, started with the users, directories and settings its files declare,
and the security review's attacks run against it.

`deploy/systemd` is the split deployment: the server as the unprivileged user `conductor` with
its own state directory, the worker as root. The container files (`Dockerfile`,
`docker-compose.yml`) run everything as root, each service with its own home volume. No init
system or container engine runs here, so the test reads each file and starts the processes as it
says: same users and groups, same environment (the example environment files, with the test's
own PostgreSQL in place of the placeholder host), same command lines (with a free port), state
directories made as systemd makes them (owned by the service's user, mode 0755), no controlling
terminal and nothing inherited but standard input, output and error.
"""

from __future__ import annotations

import contextlib
import os
import pty
import pwd
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from support import Api, PostgresCluster, clean_env, free_port
from users import PortablePython, UnixUsers, run_root

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "systemd"
# What the files name as the installed command; the test runs the checkout's code instead.
INSTALLED = ("/opt/conductor/.venv/bin/conductor", "conductor")


# ------------------------------------------------------------------------ reading the files
@dataclass
class Service:
    """One process as a deployment file declares it."""

    name: str
    user: str = "root"
    group: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    state_directories: list[str] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    # A container sees its own /var/lib: its volumes live under a directory of its own.
    volumes: str = ""


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def read_unit(path: Path) -> Service:
    """A systemd service unit's [Service] section; /etc/conductor/X is the shipped X.example."""
    service = Service(path.stem)
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        if section != "[Service]":
            continue
        key, _, value = line.partition("=")
        if key == "User":
            service.user = value
        elif key == "Group":
            service.group = value
        elif key == "EnvironmentFile":
            example = DEPLOY / (Path(value.lstrip("-")).name + ".example")
            assert example.exists(), f"{path.name} reads {value}, but {example.name} is not shipped"
            service.environment.update(_env_file(example))
        elif key == "Environment":
            name, _, setting = value.partition("=")
            service.environment[name] = setting
        elif key == "StateDirectory":
            service.state_directories.extend(value.split())
        elif key == "ExecStart":
            service.argv = shlex.split(value)
    return service


def read_compose(path: Path, dockerfile: Path) -> list[Service]:
    """docker-compose.yml's conductor services; the image's user and environment from the Dockerfile."""
    image_env: dict[str, str] = {}
    image_user = "root"
    for line in dockerfile.read_text().splitlines():
        words = line.split(None, 1)
        if words and words[0] == "ENV":
            name, _, value = words[1].partition("=")
            image_env[name] = value
        elif words and words[0] == "USER":
            image_user = words[1].strip()
    compose = yaml.safe_load(path.read_text())
    services = []
    for name, spec in compose["services"].items():
        if spec.get("image") != "scns-conductor":
            continue
        service = Service(name, user=spec.get("user", image_user))
        service.environment = {**image_env, **{k: str(v) for k, v in (spec.get("environment") or {}).items()}}
        service.argv = list(spec["command"])
        # Each service's home is a volume of its own.
        service.state_directories = [image_env["CONDUCTOR_HOME"].removeprefix("/var/lib/")]
        service.volumes = "/" + name
        services.append(service)
    return services


# ------------------------------------------------------------------------- starting a host
@dataclass
class Host:
    """A machine laid out under `root`: /var/lib/... of the files lives under it."""

    root: Path
    database_url: str
    python: PortablePython
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def path(self, declared: str, service: Service) -> str:
        return f"{self.root}{service.volumes}{declared}" if declared.startswith("/var/lib/") else declared

    def start(self, service: Service, *, port: int | None = None, pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
        entry = pwd.getpwnam(service.user)
        for directory in service.state_directories:
            made = Path(self.path("/var/lib/" + directory, service))
            made.mkdir(parents=True, exist_ok=True)
            os.chown(made, entry.pw_uid, entry.pw_gid)
            os.chmod(made, 0o755)
        env = {k: self.path(v, service) for k, v in service.environment.items()}
        env["CONDUCTOR_DATABASE_URL"] = self.database_url
        argv = list(service.argv)
        assert argv[0] in INSTALLED, f"{service.name} starts {argv[0]}"
        argv = [*self.python.argv, *argv[1:]]
        if port is not None:
            argv[argv.index("--port") + 1] = str(port)
        home = Path(env["CONDUCTOR_HOME"])
        log = open(home.parent / f"{service.name}.log", "ab")
        process = subprocess.Popen(
            argv,
            env=clean_env(**env, PYTHONPATH=self.python.pythonpath, HOME=entry.pw_dir),
            user=entry.pw_uid,
            group=entry.pw_gid if service.group is None else service.group,
            extra_groups=[],
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # As under systemd or in a container: a session of its own and no controlling terminal.
            start_new_session=True,
            pass_fds=pass_fds,
        )
        log.close()
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited {process.returncode}: {log.read_text(errors='replace')[-3000:]}"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"not healthy: {log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def service_user() -> Iterator[str]:
    """The unprivileged account the server unit declares, made for the test when the host lacks it."""
    name = read_unit(DEPLOY / "conductor-server.service").user
    created = False
    try:
        pwd.getpwnam(name)
    except KeyError:
        run_root("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--user-group", name)
        created = True
    yield name
    if created:
        subprocess.run(["userdel", name], capture_output=True, check=False)
        subprocess.run(["groupdel", name], capture_output=True, check=False)


@dataclass
class Deployment:
    url: str
    server_home: Path
    server: subprocess.Popen[bytes]
    admin: Api
    log: Path

    def server_log(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _deploy(host: Host, server: Service, workers: list[Service], inherited: int) -> Deployment:
    port = free_port()
    process = host.start(server, port=port)
    server_home = Path(host.path(server.environment["CONDUCTOR_HOME"], server))
    url = f"http://127.0.0.1:{port}"
    _wait_healthy(url, process, server_home.parent / f"{server.name}.log")
    for worker in workers:
        # Whatever the worker's starter left open (here a pipe) must not reach the jobs.
        host.start(worker, pass_fds=(inherited,))
    # The server wrote its admin token, as its own user, into its own home.
    admin = Api(url, conductor_cli_token(server_home))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and admin.http.get("/jobs/stats").json()["total_cpus"] == 0:
        time.sleep(0.1)
    return Deployment(url, server_home, process, admin, server_home.parent / f"{server.name}.log")


def conductor_cli_token(home: Path) -> str:
    return (home / "token").read_text().strip()


# --------------------------------------------------------------------------------- attacks
def _attacks(deployment: Deployment, users: UnixUsers, database_url: str) -> None:
    """The attacks of the security review, as an ordinary user with a token."""
    a, b = users.a, users.b
    token_home = deployment.server_home.parent / "cli"
    token_home.mkdir(exist_ok=True)
    api_a = Api(deployment.url, make_token_in(token_home, database_url, a.name))
    admin_token = conductor_cli_token(deployment.server_home)

    # 1. The server's own token (and anything else of the server's user) as a job's output.
    job_id = api_a.submit(
        "#!/bin/bash\necho hi\n", current_working_directory=str(a.home), standard_output=str(deployment.server_home / "token")
    )
    job = api_a.wait_state(job_id, {"FAILED", "COMPLETED"})
    assert job["state"] == "FAILED", job
    logs = api_a.query(job_id)["job_log"]
    assert admin_token not in str(logs), "the server's admin token leaked through the output view"
    assert logs["stdout"] is None

    # 2. A terminal as the output: the server never opens it, so it cannot become its terminal.
    master, slave = pty.openpty()
    try:
        os.fchown(slave, a.uid, -1)
        tty_path = os.ttyname(slave)
        job_id = api_a.submit("#!/bin/bash\necho on-tty\n", current_working_directory=str(a.home), standard_output=tty_path)
        api_a.wait_state(job_id, {"FAILED", "COMPLETED"})
        assert api_a.query(job_id)["job_log"]["stdout"] is None
        tty_nr = int(Path(f"/proc/{deployment.server.pid}/stat").read_text().rsplit(")", 1)[1].split()[4])
        assert tty_nr == 0, "the server took the job's terminal as its controlling terminal"
        os.write(master, b"\x03")  # ^C on that terminal
        time.sleep(0.3)
        assert deployment.server.poll() is None, deployment.server_log()
    finally:
        os.close(master)
        os.close(slave)

    # 3. Descriptors the worker inherited do not reach jobs.
    job_id = api_a.submit(
        "#!/bin/bash\nls /proc/$$/fd\n", current_working_directory=str(a.home), standard_output="fds.txt"
    )
    job = api_a.wait_state(job_id, {"FAILED", "COMPLETED"})
    assert job["state"] == "COMPLETED", (job["error_msg"], job["reason"], job["exit_code"])
    listed = {int(fd) for fd in (a.home / "fds.txt").read_text().split()}
    assert listed <= {0, 1, 2, 255}, listed  # bash keeps its script open on 255

    # 7. Priority at submission is for administrators.
    response = api_a.http.post(
        "/jobs/submit", json={"job": {"current_working_directory": str(a.home), "priority": 2147483646}, "script": "#!/bin/bash\ntrue\n"}
    )
    assert response.status_code == 403, response.text
    assert "priority" in response.json()["detail"]

    # 8. A file of a's, in a directory a cannot enter, is not shown through the API either.
    hidden = b.home / f"hidden-{time.monotonic_ns()}"
    hidden.mkdir()
    os.chown(hidden, b.uid, b.gid)
    os.chmod(hidden, 0o711)
    job_id = api_a.submit("#!/bin/bash\necho a-wrote\n", current_working_directory=str(a.home), standard_output="out.txt")
    job = api_a.wait_state(job_id, {"FAILED", "COMPLETED"})
    assert job["state"] == "COMPLETED", (job["error_msg"], job["reason"], job["exit_code"])
    (a.home / "out.txt").rename(hidden / "a-file.txt")  # root moves it; a still owns it
    os.chmod(hidden, 0o700)
    job_id2 = api_a.submit("#!/bin/bash\ntrue\n", current_working_directory=str(a.home), standard_output=str(hidden / "a-file.txt"))
    api_a.wait_state(job_id2, {"FAILED", "COMPLETED"})
    assert api_a.query(job_id2)["job_log"]["stdout"] is None

    # 9. Terminal escapes in names are refused.
    response = api_a.http.post(
        "/jobs/submit", json={"job": {"current_working_directory": str(a.home), "name": "x\x1b[2J"}, "script": "#!/bin/bash\ntrue\n"}
    )
    assert response.status_code in (400, 422), response.text
    assert "name" in response.text

    # 5. Half-open connections do not keep others out.
    held = []
    try:
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", int(deployment.url.rsplit(":", 1)[1])))
            sock.sendall(b"GET /jobs/stats HTTP/1.1\r\nHost: x\r\n")
            held.append(sock)
        started = time.monotonic()
        assert deployment.admin.http.get("/jobs/stats").status_code == 200
        assert time.monotonic() - started < 5
    finally:
        for sock in held:
            sock.close()

    # 6. Listings are bounded.
    assert api_a.http.get("/jobs", params={"limit": 100000}).status_code == 422


def make_token_in(home: Path, database_url: str, user: str) -> str:
    """A token made as an administrator would, with direct access to the database."""
    result = subprocess.run(
        [sys.executable, "-m", "conductor", "token", "create", "--user", user],
        env=clean_env(CONDUCTOR_HOME=str(home), CONDUCTOR_DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


# ----------------------------------------------------------------------------------- tests
@pytest.fixture
def host(tmp_path_factory: pytest.TempPathFactory, pg_cluster: PostgresCluster, portable_python: PortablePython) -> Iterator[Host]:
    root = tmp_path_factory.mktemp("host")
    os.chmod(root, 0o755)
    for parent in root.parents:
        if parent == Path("/tmp"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o711)
    url = pg_cluster.create_database(f"deploy_{os.getpid()}_{time.monotonic_ns()}")
    host = Host(root, url, portable_python)
    yield host
    host.stop()


def test_systemd_split_deployment_as_shipped(host: Host, service_user: str, unix_users: UnixUsers) -> None:
    server = read_unit(DEPLOY / "conductor-server.service")
    worker = read_unit(DEPLOY / "conductor-worker.service")
    # What the review relied on: the server unprivileged, the worker root.
    assert server.user == service_user and server.user != "root"
    assert worker.user == "root"
    read, write = os.pipe()
    try:
        deployment = _deploy(host, server, [worker], read)
        assert Path(f"/proc/{deployment.server.pid}/status").read_text().count(f"\t{pwd.getpwnam(service_user).pw_uid}\t") >= 1
        _attacks(deployment, unix_users, host.database_url)
    finally:
        os.close(read)
        os.close(write)


def test_container_deployment_as_shipped(host: Host, unix_users: UnixUsers) -> None:
    services = read_compose(REPO / "docker-compose.yml", REPO / "Dockerfile")
    server = next(s for s in services if s.argv[1] == "server")
    workers = [s for s in services if s.argv[1] == "worker"]
    assert workers and all(s.user == "root" for s in services)
    read, write = os.pipe()
    try:
        deployment = _deploy(host, server, workers[:1], read)
        _attacks(deployment, unix_users, host.database_url)
    finally:
        os.close(read)
        os.close(write)
