"""`squeue --json`, `sinfo --json`, `sacct --json`: Slurm's data_parser v0.0.40 documents, from
a real `conductor up`, as tools that parse them read them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import TERMINAL, Api, ConductorProcess, clean_env, running_up

NODE = "jn01"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorProcess]:
    with running_up(tmp_path_factory.mktemp("json") / "home", "--cpus", "2", "--node-name", NODE) as process:
        yield process


def _run(server: ConductorProcess, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conductor", *args], capture_output=True, text=True, cwd=cwd, timeout=60,
        env=clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_TOKEN=server.token), check=False,
    )


def _json(server: ConductorProcess, cwd: Path, *args: str) -> dict[str, Any]:
    result = _run(server, cwd, *args)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    assert document["errors"] == [] and document["warnings"] == []
    assert document["meta"]["plugin"]["data_parser"] == "data_parser/v0.0.40"
    assert document["meta"]["command"] == list(args)
    return document


@pytest.fixture(scope="module")
def jobs(server: ConductorProcess, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, int, Path]:
    """(a job that exited 3, a held job, their directory)."""
    work = tmp_path_factory.mktemp("json-work")
    api = Api(server.url)
    try:
        failed = api.submit("#!/bin/sh\nexit 3\n", name="three", current_working_directory=str(work))
        held = api.submit("#!/bin/sh\ntrue\n", name="held", hold=True, current_working_directory=str(work))
        api.wait_state(failed, TERMINAL)
    finally:
        api.close()
    return failed, held, work


def test_squeue_json_is_slurmrestds_jobs_for_the_selection(server: ConductorProcess, jobs: tuple[int, int, Path]) -> None:
    failed, held, work = jobs
    default = _json(server, work, "squeue", "--json")
    assert [j["job_id"] for j in default["jobs"]] == [held]  # pending and running, as squeue
    every = _json(server, work, "squeue", "--json", "-t", "all")
    by_id = {j["job_id"]: j for j in every["jobs"]}
    assert set(by_id) == {failed, held}
    assert by_id[failed]["job_state"] == ["FAILED"] and by_id[failed]["state_reason"] == "NonZeroExitCode"
    assert by_id[failed]["exit_code"]["return_code"] == {"set": True, "infinite": False, "number": 3}
    assert by_id[held]["job_state"] == ["PENDING"] and by_id[held]["hold"] is True
    # The records are slurmrestd's own.
    api = Api(server.url)
    try:
        rest = api.http.get("/slurm/v0.0.40/jobs").json()["jobs"]
    finally:
        api.close()
    assert {j["job_id"]: j for j in rest}[held] == by_id[held]
    assert _json(server, work, "squeue", "--json=v0.0.40", "-n", "three", "-t", "all")["jobs"][0]["job_id"] == failed


def test_sinfo_json_has_a_record_per_node_and_partition(server: ConductorProcess, tmp_path: Path) -> None:
    document = _json(server, tmp_path, "sinfo", "--json")
    (entry,) = document["sinfo"]
    assert entry["nodes"]["nodes"] == [NODE] and entry["nodes"]["total"] == 1
    assert entry["cpus"]["total"] == 2 and entry["partition"]["name"] == "debug"
    assert entry["node"]["state"][0] in ("IDLE", "MIXED", "ALLOCATED")


def test_sacct_json_is_slurmdbds_job_records(server: ConductorProcess, jobs: tuple[int, int, Path]) -> None:
    failed, held, work = jobs
    document = _json(server, work, "sacct", "--json", "-j", f"{failed},{held}")
    by_id = {j["job_id"]: j for j in document["jobs"]}
    assert set(by_id) == {failed, held}
    record = by_id[failed]
    assert record["state"] == {"current": ["FAILED"], "reason": "NonZeroExitCode"}
    assert record["exit_code"]["status"] == ["ERROR"] and record["exit_code"]["return_code"]["number"] == 3
    assert record["name"] == "three" and record["nodes"] == NODE and record["working_directory"] == str(work)
    assert record["steps"][0]["step"] == {"id": f"{failed}.batch", "name": "batch"}
    assert record["time"]["start"] > 0 and record["time"]["end"] >= record["time"]["start"]
    assert by_id[held]["state"]["current"] == ["PENDING"] and by_id[held]["steps"] == []


@pytest.mark.parametrize("command", ["squeue", "sinfo", "sacct"])
def test_other_data_parsers_are_refused_in_one_line(server: ConductorProcess, tmp_path: Path, command: str) -> None:
    result = _run(server, tmp_path, command, "--json=v0.0.38")
    assert result.returncode == 1
    assert result.stderr == f"{command}: error: --json: data_parser plugin 'v0.0.38' is not available here; only v0.0.40 is\n"
