"""Security of what the API shows and the CLI prints: job output, submitted fields, terminals.

The attacks of an ordinary user with a token against the views: reading the server's own files
(its token, its database) as a job's "output" in a split deployment (server unprivileged, worker
root), making a terminal the daemon's controlling terminal through the output view, reading
files in directories the job's user cannot enter, jumping the queue at submission, and writing
terminal escapes into fields other users' squeue prints. Real processes and real Unix users
(the `unix_users` fixture), as in test_security.py.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support import Api, ConductorProcess, clean_env, free_port
from users import PortablePython, StartConductor, UnixUsers, User, make_token, user_server

FAST = {"CONDUCTOR_CHECK_INTERVAL": "1", "CONDUCTOR_HEARTBEAT_INTERVAL": "0.5", "CONDUCTOR_KILL_WAIT": "2"}


class Daemon(ConductorProcess):
    """A conductor process started as a service manager starts one: in a session of its own with
    no controlling terminal (as under systemd), and as `user` when one is given."""

    def __init__(
        self, home: Path, args: list[str], env: dict[str, str], port: int | None, user: User | None, python: PortablePython
    ) -> None:
        super().__init__(home, args, env=env, port=port)
        self.user = user
        self.python = python

    def start(self, wait: bool = True) -> Daemon:
        self.home.mkdir(parents=True, exist_ok=True)
        # `up` records itself in its user's profile: one under the test's home, not root's.
        env = clean_env(CONDUCTOR_HOME=str(self.home), XDG_CONFIG_HOME=str(self.home / "xdg"), **self.extra_env)
        argv = [sys.executable, "-m", "conductor", *self.args]
        if self.port is not None:
            argv += ["--port", str(self.port)]
        extra: dict[str, object] = {}
        if self.user is not None:
            # The suite's interpreter may be out of the user's reach (tests/users.py says why).
            os.chown(self.home, self.user.uid, self.user.gid)
            env.update(HOME=str(self.user.home), USER=self.user.name, LOGNAME=self.user.name)
            env["PYTHONPATH"] = self.python.pythonpath
            argv = [*self.python.argv, *argv[3:]]
            extra = {"user": self.user.uid, "group": self.user.gid, "extra_groups": []}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(  # type: ignore[call-overload]
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(self.home), start_new_session=True, **extra
            )
        if wait and self.port is not None:
            self.wait_healthy()
        return self


StartDaemon = Callable[..., Daemon]


@pytest.fixture
def start_daemon(portable_python: PortablePython) -> Iterator[StartDaemon]:
    started: list[Daemon] = []

    def start(home: Path, command: str, *args: str, env: dict[str, str] | None = None, user: User | None = None) -> Daemon:
        port = free_port() if command in ("up", "server") else None
        daemon = Daemon(home, [command, *args], {**FAST, **(env or {})}, port, user, portable_python)
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in reversed(started):
        daemon.kill()


def _tty_nr(pid: int) -> int:
    """The controlling terminal of process `pid` (0: none), field 7 of /proc/PID/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2 :].split()[4])


def _wait_cpus(api: Api, cpus: int) -> None:
    deadline = time.monotonic() + 30
    while api.stats()["total_cpus"] != cpus:
        assert time.monotonic() < deadline, "the worker did not register"
        time.sleep(0.1)


