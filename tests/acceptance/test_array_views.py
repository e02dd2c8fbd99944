"""Pending array tasks as Slurm shows them in every view: one record for the tasks not started
yet (`123_[1-20%4]` in squeue and sacct, `ArrayTaskId=1-20%4` in scontrol show job), each task
that started on its own."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import TERMINAL, Api, ConductorProcess, clean_env, running_up


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorProcess]:
    with running_up(tmp_path_factory.mktemp("arrays") / "home", "--cpus", "2") as process:
        yield process


def _out(server: ConductorProcess, cwd: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "conductor", *args], capture_output=True, text=True, cwd=cwd, timeout=60,
        env=clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_TOKEN=server.token), check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _first_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("JobId=")]


def test_pending_tasks_are_one_record_in_every_view(server: ConductorProcess, tmp_path: Path) -> None:
    array = int(_out(server, tmp_path, "sbatch", "--parsable", "-H", "-a", "1-20%4", "--wrap", "true"))
    record = f"JobId={array} ArrayJobId={array} ArrayTaskId=1-20%4 ArrayTaskThrottle=4 JobName=wrap"
    assert _first_lines(_out(server, tmp_path, "scontrol", "show", "job", str(array))) == [record]
    assert _out(server, tmp_path, "squeue", "-h", "-o", "%i %T") == f"{array}_[1-20%4] PENDING\n"
    assert _out(server, tmp_path, "sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", str(array)) == (
        f"{array}_[1-20%4]|PENDING\n"
    )
    # A task named by its id shows alone.
    (task,) = _first_lines(_out(server, tmp_path, "scontrol", "show", "job", f"{array}_3"))
    assert f"ArrayJobId={array} ArrayTaskId=3 " in task

    # Task 1 released and run: it has its own record, the others are still one.
    _out(server, tmp_path, "scontrol", "release", f"{array}_1")
    api = Api(server.url)
    try:
        first = next(j for j in api.jobs(array_job_id=array) if j["array_task_id"] == 1)
        api.wait_state(int(first["job_id"]), TERMINAL)
    finally:
        api.close()
    shown = _first_lines(_out(server, tmp_path, "scontrol", "show", "job", str(array)))
    assert sorted(shown) == sorted(
        [
            f"JobId={first['job_id']} ArrayJobId={array} ArrayTaskId=1 ArrayTaskThrottle=4 JobName=wrap",
            f"JobId={array} ArrayJobId={array} ArrayTaskId=2-20%4 ArrayTaskThrottle=4 JobName=wrap",
        ]
    )
    _out(server, tmp_path, "scancel", str(array))


def test_sbatch_names_the_cluster_it_was_asked_for(server: ConductorProcess, tmp_path: Path) -> None:
    """-M: Slurm's sbatch says which cluster took the job ("7;cluster" with --parsable), which
    tools that pass -M split off; without -M it prints the id alone."""
    env = clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_TOKEN=server.token)
    parsable = subprocess.run([sys.executable, "-m", "conductor", "sbatch", "--parsable", "-M", "conductor", "-H",
                               "--wrap", "true"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert parsable.returncode == 0 and parsable.stderr == "", parsable.stderr
    job_id, cluster = parsable.stdout.strip().split(";")
    assert cluster == "conductor" and job_id.isdigit()
    told = subprocess.run([sys.executable, "-m", "conductor", "sbatch", "--clusters=elsewhere", "-H", "--wrap", "true"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert told.returncode == 0, told.stderr
    assert re.fullmatch(r"Submitted batch job \d+ on cluster conductor\n", told.stdout), told.stdout
    assert "there is one cluster, conductor; --clusters=elsewhere is ignored" in told.stderr
    _out(server, tmp_path, "scancel", job_id, told.stdout.split()[3])
