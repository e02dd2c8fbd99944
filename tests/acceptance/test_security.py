"""Security of the whole system: tokens, ownership, jobs as their users, output paths, limits.

Real processes, real HTTP, real Unix users: the `unix_users` fixture creates two throw-away
users (and a group) with useradd for the run and removes them at the end. That needs root, as
CI has; without root those tests fail under CI=true and are skipped, saying why, elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import sqlite3
import ssl
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import Api, ConductorProcess, clean_env, free_port
from users import StartConductor, UnixUsers, conductor_cli, make_token, run_root, user_server

from conductor.services.tokens import TOKEN_CACHE_SECONDS


# ---------------------------------------------------------------------- authentication
def test_every_route_but_health_needs_a_token(conductor_server: ConductorProcess, tmp_path: Path) -> None:
    url = conductor_server.url
    assert httpx.get(url + "/health").status_code == 200
    # The OpenAPI document is public (it describes routes, not data) and declares the schemes.
    spec = httpx.get(url + "/openapi.json").json()
    assert set(spec["components"]["securitySchemes"]) >= {"bearer", "slurm_user_token"}
    body = {"job": {"current_working_directory": str(tmp_path)}, "script": "#!/bin/bash\ntrue\n"}
    for method, path in [
        ("GET", "/jobs"),
        ("GET", "/jobs/stats"),
        ("GET", "/jobs/query/1"),
        ("GET", "/jobs/1"),
        ("POST", "/jobs/cancel/1"),
        ("GET", "/nodes"),
        ("GET", "/metrics"),
        ("POST", "/jobs/submit"),
    ]:
        for headers in ({}, {"Authorization": "Bearer cond_not-a-token"}, {"Authorization": "Basic cm9vdDpyb290"}):
            response = httpx.request(method, url + path, headers=headers, json=body if method == "POST" else None)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert "token" in response.json()["detail"] or "Bearer" in response.json()["detail"]
    # Every route of the spec but /health answers 401 without a token, whoever added it.
    for path, operations in spec["paths"].items():
        for method in operations:
            concrete = path.replace("{job_id}", "1").replace("{node_name}", "n").replace("{name}", "n")
            if path == "/health" or "{" in concrete:
                continue
            response = httpx.request(method.upper(), url + concrete)
            assert response.status_code == 401, (method, path, response.status_code)
    assert httpx.get(url + "/jobs", headers=conductor_server.headers()).status_code == 200


def test_slurmrestd_headers_and_revocation(conductor_server: ConductorProcess) -> None:
    url, home = conductor_server.url, conductor_server.home
    me = pwd.getpwuid(os.geteuid()).pw_name
    token = make_token(home, me)
    headers = {"X-SLURM-USER-NAME": me, "X-SLURM-USER-TOKEN": token}
    assert httpx.get(url + "/jobs", headers=headers).status_code == 200
    other = {"X-SLURM-USER-NAME": "someone-else", "X-SLURM-USER-TOKEN": token}
    response = httpx.get(url + "/jobs", headers=other)
    assert response.status_code == 403 and "X-SLURM-USER-NAME" in response.json()["detail"]
    # Two different tokens: refused, not one of them silently used.
    admin = conductor_server.token
    both = httpx.get(url + "/jobs", headers={"Authorization": f"Bearer {token}", "X-SLURM-USER-TOKEN": admin})
    assert both.status_code == 401 and "different tokens" in both.json()["detail"]
    same = httpx.get(url + "/jobs", headers={"Authorization": f"Bearer {token}", "X-SLURM-USER-TOKEN": token})
    assert same.status_code == 200
    # An administrator naming a user that cannot be one: a 400, the name not echoed garbled.
    for name in ("\u00e9".encode().decode("latin-1"), "x" * 10_000, "-rf"):
        bad = httpx.get(url + "/jobs", headers={"X-SLURM-USER-NAME": name.encode("latin-1"), "X-SLURM-USER-TOKEN": admin})
        assert bad.status_code == 400 and bad.json()["detail"].startswith("X-SLURM-USER-NAME is not a valid user name")

    listed = conductor_cli(home, "token", "list").stdout
    assert token not in listed
    token_id = next(line.split()[0] for line in listed.splitlines()[1:] if line.split()[1] == me and " no " in line)
    assert conductor_cli(home, "token", "revoke", token_id).returncode == 0
    # Within the server's token cache time (TOKEN_CACHE_SECONDS, 1 s), no later.
    deadline = time.monotonic() + 2 * TOKEN_CACHE_SECONDS
    while True:
        response = httpx.get(url + "/jobs", headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert response.status_code == 401 and "revoked" in response.json()["detail"]
    assert conductor_cli(home, "token", "revoke", token_id, check=False).returncode == 1
    # The server's own admin token still works, and the database holds hashes only.
    assert httpx.get(url + "/jobs", headers=conductor_server.headers()).status_code == 200
    db = sqlite3.connect(str(home / "conductor.db"))
    hashes = {row[0] for row in db.execute("SELECT token_hash FROM tokens")}
    db.close()
    assert hashlib.sha256(token.encode()).hexdigest() in hashes
    assert token not in hashes and conductor_server.token not in hashes


def test_local_token_file_and_state_permissions(conductor_server: ConductorProcess, tmp_path: Path) -> None:
    home = conductor_server.home
    token_file = home / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o711
    assert stat.S_IMODE((home / "conductor.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "scripts").stat().st_mode) == 0o711
    # The CLI reads the token from $CONDUCTOR_HOME/token: nothing to set up on one host.
    result = subprocess.run(
        [sys.executable, "-m", "conductor", "squeue"],
        env=clean_env(CONDUCTOR_HOME=str(home), CONDUCTOR_URL=conductor_server.url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # A restart keeps the token; the log never shows it.
    token = conductor_server.token
    assert conductor_server.stop() == 0
    again = ConductorProcess(home, ["up", "--cpus", "1"], port=free_port()).start()
    try:
        assert (home / "token").read_text().strip() == token
        assert Api(again.url).stats()["total_cpus"] == 1
        assert token not in conductor_server.log() and token not in again.log()
    finally:
        again.kill()


@pytest.mark.parametrize("planted", ["home", "conductor.db", "conductor.db-wal", "parent"])
def test_a_home_or_database_another_user_made_is_refused(tmp_path: Path, planted: str) -> None:
    """Whoever made the home before the server (a `--home` under /tmp, a shared directory) kept
    owning it and the database made in it: they wrote themselves an administrator's token into
    the database, and a root job ran their commands. The server now refuses to start there."""
    if os.geteuid() != 0:
        pytest.fail("this test makes files of another user: run it as root")
    nobody = pwd.getpwnam("nobody").pw_uid
    parent = tmp_path / "shared"
    parent.mkdir()
    home = parent / "home"
    home.mkdir()
    if planted == "home":
        os.chown(home, nobody, nobody)
    elif planted == "parent":
        os.chmod(parent, 0o777)  # others may swap the home: not sticky
    else:
        (home / planted).write_bytes(b"")
        os.chown(home / planted, nobody, nobody)
    result = subprocess.run(
        [sys.executable, "-m", "conductor", "up", "--home", str(home), "--port", str(free_port()), "--cpus", "1"],
        env=clean_env(), capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode != 0, result.stderr
    reason = "is writable by others" if planted == "parent" else f"belongs to uid {nobody}"
    assert reason in result.stderr and "choose another home" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (home / "token").exists()


def test_token_command_validates_and_warns(conductor_server: ConductorProcess) -> None:
    home = conductor_server.home
    bad = conductor_cli(home, "token", "create", "--user", "bad name", check=False)
    assert bad.returncode == 1 and "--user" in bad.stderr
    unknown = conductor_cli(home, "token", "create", "--user", "cdt-nobody-here")
    assert "does not exist on this host" in unknown.stderr
    assert unknown.stdout.strip().startswith("cond_")
    # Such a user's submissions are refused at once: the node could not run them.
    api = Api(conductor_server.url, unknown.stdout.strip())
    response = api.http.post("/jobs/submit", json={"job": {"current_working_directory": "/tmp"}, "script": "#!/bin/sh\ntrue\n"})
    assert response.status_code == 400 and "cdt-nobody-here" in response.json()["detail"]


# ---------------------------------------------------------------- users and ownership
def test_job_runs_as_its_user(start_conductor: StartConductor, unix_users: UnixUsers) -> None:
    server = user_server(start_conductor, unix_users)
    a = unix_users.a
    api = Api(server.url, make_token(server.home, a.name))
    script = (
        "#!/bin/bash\n"
        "id -u; id -g; id -G; id -un\n"
        "grep -E '^(Uid|Gid):' /proc/self/status\n"
        'echo "HOME=$HOME USER=$USER LOGNAME=$LOGNAME"\n'
        "env | grep -c '^CONDUCTOR_TOKEN=' || true\n"
        'stat -c "%u %a %n" "$0"\n'
    )
    job_id = api.submit(
        script,
        current_working_directory=str(a.home),
        # A submitted environment cannot make the job believe it is someone else, nor carry a token.
        environment={"HOME": "/root", "USER": "root", "LOGNAME": "root", "CONDUCTOR_TOKEN": "cond_leak"},
    )
    job = api.wait_state(job_id, {"COMPLETED", "FAILED"})
    assert job["state"] == "COMPLETED", job
    assert job["user"] == a.name
    out_path = a.home / f"slurm-{job_id}.out"
    info = out_path.stat()
    assert (info.st_uid, info.st_gid) == (a.uid, a.gid)
    lines = out_path.read_text().splitlines()
    assert lines[0] == str(a.uid) and lines[1] == str(a.gid)
    assert {int(g) for g in lines[2].split()} == {a.gid, unix_users.group_gid}
    assert lines[3] == a.name
    assert lines[4].split()[1:] == [str(a.uid)] * 4  # real, effective, saved, filesystem
    assert lines[5].split()[1:] == [str(a.gid)] * 4
    assert lines[6] == f"HOME={a.home} USER={a.name} LOGNAME={a.name}"
    assert lines[7] == "0"
    # Its script, while it ran (it goes with the job, as Slurm's): the user's own, 0700.
    assert lines[8] == f"{a.uid} 700 {server.home / 'scripts' / f'job_{job_id}.sh'}"
    # Its owner reads the output through the API.
    assert "HOME=" in api.query(job_id)["job_log"]["stdout"]


def test_other_users_cannot_act_on_or_read_a_job(start_conductor: StartConductor, unix_users: UnixUsers) -> None:
    server = user_server(start_conductor, unix_users)
    a, b = unix_users.a, unix_users.b
    api_a = Api(server.url, make_token(server.home, a.name))
    api_b = Api(server.url, make_token(server.home, b.name))
    admin = Api(server.url)  # the server's local admin token
    done = api_a.submit("#!/bin/bash\necho private-output\n", current_working_directory=str(a.home))
    api_a.wait_state(done, "COMPLETED")
    running = api_a.submit("#!/bin/bash\nsleep 60\n", current_working_directory=str(a.home))
    api_a.wait_state(running, "RUNNING")

    for path, method in [(f"/jobs/cancel/{running}", "POST"), (f"/jobs/query/{done}", "GET")]:
        response = api_b.http.request(method, path)
        assert response.status_code == 403, response.text
        detail = response.json()["detail"]
        assert a.name in detail and b.name in detail
    assert api_a.job(running)["state"] == "RUNNING"
    # Everyone may list jobs and see their summaries (squeue), but not their output.
    listed = api_b.http.get("/jobs").json()["jobs"]
    assert {j["job_id"] for j in listed} >= {done, running}
    assert "private-output" not in api_b.http.get(f"/jobs/{done}").text
    # Unknown jobs are 404 for everyone, not 403.
    assert api_b.http.post("/jobs/cancel/999999").status_code == 404
    # Its owner and an administrator may.
    assert "private-output" in api_a.query(done)["job_log"]["stdout"]
    assert "private-output" in admin.query(done)["job_log"]["stdout"]
    admin.cancel(running)
    assert api_a.wait_state(running, "CANCELLED", timeout=15)["state"] == "CANCELLED"
    # An administrator's token can act for a user (slurmrestd's X-SLURM-USER-NAME): the job is b's.
    response = admin.http.post(
        "/jobs/submit",
        headers={"X-SLURM-USER-NAME": b.name},
        json={"job": {"current_working_directory": str(b.home)}, "script": "#!/bin/bash\nid -u\n"},
    )
    assert response.status_code == 201, response.text
    proxied = int(response.json()["job_id"])
    assert api_b.wait_state(proxied, "COMPLETED")["user"] == b.name
    assert (b.home / f"slurm-{proxied}.out").read_text().strip() == str(b.uid)


def test_worker_refuses_user_unknown_on_node(start_conductor: StartConductor, unix_users: UnixUsers) -> None:
    """A job whose user vanished from the node between submission and start fails clearly."""
    tag = uuid.uuid4().hex[:6]
    name = f"cdt_{tag}_x"
    run_root("useradd", "--no-create-home", "--home-dir", "/nonexistent", "--user-group", name)
    try:
        server = user_server(start_conductor, unix_users)
        api = Api(server.url, make_token(server.home, name))
        blocker = Api(server.url)
        # Fill the node so the job stays pending while its user is removed.
        blockers = [
            blocker.submit("#!/bin/bash\nsleep 30\n", current_working_directory="/tmp") for _ in range(2)
        ]
        for blocker_id in blockers:
            blocker.wait_state(blocker_id, "RUNNING")
        job_id = api.submit("#!/bin/bash\ntrue\n", current_working_directory="/tmp")
        assert api.job(job_id)["state"] == "PENDING"
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)
        subprocess.run(["groupdel", name], capture_output=True, check=False)
    for blocker_id in blockers:
        blocker.cancel(blocker_id)
    job = blocker.wait_state(job_id, {"FAILED", "COMPLETED"}, timeout=20)
    assert job["state"] == "FAILED"
    assert f"user '{name}' does not exist on node" in job["error_msg"]


def test_root_jobs_are_refused_unless_allowed(start_conductor: StartConductor, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root's jobs are at stake, and the tests do not run as root")
    # `conductor up` run by root allows its local admin's (root's) jobs, and says so.
    default = start_conductor("--cpus", "1", home=tmp_path / "a")
    assert "jobs of root" in default.log() and "allowed" in default.log()
    Api(default.url).submit("#!/bin/bash\ntrue\n", current_working_directory=str(tmp_path))
    refused = start_conductor("--cpus", "1", home=tmp_path / "b", env={"CONDUCTOR_ALLOW_ROOT_JOBS": "false"})
    response = Api(refused.url).http.post(
        "/jobs/submit", json={"job": {"current_working_directory": str(tmp_path)}, "script": "#!/bin/bash\ntrue\n"}
    )
    assert response.status_code == 403
    assert "CONDUCTOR_ALLOW_ROOT_JOBS" in response.json()["detail"]


# ------------------------------------------------------------------------------ paths
def test_output_path_tricks_touch_nothing_and_leak_nothing(start_conductor: StartConductor, unix_users: UnixUsers) -> None:
    server = user_server(start_conductor, unix_users)
    a, b = unix_users.a, unix_users.b
    api_a = Api(server.url, make_token(server.home, a.name))
    # b's files: one private in a private directory, one that anybody could write (0666) in a
    # directory anybody may enter: only O_NOFOLLOW keeps a's job from writing through a link.
    b_private = b.home / "private"
    b_private.mkdir()
    secret = b_private / "secret.txt"
    secret.write_text("b-secret\n")
    open_dir = unix_users.base / f"open-{b.name}"
    open_dir.mkdir()
    writable = open_dir / "writable.txt"
    writable.write_text("b-writable\n")
    for path in (b_private, secret, open_dir, writable):
        os.chown(path, b.uid, b.gid)
    os.chmod(b_private, 0o700)
    os.chmod(secret, 0o600)
    os.chmod(open_dir, 0o755)
    os.chmod(writable, 0o666)
    shadow_before = Path("/etc/shadow").read_bytes() if Path("/etc/shadow").exists() else None

    def as_a(path: Path, target: Path) -> None:
        path.symlink_to(target)
        os.lchown(path, a.uid, a.gid)

    as_a(a.home / "to-writable.txt", writable)
    as_a(a.home / "to-secret.txt", secret)
    as_a(a.home / "b-dir", b_private)
    cases = {
        "symlink to a file a may write": "to-writable.txt",
        "symlink to a private file": "to-secret.txt",
        "symlinked directory component": "b-dir/secret.txt",
        "relative traversal": f"../{b.name}/private/secret.txt",
        "absolute path of another user's file": str(secret),
        "a system file": "/etc/shadow",
    }
    for what, output in cases.items():
        job_id = api_a.submit("#!/bin/bash\necho clobbered\n", current_working_directory=str(a.home), standard_output=output)
        job = api_a.wait_state(job_id, {"FAILED", "COMPLETED"})
        assert job["state"] == "FAILED", (what, job)
        assert "cannot open output file" in job["error_msg"], (what, job["error_msg"])
        query = api_a.query(job_id)
        assert query["job_log"]["stdout"] is None, (what, query["job_log"])
        assert query["job_log"]["stderr"] is None, (what, query["job_log"])
    assert writable.read_text() == "b-writable\n"
    assert secret.read_text() == "b-secret\n"
    if shadow_before is not None:
        assert Path("/etc/shadow").read_bytes() == shadow_before

    # A link planted *after* a job wrote its output: the API does not follow it either.
    job_id = api_a.submit("#!/bin/bash\necho mine\n", current_working_directory=str(a.home), standard_output="late.txt")
    api_a.wait_state(job_id, "COMPLETED")
    assert api_a.query(job_id)["job_log"]["stdout"] == "mine\n"
    late = a.home / "late.txt"
    late.unlink()
    as_a(late, secret)
    assert api_a.query(job_id)["job_log"]["stdout"] is None
    # ...nor a file that is not the job user's (a hard link or a copy by root).
    late.unlink()
    shutil.copy(secret, late)  # owned by root now
    assert api_a.query(job_id)["job_log"]["stdout"] is None


# ------------------------------------------------------------------------------ limits
def test_size_limits_name_the_limit(start_conductor: StartConductor, tmp_path: Path) -> None:
    server = start_conductor(
        "--cpus",
        "1",
        env={
            "CONDUCTOR_MAX_BODY_BYTES": "65536",
            "CONDUCTOR_MAX_SCRIPT_BYTES": "2048",
            "CONDUCTOR_MAX_ENVIRONMENT_BYTES": "2048",
            "CONDUCTOR_MAX_ARRAY_TASKS": "10",
            "CONDUCTOR_MAX_PENDING_PER_USER": "3",
        },
    )
    api = Api(server.url)
    cwd = str(tmp_path)

    def submit(script: str = "#!/bin/bash\ntrue\n", **job: object) -> httpx.Response:
        return api.http.post("/jobs/submit", json={"job": {"current_working_directory": cwd, **job}, "script": script})

    big = submit("#!/bin/bash\n" + "#" * 70_000)
    assert big.status_code == 413 and "CONDUCTOR_MAX_BODY_BYTES" in big.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        yield b'{"job": {}, "script": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    chunked = api.http.post("/jobs/submit", content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413 and "CONDUCTOR_MAX_BODY_BYTES" in chunked.json()["detail"]
    small_chunked = api.http.post(
        "/jobs/submit",
        content=iter([b'{"job": {"hold": true, "current_working_directory": "/tmp"}, ', b'"script": "#!/bin/sh\\ntrue\\n"}']),
        headers={"content-type": "application/json"},
    )
    assert small_chunked.status_code == 201, small_chunked.text
    api.cancel(int(small_chunked.json()["job_id"]))

    script = submit("#!/bin/bash\n" + "#" * 3000)
    assert script.status_code == 400 and "CONDUCTOR_MAX_SCRIPT_BYTES" in script.json()["detail"]
    env = submit(environment={"X": "y" * 3000})
    assert env.status_code == 400 and "CONDUCTOR_MAX_ENVIRONMENT_BYTES" in env.json()["detail"]
    array = submit(array="0-10")
    assert array.status_code == 400 and "maximum of 10 tasks" in array.json()["detail"]

    held = [submit(hold=True) for _ in range(3)]
    assert all(r.status_code == 201 for r in held)
    over = submit(hold=True)
    assert over.status_code == 429
    assert "CONDUCTOR_MAX_PENDING_PER_USER" in over.json()["detail"] and "3" in over.json()["detail"]
    api.cancel(int(held[0].json()["job_id"]))
    assert submit(hold=True).status_code == 201


# ---------------------------------------------------------------------------- no leaks
def test_database_password_never_printed(tmp_path: Path) -> None:
    password = "pw-" + uuid.uuid4().hex
    for url in (
        f"postgresql://someone:{password}@127.0.0.1:{free_port()}/nothing",
        f"postgresql://someone:{password}@127.0.0.1:notaport/nothing",
    ):
        for command in (["up", "--port", str(free_port())], ["token", "list"]):
            result = subprocess.run(
                [sys.executable, "-m", "conductor", *command],
                env=clean_env(CONDUCTOR_HOME=str(tmp_path / "h"), CONDUCTOR_DATABASE_URL=url),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode != 0
            assert password not in result.stdout + result.stderr, result.stderr
            assert "***" in result.stderr or "someone" in result.stderr or "database" in result.stderr


def test_server_token_and_environment_never_reach_jobs(start_conductor: StartConductor, tmp_path: Path) -> None:
    server = start_conductor("--cpus", "1", home=tmp_path / "h", env={"CONDUCTOR_TOKEN": "cond_server-side"})
    api = Api(server.url)
    job_id = api.submit(
        "#!/bin/bash\nenv\n",
        current_working_directory=str(tmp_path),
        environment={"CONDUCTOR_TOKEN": "cond_from-submitter", "SLURM_JWT": "jwt", "KEEP": "1"},
    )
    api.wait_state(job_id, "COMPLETED")
    out = (tmp_path / f"slurm-{job_id}.out").read_text()
    assert "KEEP=1" in out
    assert "cond_" not in out and "SLURM_JWT" not in out and server.token not in out
    # Not stored either: the database keeps the job's environment without them.
    db = sqlite3.connect(str(server.home / "conductor.db"))
    stored = db.execute("SELECT environment FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
    db.close()
    assert "cond_" not in stored and "KEEP" in stored


# ----------------------------------------------------------------------------- binding
def test_listening_beyond_loopback_without_tls_warns(start_conductor: StartConductor, tmp_path: Path) -> None:
    server = start_conductor("--cpus", "1", "--host", "0.0.0.0", home=tmp_path / "h")
    assert "without TLS" in server.log()
    local = start_conductor("--cpus", "1", home=tmp_path / "h2")
    assert "without TLS" not in local.log()


def test_tls_certificate_options(start_conductor: StartConductor, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    server = start_conductor(
        "--cpus", "1", "--host", "0.0.0.0", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key),
        home=tmp_path / "h", wait=False,
    )
    https = f"https://127.0.0.1:{server.port}"
    trust = ssl.create_default_context(cafile=str(cert))
    deadline = time.monotonic() + 30
    while True:
        assert server.proc is not None and server.proc.poll() is None, server.log()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(https + "/health", verify=trust, timeout=1).status_code == 200:
                break
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    token = (server.home / "token").read_text().strip()
    response = httpx.get(https + "/jobs/stats", verify=trust, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert "without TLS" not in server.log() and "https://" in server.log()
    # Half a TLS configuration is refused at start.
    half = start_conductor("--cpus", "1", "--ssl-certfile", str(cert), home=tmp_path / "h2", wait=False)
    assert half.proc is not None and half.proc.wait(30) == 1
    assert "go together" in half.log()