# ------------------------------------------------------------------------- output view
def test_split_deployment_never_shows_the_servers_own_files(start_daemon: StartDaemon, unix_users: UnixUsers) -> None:
    """Issue 9.1: the server runs unprivileged (as `a`, its service account here), the worker as
    root. `b` points a job's output at the server's token and at its database's WAL: the job
    fails, and the query must not show those files, which are the API's user's, not b's."""
    a, b = unix_users.a, unix_users.b
    tag = uuid.uuid4().hex[:8]
    server_home = unix_users.base / f"srv-{tag}"
    database = server_home / "conductor.db"
    env = {"CONDUCTOR_DATABASE_URL": f"sqlite:///{database}"}
    server = start_daemon(server_home, "server", env=env, user=a)
    start_daemon(unix_users.base / f"wrk-{tag}", "worker", "--cpus", "2", env=env)
    admin_token = (server_home / "token").read_text().strip()
    assert (server_home / "token").stat().st_uid == a.uid
    api_b = Api(server.url, make_token(server_home, b.name))
    _wait_cpus(api_b, 2)

    # What b may see: b's own output where the server can read it.
    shared = unix_users.base / f"out-{tag}"
    shared.mkdir()
    os.chown(shared, b.uid, b.gid)
    os.chmod(shared, 0o755)
    ok = api_b.submit("#!/bin/bash\necho b-output\n", current_working_directory=str(shared))
    assert api_b.wait_state(ok, {"COMPLETED", "FAILED"})["state"] == "COMPLETED"
    assert api_b.query(ok)["job_log"]["stdout"] == "b-output\n"

    wal = Path(f"{database}-wal")
    assert wal.exists() and wal.stat().st_uid == a.uid
    for target in (server_home / "token", wal):
        job_id = api_b.submit("#!/bin/bash\necho x\n", current_working_directory=str(b.home), standard_output=str(target))
        job = api_b.wait_state(job_id, {"FAILED", "COMPLETED"})
        assert job["state"] == "FAILED", job
        response = api_b.http.get(f"/jobs/query/{job_id}")
        assert response.status_code == 200, response.text
        assert response.json()["job_log"] == {"stdout": None, "stderr": None}, target
        assert admin_token not in response.text
    assert Api(server.url, admin_token).query(job_id)["job_log"]["stdout"] is None  # not even for an admin


def test_query_never_opens_a_terminal(start_daemon: StartDaemon, unix_users: UnixUsers, tmp_path: Path) -> None:
    """Issue 9.2: a user's pty as standard_output, then a query, made it the controlling
    terminal of a daemon that had none; ^C on it then stopped the daemon."""
    a = unix_users.a
    server = start_daemon(unix_users.base / f"srv-{uuid.uuid4().hex[:8]}", "up", "--cpus", "1")
    assert server.proc is not None
    pid = server.proc.pid
    assert _tty_nr(pid) == 0
    api = Api(server.url, make_token(server.home, a.name))
    master, slave = os.openpty()
    try:
        pty_path = os.ttyname(slave)
        os.close(slave)
        os.chown(pty_path, a.uid, a.gid)  # the attacker's own terminal
        job_id = api.submit("#!/bin/bash\ntrue\n", current_working_directory=str(a.home), standard_output=pty_path, hold=True)
        assert api.query(job_id)["job_log"] == {"stdout": None, "stderr": None}
        assert _tty_nr(pid) == 0, "the query made the pty the daemon's controlling terminal"
        fds = os.listdir(f"/proc/{pid}/fd")
        for fd in fds:
            with contextlib.suppress(OSError):
                assert os.readlink(f"/proc/{pid}/fd/{fd}") != pty_path
        os.write(master, b"\x03")
        time.sleep(0.3)
        assert server.proc.poll() is None, server.log()
        assert httpx.get(server.url + "/health", timeout=5).status_code == 200
    finally:
        os.close(master)


def test_output_in_a_directory_the_user_cannot_enter_is_not_shown(
    start_conductor: StartConductor, unix_users: UnixUsers
) -> None:
    """Issue 9.8: the API (root here) walked the path with its own rights; the job's user's are
    what count: the uid, the primary group and the supplementary groups."""
    server = user_server(start_conductor, unix_users)
    a, b = unix_users.a, unix_users.b
    api_a = Api(server.url, make_token(server.home, a.name))
    tag = uuid.uuid4().hex[:8]

    def directory(owner: int, group: int, mode: int) -> Path:
        path = unix_users.base / f"d-{tag}-{mode:o}-{group}"
        path.mkdir()
        os.chown(path, owner, group)
        os.chmod(path, mode)
        return path

    def shown(where: Path) -> str | None:
        out = where / "out.txt"
        out.write_text(f"in {where.name}\n")
        os.chown(out, a.uid, a.gid)  # a's own file: only the directory is in the way
        job_id = api_a.submit("#!/bin/bash\ntrue\n", current_working_directory=str(a.home), standard_output=str(out), hold=True)
        stdout = api_a.query(job_id)["job_log"]["stdout"]
        return stdout if stdout is None else str(stdout)

    assert shown(directory(b.uid, b.gid, 0o700)) is None  # another user's private directory
    assert shown(directory(0, b.gid, 0o750)) is None  # a group a is not in
    assert shown(directory(a.uid, b.gid, 0o070)) is None  # a's own, but the owner bits forbid it
    assert shown(directory(0, unix_users.group_gid, 0o750)) is not None  # a supplementary group of a
    assert shown(directory(0, a.gid, 0o710)) is not None  # a's primary group
    assert shown(directory(b.uid, b.gid, 0o701)) is not None  # anyone may search it
    private = directory(b.uid, b.gid, 0o755) / "inner"
    private.mkdir(mode=0o700)
    os.chown(private, b.uid, b.gid)
    assert shown(private) is None  # a deeper component counts as much


