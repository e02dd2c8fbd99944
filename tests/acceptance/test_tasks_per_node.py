"""`--ntasks-per-node` without `-n`, an empty `--begin`, and mail types, over a real `conductor up`.

Slurm's sbatch (src/sbatch/opt.c, _opt_verify) and slurmctld (src/slurmctld/job_mgr.c,
validate_job_create_req) make a job given tasks per node but no task count run
`min_nodes x ntasks_per_node` tasks; here, from sbatch, `POST /jobs/submit` and slurmrestd
alike, with the CPUs, the environment and srun's tasks to match.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import TERMINAL, Api, ConductorProcess, clean_env, running_up

SLURMRESTD = "/slurm/v0.0.40"
# What the job prints: its SLURM_* task variables, then one line per task srun starts.
SCRIPT = (
    "#!/bin/bash\n"
    "env | grep -E '^SLURM_(NTASKS|NPROCS|TASKS_PER_NODE|NTASKS_PER_NODE|CPUS_ON_NODE|JOB_CPUS_PER_NODE)=' | sort\n"
    "srun bash -c 'echo task $SLURM_PROCID of $SLURM_NTASKS'\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorProcess]:
    with running_up(tmp_path_factory.mktemp("tasks") / "home", "--cpus", "4") as process:
        yield process


@pytest.fixture(scope="module")
def path(server: ConductorProcess, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH with the Slurm command shims first: jobs run `srun` from it."""
    shims = tmp_path_factory.mktemp("shims")
    env = clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_HOME=str(server.home))
    subprocess.run([sys.executable, "-m", "conductor", "slurm-shims", str(shims)], env=env, check=True, timeout=60)
    return f"{shims}:{os.environ.get('PATH', '/usr/bin:/bin')}"


@pytest.fixture
def api(server: ConductorProcess) -> Iterator[Api]:
    client = Api(server.url)
    yield client
    client.close()


def sbatch(
    server: ConductorProcess, cwd: Path, *args: str, stdin: str | None = None, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_HOME=str(server.home))
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "conductor", "sbatch", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
        check=False,
    )


def finished_output(api: Api, job_id: int, path: Path) -> list[str]:
    job = api.wait_state(job_id, TERMINAL, timeout=60)
    assert job["state"] == "COMPLETED", job
    return path.read_text().splitlines()


def expect_two_tasks(lines: list[str], cpus: int = 2) -> None:
    """What Slurm's batch step sees for 2 tasks on one node (env_array_for_batch_job)."""
    assert lines[:6] == [
        f"SLURM_CPUS_ON_NODE={cpus}",
        f"SLURM_JOB_CPUS_PER_NODE={cpus}",
        "SLURM_NPROCS=2",
        "SLURM_NTASKS=2",
        "SLURM_NTASKS_PER_NODE=2",
        "SLURM_TASKS_PER_NODE=2",
    ], lines
    assert sorted(lines[6:]) == ["task 0 of 2", "task 1 of 2"], lines


def test_sbatch_flags(server: ConductorProcess, api: Api, tmp_path: Path, path: str) -> None:
    done = sbatch(
        server, tmp_path, "--parsable", "--nodes=1", "--ntasks-per-node=2", "-o", "flags.out", stdin=SCRIPT, path=path
    )
    assert done.returncode == 0, done.stderr
    job_id = int(done.stdout)
    expect_two_tasks(finished_output(api, job_id, tmp_path / "flags.out"))
    job = api.job(job_id)
    assert (job["ntasks"], job["ntasks_per_node"], job["allocated_cpus"]) == (2, 2, 2), job


def test_sbatch_directives_with_cpus_per_task(server: ConductorProcess, api: Api, tmp_path: Path, path: str) -> None:
    script = SCRIPT.replace("#!/bin/bash\n", "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=2\n#SBATCH -c 2\n")
    done = sbatch(server, tmp_path, "--parsable", "-o", "directives.out", stdin=script, path=path)
    assert done.returncode == 0, done.stderr
    expect_two_tasks(finished_output(api, int(done.stdout), tmp_path / "directives.out"), cpus=4)


def test_an_explicit_task_count_is_kept(server: ConductorProcess, api: Api, tmp_path: Path) -> None:
    done = sbatch(server, tmp_path, "--parsable", "-n", "1", "--ntasks-per-node=2", "--wrap", "true")
    assert done.returncode == 0, done.stderr
    job = api.wait_state(int(done.stdout), TERMINAL, timeout=60)
    assert (job["ntasks"], job["ntasks_per_node"]) == (1, 2), job


def test_more_than_one_node_is_refused_as_before(server: ConductorProcess, tmp_path: Path) -> None:
    done = sbatch(server, tmp_path, "--nodes=2", "--ntasks-per-node=2", "--wrap", "true")
    assert done.returncode == 1
    assert "Requested node configuration is not available" in done.stderr
    assert "2 nodes were requested" in done.stderr
    # Tasks per node whose CPUs no node has: refused now (they were 1 CPU before).
    done = sbatch(server, tmp_path, "--ntasks-per-node=8", "--wrap", "true")
    assert done.returncode == 1 and "8 CPUs requested" in done.stderr, done.stderr


