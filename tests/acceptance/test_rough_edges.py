"""Small things a new user trips over, each with the behaviour it now has: one-line errors for a
TLS mismatch and a busy port, malformed JSON named as such, stderr tails only of a separate
stderr file, one script rule for the API and sbatch, and jobs without a working directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import TERMINAL, Api, ConductorProcess, clean_env, running_up


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorProcess]:
    with running_up(tmp_path_factory.mktemp("edges") / "home", "--cpus", "2") as process:
        yield process


@pytest.fixture
def api(server: ConductorProcess) -> Iterator[Api]:
    client = Api(server.url)
    yield client
    client.close()


def _conductor(
    *args: str, env: dict[str, str], cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conductor", *args],
        input=stdin, capture_output=True, text=True, env=env, cwd=cwd, timeout=60, check=False,
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# ------------------------------------------------------------------------------------ TLS
def test_https_url_against_a_plain_server_is_one_line_naming_the_fix(server: ConductorProcess) -> None:
    url = server.url.replace("http://", "https://")
    line = _one_line_error(_conductor("squeue", env=clean_env(CONDUCTOR_URL=url, CONDUCTOR_TOKEN=server.token)))
    assert line.startswith(f"squeue: error: TLS handshake with {url} failed")
    assert f"CONDUCTOR_URL={server.url}" in line


def test_http_url_against_a_tls_server_is_one_line_naming_the_fix(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost"],
        check=True, capture_output=True,
    )
    tls = start_conductor("--ssl-certfile", str(cert), "--ssl-keyfile", str(key), wait=False, port=_free_port())
    _wait_listening(tls)
    plain = f"http://127.0.0.1:{tls.port}"
    line = _one_line_error(_conductor("squeue", env=clean_env(CONDUCTOR_URL=plain, CONDUCTOR_TOKEN="cond_x")))
    assert plain in line and f"use CONDUCTOR_URL=https://127.0.0.1:{tls.port}" in line
    # With https:// but a certificate this host does not trust: said in one line as well.
    secure = f"https://127.0.0.1:{tls.port}"
    line = _one_line_error(_conductor("squeue", env=clean_env(CONDUCTOR_URL=secure, CONDUCTOR_TOKEN="cond_x")))
    assert "certificate" in line and "not trusted" in line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(process: ConductorProcess, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "conductor is up at" in process.log():
            return
        assert process.proc is not None and process.proc.poll() is None, process.log()
        time.sleep(0.05)
    raise AssertionError(process.log())


# ------------------------------------------------------------------------------ busy port
def test_a_busy_port_is_one_line_and_nothing_claims_to_listen(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        home = tmp_path / "home"
        result = _conductor(
            "up", "--port", str(port), "--home", str(home),
            env=clean_env(XDG_CONFIG_HOME=str(tmp_path / "xdg")), cwd=tmp_path,
        )
    assert result.returncode == 1
    output = (result.stdout + result.stderr).splitlines()
    assert output == [
        f"conductor: error: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(another server listens there: choose another --port)"
    ]
    assert not (tmp_path / "xdg" / "conductor").exists()  # nothing recorded for a server that never ran


# ------------------------------------------------------------------------- malformed JSON
def test_malformed_json_names_the_body_not_an_offset(api: Api) -> None:
    response = api.http.post(
        "/jobs/submit", content=b'{"job": {"name": "x",}, "script": "#!/bin/sh\\ntrue"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["errors"] == [
        {"field": "body", "message": "not valid JSON at character 21: Expecting property name enclosed in double quotes"}
    ]
    assert body["detail"].startswith("body: not valid JSON at character 21")


# --------------------------------------------------------------------------- stderr tails
def test_stderr_tail_only_of_a_separate_stderr_file(api: Api, tmp_path: Path) -> None:
    script = "#!/bin/sh\necho out\necho err >&2\n"
    shared = api.submit(script, current_working_directory=str(tmp_path))
    separate = api.submit(script, current_working_directory=str(tmp_path), standard_error="err-%j.txt")
    api.wait_all([shared, separate])
    log = api.query(shared)["job_log"]
    assert log == {"stdout": "out\nerr\n", "stderr": None}  # one file: its tail is stdout's alone
    assert api.query(separate)["job_log"] == {"stdout": "out\n", "stderr": "err\n"}


# ------------------------------------------------------------------------------- scripts
@pytest.mark.parametrize(
    ("script", "accepted", "sbatch_says"),
    [
        ("#!/bin/sh\ntrue\n", True, None),
        ("echo no interpreter\n", False, "This does not look like a batch script"),
        ("#!/bin/sh\r\ntrue\r\n", False, "DOS line breaks"),
        ("   \n", False, "only whitespace"),
    ],
)
def test_the_api_and_sbatch_accept_the_same_scripts(
    server: ConductorProcess, api: Api, tmp_path: Path, script: str, accepted: bool, sbatch_says: str | None
) -> None:
    response = api.http.post(
        "/jobs/submit", json={"job": {"current_working_directory": str(tmp_path), "hold": True}, "script": script}
    )
    cli = _conductor(
        "sbatch", "-H", "--parsable", env=clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_TOKEN=server.token),
        cwd=tmp_path, stdin=script,
    )
    assert (response.status_code == 201) is accepted, response.text
    assert (cli.returncode == 0) is accepted, cli.stderr
    if not accepted:
        assert response.status_code == 400 and response.json()["field"] == "script", response.text
        assert sbatch_says is not None and sbatch_says in cli.stderr
    else:
        for job in (response.json()["job_id"], cli.stdout.strip()):
            api.cancel(int(job))


# --------------------------------------------------------------------- no working directory
def test_a_job_without_working_directory_runs_in_tmp_as_slurmstepd_would(api: Api) -> None:
    job_id = api.submit("#!/bin/sh\npwd\n")
    job = api.wait_state(job_id, TERMINAL)
    try:
        assert job["state"] == "COMPLETED", job
        assert job["work_dir"] == "/tmp"
        assert api.query(job_id)["job_log"]["stdout"] == "/tmp\n"
    finally:
        if os.path.exists(f"/tmp/slurm-{job_id}.out"):
            os.unlink(f"/tmp/slurm-{job_id}.out")