# ----------------------------------------------------------------------- submission
def _rest_job(job: dict[str, object], cwd: Path) -> dict[str, object]:
    return {"script": "#!/bin/bash\ntrue\n", "job": {"current_working_directory": str(cwd), **job}}


def test_only_admins_set_priority_or_a_negative_nice_at_submission(
    start_conductor: StartConductor, unix_users: UnixUsers
) -> None:
    """Issue 9.7: PATCH refused a raised priority, but a submission jumped the queue with
    `"priority": 2147483646` or `"nice": -10000`. As in Slurm only administrators set either,
    on every way in: the fast path (an ordinary JSON submission), the framework's route (here
    reached with slurmrestd's token header) and slurmrestd's job/submit."""
    server = user_server(start_conductor, unix_users)
    a = unix_users.a
    token = make_token(server.home, a.name)
    api_a, admin = Api(server.url, token), Api(server.url)
    native = httpx.Client(base_url=server.url, timeout=30, headers={"X-SLURM-USER-TOKEN": token})
    cwd = str(a.home)
    refused = [({"priority": 2147483646}, "priority"), ({"priority": 0}, "priority"), ({"nice": -10000}, "nice"), ({"nice": -1}, "nice")]
    for fields, name in refused:
        body = {"job": {"current_working_directory": cwd, **fields}, "script": "#!/bin/bash\ntrue\n"}
        for client in (api_a.http, native):
            response = client.post("/jobs/submit", json=body)
            assert response.status_code == 403, (fields, response.text)
            detail = response.json()["detail"]
            assert detail.startswith(f"{name}:") and "only an administrator may" in detail, detail
        rest_fields = {"priority": {"set": True, "infinite": False, "number": fields["priority"]}} if name == "priority" else fields
        response = native.post("/slurm/v0.0.40/job/submit", json=_rest_job(rest_fields, a.home))
        assert response.status_code == 403, (fields, response.text)
        assert "only an administrator may" in response.json()["errors"][0]["description"]
        # test_only asks the same question and gets the same answer.
        response = api_a.http.post("/jobs/submit", json={**body, "job": {**body["job"], "test_only": True}})  # type: ignore[dict-item]
        assert response.status_code == 403, response.text
    assert [j for j in admin.http.get("/jobs").json()["jobs"] if j["user"] == a.name] == []
    # A positive nice lowers one's own priority: anyone may.
    assert api_a.job(api_a.submit("#!/bin/bash\ntrue\n", current_working_directory=cwd, nice=5))["nice"] == 5
    # Administrators may. An administrator's token acting for a user (X-SLURM-USER-NAME) has
    # that user's rights, as the user's own token would.
    job_id = admin.submit("#!/bin/bash\ntrue\n", current_working_directory=cwd, priority=1000, nice=-5)
    assert admin.job(job_id)["nice"] == -5
    response = admin.http.post("/slurm/v0.0.40/job/submit", json=_rest_job({"priority": {"set": True, "number": 7}, "nice": -2}, a.home))
    assert response.status_code == 200, response.text
    response = admin.http.post(
        "/jobs/submit",
        headers={"X-SLURM-USER-NAME": a.name},
        json={"job": {"current_working_directory": cwd, "priority": 7}, "script": "#!/bin/bash\ntrue\n"},
    )
    assert response.status_code == 403, response.text