def test_rest_submit(server: ConductorProcess, api: Api, tmp_path: Path, path: str) -> None:
    job_id = api.submit(
        SCRIPT, ntasks_per_node=2, current_working_directory=str(tmp_path), standard_output=str(tmp_path / "rest.out"),
        environment={"PATH": path, "CONDUCTOR_URL": server.url},
    )
    expect_two_tasks(finished_output(api, job_id, tmp_path / "rest.out"))


def test_slurmrestd_tasks_per_node(server: ConductorProcess, api: Api, tmp_path: Path, path: str) -> None:
    with httpx.Client(base_url=server.url + SLURMRESTD, timeout=30, headers={"X-SLURM-USER-TOKEN": server.token}) as rest:
        response = rest.post("/job/submit", json={"script": SCRIPT, "job": {
            "tasks_per_node": 2, "minimum_nodes": 1, "current_working_directory": str(tmp_path),
            "standard_output": str(tmp_path / "restd.out"), "environment": [f"PATH={path}", f"CONDUCTOR_URL={server.url}"],
        }})
        assert response.status_code == 200, response.text
        job_id = int(response.json()["job_id"])
        expect_two_tasks(finished_output(api, job_id, tmp_path / "restd.out"))
        (info,) = rest.get(f"/job/{job_id}").json()["jobs"]
        assert info["tasks"]["number"] == 2 and info["tasks_per_node"]["number"] == 2, info


# ---- an empty --begin ----------------------------------------------------------------------------


@pytest.mark.parametrize("args", [("--begin=",), ("--begin", "")])
def test_sbatch_refuses_an_empty_begin(server: ConductorProcess, api: Api, tmp_path: Path, args: tuple[str, ...]) -> None:
    before = api.stats()
    done = sbatch(server, tmp_path, *args, "--wrap", "true")
    assert done.returncode == 1
    assert done.stderr.startswith("sbatch: error: Invalid --begin specification: the time is empty"), done.stderr
    assert api.stats() == before


def test_the_api_refuses_an_empty_begin_time(api: Api, tmp_path: Path) -> None:
    response = api.http.post(
        "/jobs/submit", json={"script": "#!/bin/sh\ntrue\n", "job": {"begin_time": "", "current_working_directory": str(tmp_path)}}
    )
    assert response.status_code == 400, response.text
    assert "begin_time" in response.json()["detail"] and "empty time" in response.json()["detail"]


# ---- mail types --------------------------------------------------------------------------------


def test_the_api_refuses_an_unknown_mail_type(api: Api, tmp_path: Path) -> None:
    before = api.stats()
    for value in ("FOO", "BEGIN,FOO"):
        response = api.http.post(
            "/jobs/submit", json={"script": "#!/bin/sh\ntrue\n", "job": {"mail_type": value, "current_working_directory": str(tmp_path)}}
        )
        assert response.status_code == 422, response.text
        detail = json.dumps(response.json())
        assert "mail_type" in detail and "is not a mail type" in detail, detail
    assert api.stats() == before
    job_id = api.submit("#!/bin/sh\ntrue\n", mail_type="begin,END", hold=True, current_working_directory=str(tmp_path))
    api.cancel(job_id)


def test_slurmrestd_refuses_an_unknown_mail_type(server: ConductorProcess, api: Api, tmp_path: Path) -> None:
    before = api.stats()
    with httpx.Client(base_url=server.url + SLURMRESTD, timeout=30, headers={"X-SLURM-USER-TOKEN": server.token}) as rest:
        response = rest.post("/job/submit", json={"script": "#!/bin/sh\ntrue\n", "job": {
            "mail_type": ["FOO", "BAR"], "current_working_directory": str(tmp_path), "environment": ["A=1"],
        }})
    assert response.status_code == 400, response.text
    (error,) = response.json()["errors"]
    assert error["source"] == "job.mail_type" and "'FOO' is not a mail type" in error["description"], error
    assert api.stats() == before
    # slurmrestd's own names of its mail flags (v0.0.40 JOB_MAIL_FLAGS) are sbatch's.
    with httpx.Client(base_url=server.url + SLURMRESTD, timeout=30, headers={"X-SLURM-USER-TOKEN": server.token}) as rest:
        taken = rest.post("/job/submit", json={"script": "#!/bin/sh\ntrue\n", "job": {
            "mail_type": ["INVALID_DEPENDENCY", "TIME=100%", "TIME=90%", "TIME=80%", "TIME=50%", "END"],
            "current_working_directory": str(tmp_path), "environment": ["A=1"], "hold": True,
        }})
    assert taken.status_code == 200, taken.text
    api.cancel(int(taken.json()["job_id"]))


def test_sbatch_refuses_what_the_server_refuses(server: ConductorProcess, tmp_path: Path) -> None:
    done = sbatch(server, tmp_path, "--mail-type=BEGIN,FOO", "--wrap", "true")
    assert done.returncode == 1
    assert re.match(r"sbatch: error: --mail-type=BEGIN,FOO invalid: 'FOO' is not a mail type", done.stderr), done.stderr