# -------------------------------------------------------------------- terminal escapes
ESCAPES = {
    "name": "\x1b]0;pwned\x07",  # sets the title of the reader's terminal window
    "comment": "ok\x1b[2J",  # clears the reader's screen
    "account": "acct\x7f",
    "partition": "debug\x9b31m",  # a C1 CSI: some terminals take it as ESC [
    "qos": "normal\r",
    "mail_user": "x\x00y",
    "standard_output": "out\x1b[8m.txt",
    "current_working_directory": "/tmp/\x1b[31m",
}


def test_control_characters_are_refused_in_submitted_text(start_conductor: StartConductor, unix_users: UnixUsers) -> None:
    """Issue 9.9: names and comments took ESC and BEL, which squeue, sacct and scontrol then
    printed to other users' terminals. Every free-text field refuses control characters,
    naming the field; a script and environment values may hold anything."""
    server = user_server(start_conductor, unix_users)
    a = unix_users.a
    token = make_token(server.home, a.name)
    api_a = Api(server.url, token)
    rest = httpx.Client(base_url=server.url + "/slurm/v0.0.40", timeout=30, headers={"X-SLURM-USER-TOKEN": token})
    cwd = str(a.home)
    for field, value in ESCAPES.items():
        job = {"current_working_directory": cwd, field: value}
        response = api_a.http.post("/jobs/submit", json={"job": job, "script": "#!/bin/bash\ntrue\n"})
        assert response.status_code == 422, (field, response.text)
        assert f"job.{field}" in response.json()["detail"] and "control character" in response.json()["detail"]
        response = rest.post("/job/submit", json=_rest_job(job, a.home))
        assert response.status_code == 400, (field, response.text)
        assert response.json()["errors"][0]["source"] == f"job.{field}", response.text
        assert "control character" in response.json()["errors"][0]["description"]
    job_id = api_a.submit(
        "#!/bin/bash\n\tprintf 'a\\tb\\n'\n",
        current_working_directory=cwd,
        name="plain name",
        comment="a comment, with ünïcode",
        environment={"PS1": "\x1b[32m$ \x1b[0m", "MULTI": "line\nline"},
    )
    for field in ("name", "comment"):
        response = api_a.http.patch(f"/jobs/{job_id}", json={field: "x\x1b[2Jy"})
        assert response.status_code == 422, response.text
        assert field in response.json()["detail"] and "control character" in response.json()["detail"]
    assert api_a.job(job_id)["name"] == "plain name"


def test_cli_views_escape_control_characters_of_stored_rows(start_conductor: StartConductor, tmp_path: Path) -> None:
    """Rows stored before the rule (or written into the database by other means) still reach
    squeue, sacct and scontrol: those print every control character as '?'."""
    server = start_conductor("--cpus", "1")
    api = Api(server.url)
    job_id = api.submit("#!/bin/bash\ntrue\n", current_working_directory=str(tmp_path), name="n", comment="c")
    api.wait_state(job_id, {"COMPLETED", "FAILED"})
    import sqlite3

    with contextlib.closing(sqlite3.connect(server.home / "conductor.db")) as db, db:
        db.execute(
            "UPDATE jobs SET name = ?, comment = ?, account = ?, qos = ? WHERE id = ?",
            ("evil\x1b]0;t\x07", "c\x1b[2J\x9b1m", "a\tb", "q\nq", job_id),
        )
    env = clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_TOKEN=server.token)

    def cli(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "conductor", *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    views = {
        "squeue": cli("squeue", "-t", "all", "-o", "%i|%j|%k|%a|%q"),
        "squeue -O": cli("squeue", "-t", "all", "-O", "JobID,Name:40,Comment:40"),
        "sacct": cli("sacct", "-X", "-P", "--format", "JobID,JobName%40,Account,QOS,Comment"),
        "scontrol": cli("scontrol", "show", "job", str(job_id)),
        "scontrol -o": cli("scontrol", "-o", "show", "job", str(job_id)),
    }
    for view, text in views.items():
        assert not any(c in text for c in "\x1b\x07\x9b\x7f\t\r"), (view, text)
        assert "evil?]0;t?" in text, (view, text)
    assert f"{job_id}|evil?]0;t?|c?[2J?1m|a?b|q?q\n" in views["squeue"]
    assert f"{job_id}|evil?]0;t?|a?b|q?q|c?[2J?1m\n" in views["sacct"]
    assert len(views["scontrol -o"].splitlines()) == 1  # the newline of the QOS did not split the record
